"""A small simulator of soak runs: it writes a run directory as the run does.

Rows go through the real CsvLog and record types, so the analysis reads exactly
what the samplers write. Each simulated swap: staged, new version LOADING ->
AVAILABLE, old version UNLOADING -> END, memory decays to its new level, then
`settled`. Memory during a load rises by the model's size.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import tomli_w

from soak.analysis.latency import LatencySeries
from soak.analysis.memory import MemorySeries
from soak.analysis.timeline import SwapTimes, Timeline
from soak.store.csv_log import CsvLog
from soak.store.records import MIB, BreakdownRow, Event, EventKind, LatencySample, MemorySample
from soak.store.run_dir import RunDir

T0 = 1_700_000_000.0
BASELINE_SETTLED_S = 8.0
SWAP_PERIOD_S = 12.0  # staged at the start of a period, settled 8 s into it
MODEL_MB = 40.0


@dataclass
class SimVariant:
    name: str
    allocator: str
    retained: Callable[[int], float]  # MiB above baseline once swap k settled (k >= 0)
    swaps: int = 8
    baseline_mb: float = 300.0
    noise_mb: float = 0.05
    status: str = "completed"
    reason: str | None = None
    kill_at_s: float | None = None  # the run was killed this long after start
    die_in_swap: int | None = None  # the server exits during this swap
    error_statuses: list[int] = field(default_factory=list)  # sent during each swap window
    steady_ms: float = 5.0
    swap_ms: float = 30.0  # from staging until the old version is END
    first_ms: float = 120.0
    cgroup: bool = False
    rps: float = 20.0
    # the server's CPU (memory.csv cpu_s; None: no such column, as in older runs): ms per
    # request, ms per second of idling, and s per load (spread over LOADING -> AVAILABLE)
    cpu_ms_per_request: float | None = None
    cpu_idle_ms_per_s: float = 0.0
    cpu_s_per_load: float = 0.0
    cpu_drift: float = 0.0  # the per-request cost grows by this share over the variant
    table: dict = field(default_factory=dict)  # more keys of its [[variants]] table (env, ...)
    extra_events: list = field(default_factory=list)  # (offset s, swap, kind, version, detail)


def swap_times(k: int) -> dict[str, float]:
    """Offsets (s from start) of swap k's steps."""
    s = BASELINE_SETTLED_S + 2.0 + (k - 1) * SWAP_PERIOD_S
    return {
        "staged": s,
        "loading": s + 1.0,
        "available": s + 3.0,
        "unloading": s + 3.2,
        "end": s + 3.5,
        "settled": s + 8.0,
    }


def write_variant(run: RunDir, sim: SimVariant, seed: int = 0) -> None:
    vdir = run.variant(sim.name)
    vdir.path.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    end_s = swap_times(sim.swaps)["settled"] + 2.0
    if sim.die_in_swap is not None:
        end_s = swap_times(sim.die_in_swap)["loading"] + 0.5
    limit = sim.kill_at_s if sim.kill_at_s is not None else end_s + 1.0

    events: list[Event] = [
        Event(T0 - 0.01, 0, EventKind.STAGED, 1, "1"),  # the run stages version 1 first
        Event(T0, 0, EventKind.STARTED, None, "4242"),
        Event(T0 + 0.5, 0, EventKind.LOADING, 1),
        Event(T0 + 2.0, 0, EventKind.AVAILABLE, 1),
        Event(T0 + BASELINE_SETTLED_S, 0, EventKind.SETTLED, 1, f"{sim.baseline_mb:.1f}"),
    ]
    for k in range(1, sim.swaps + 1):
        st = swap_times(k)
        new, old = k + 1, k
        steps = [
            ("staged", EventKind.STAGED, new),
            ("loading", EventKind.LOADING, new),
            ("available", EventKind.AVAILABLE, new),
            ("unloading", EventKind.UNLOADING, old),
            ("end", EventKind.END, old),
            ("settled", EventKind.SETTLED, new),
        ]
        for key, kind, version in steps:
            if sim.die_in_swap == k and key != "staged":
                break
            events.append(Event(T0 + st[key], k, kind, version))
    if sim.die_in_swap is not None:
        events.append(
            Event(T0 + end_s, sim.die_in_swap, EventKind.SERVER_EXITED, None, "exit code -9")
        )
    else:
        events.append(Event(T0 + end_s, sim.swaps, EventKind.STOPPED, None))
    if sim.extra_events:  # as the run writes them: in time order
        events += [Event(T0 + s, k, kind, v, d) for s, k, kind, v, d in sim.extra_events]
        events.sort(key=lambda e: e.t)

    def memory_mb(t: float) -> float:
        if t < 0.5:
            return 50.0
        if t < BASELINE_SETTLED_S - 3:
            return sim.baseline_mb + MODEL_MB * 0.5
        level = sim.baseline_mb + sim.retained(0)
        for k in range(1, sim.swaps + 1):
            st = swap_times(k)
            if t < st["staged"]:
                break
            before = sim.baseline_mb + sim.retained(k - 1)
            after = sim.baseline_mb + sim.retained(k)
            if t < st["loading"]:
                level = before
            elif t < st["end"]:
                level = before + MODEL_MB * min(1.0, (t - st["loading"]) / 2.0)
            else:  # freed pages return over about a second
                level = after + (before + MODEL_MB - after) * np.exp(-(t - st["end"]) / 0.7)
        return level

    mem_cols = ["t", "rss_bytes", "anon_bytes", "swap"]
    if sim.cgroup:
        mem_cols[3:3] = ["cgroup_anon_bytes", "cgroup_working_set_bytes"]
    if sim.cpu_ms_per_request is not None:
        mem_cols.append("cpu_s")
    memory = CsvLog(vdir.memory_csv, MemorySample, mem_cols)
    request_ts = np.arange(1.0, min(end_s - 0.5, limit), 1.0 / sim.rps)

    def cpu_s(t: float) -> float:
        """The server's CPU seconds at t: requests sent so far, idling, loads."""
        assert sim.cpu_ms_per_request is not None
        sent = request_ts[request_ts <= t]
        per_request = sim.cpu_ms_per_request * (1 + sim.cpu_drift * sent / end_s)
        loads = 0.0
        for k in range(1, sim.swaps + 1):
            st = swap_times(k)
            loads += sim.cpu_s_per_load * min(
                1.0, max(0.0, (t - st["loading"]) / (st["available"] - st["loading"]))
            )
        return float(per_request.sum()) / 1000 + sim.cpu_idle_ms_per_s * t / 1000 + loads

    latency = CsvLog(vdir.latency_csv, LatencySample)
    event_log = CsvLog(vdir.events_csv, Event)
    for e in events:
        if e.t - T0 < limit:
            event_log.append(e)

    def swap_at(t: float) -> int:
        return max([0] + [k for k in range(1, sim.swaps + 1) if t >= swap_times(k)["staged"]])

    for t in np.arange(0.0, min(end_s, limit), 0.1):
        anon = (memory_mb(t) + rng.normal(0, sim.noise_mb)) * MIB
        cg = (int(anon * 1.02), int(anon * 1.1)) if sim.cgroup else (None, None)
        sample = MemorySample(T0 + t, int(anon + 120 * MIB), int(anon), *cg, swap_at(t))
        if sim.cpu_ms_per_request is not None:  # a column this test writes itself
            sample = SimpleNamespace(
                **{c: getattr(sample, c) for c in mem_cols if c != "cpu_s"}, cpu_s=cpu_s(t)
            )
        memory.append(sample)

    firsts = {swap_times(k)["available"] for k in range(1, sim.swaps + 1)}
    pending_first = set()
    for i, t in enumerate(request_ts):
        k = swap_at(t)
        st = swap_times(k) if k else None
        in_swap = st is not None and st["staged"] <= t <= st["end"]  # slow while versions change
        if st and st["available"] in firsts and t >= st["available"]:
            firsts.discard(st["available"])
            pending_first.add(i)
        ms = sim.first_ms if i in pending_first else (sim.swap_ms if in_swap else sim.steady_ms)
        ms += abs(rng.normal(0, 0.5))
        status = 200
        if in_swap and sim.error_statuses and st and t >= st["unloading"]:
            position = int((t - st["unloading"]) * sim.rps)
            if position < len(sim.error_statuses):
                status = sim.error_statuses[position]
        start = T0 + t + 0.0005
        latency.append(LatencySample(T0 + t, start, T0 + t + ms / 1000, ms, status, k))

    for log in (memory, latency, event_log):
        log.close()
    status = "running" if sim.kill_at_s is not None else sim.status
    meta = {
        "name": sim.name,
        "allocator": sim.allocator,
        "library": None,
        "allocator_verified": sim.status != "failed",
        "status": status,
        "reason": sim.reason,
        "model_size_bytes": int(MODEL_MB * MIB),
    }
    vdir.variant_json.write_text(json.dumps(meta), encoding="utf-8")
    if sim.kill_at_s is not None:  # the kill cut every file mid-row
        for path in (vdir.memory_csv, vdir.latency_csv, vdir.events_csv):
            data = path.read_bytes()
            path.write_bytes(data[: len(data) - 7])


def write_run(path: Path, sims: list[SimVariant], **settings) -> Path:
    run = RunDir(path)
    path.mkdir(parents=True, exist_ok=True)
    config = {
        "model_name": "ranker",
        "backend": "process",
        "swaps": max(s.swaps for s in sims),
        "warmup_swaps": 2,
        "metric": "anon_bytes",
    } | settings
    config["variants"] = [{"name": s.name, "allocator": s.allocator} | s.table for s in sims]
    run.run_toml.write_text(tomli_w.dumps(config), encoding="utf-8")
    for i, sim in enumerate(sims):
        write_variant(run, sim, seed=i)
    return path


@pytest.fixture
def make_run(tmp_path):
    """make_run(sims, **run_toml_settings) -> the run directory path."""
    counter = iter(range(1000))

    def make(sims: list[SimVariant], **settings) -> Path:
        return write_run(tmp_path / f"run{next(counter)}", sims, **settings)

    return make


@pytest.fixture
def sim_variant():
    """The SimVariant class (test modules cannot import conftest under importlib mode)."""
    return SimVariant


def long_run(seed: int = 0, swaps: int = 60, rps: float = 20.0):
    """A variant's timeline, requests, memory and breakdown rows, built directly (no files):
    swaps of random lengths, some unsettled or never AVAILABLE, gaps and NaN in memory."""
    rng = np.random.default_rng(seed)
    t, staged = 1000.0, []
    for _ in range(swaps):
        staged.append(t)
        t += rng.uniform(2, 20)
    swap_list = []
    for index, start in enumerate(staged, 1):
        following = staged[index] if index < len(staged) else None
        settled = None if rng.random() < 0.1 else start + rng.uniform(1, 1.9)
        available = None if rng.random() < 0.1 else start + rng.uniform(0.1, 0.9)
        swap_list.append(
            SwapTimes(
                index=index,
                version=index + 1,
                old_version=index,
                staged_t=start,
                available_t=available,
                old_end_t=None if available is None else available + rng.uniform(0, 0.3),
                settled_t=settled,
                settle_timed_out=False,
                load_failed=False,
                next_staged_t=following,
            )
        )
    timeline = Timeline(
        started_t=990.0,
        baseline_version=1,
        baseline_t=999.0,
        swaps=swap_list,
        server_exit=None,
        stopped_t=t + 5,
    )
    sent = np.sort(rng.uniform(990, t + 10, int(rps * (t - 980))))
    scale = 10.0 ** rng.integers(0, 5, len(sent))  # ties: latencies of few digits
    requests = LatencySeries(
        pd.DataFrame(
            {
                "t_intended": sent,
                "t_start": sent + 0.001,
                "latency_ms": np.round(rng.lognormal(1, 0.5, len(sent)) * scale) / scale,
                "status": np.where(rng.random(len(sent)) < 0.05, 503.0, 200.0),
            }
        )
    )
    at = np.arange(985.0, t + 10, 0.1)
    at = at[(at < 1100) | (at > 1130)]  # a gap without samples
    rss = np.round(rng.normal(300, 5, len(at)), 1) * MIB
    rss[rng.random(len(at)) < 0.05] = np.nan
    cpu_s = np.round(np.cumsum(rng.uniform(0, 0.01, len(at))), 2)  # /proc's 10 ms ticks
    cpu_s[len(at) // 2 :] -= cpu_s[len(at) // 2]  # a restarted counter
    cpu_s[rng.random(len(at)) < 0.05] = np.nan
    frame = pd.DataFrame({"t": at, "rss_bytes": rss, "cpu_s": cpu_s})
    memory = MemorySeries(frame, "rss_bytes")
    breakdown = [
        BreakdownRow(
            t=start + 1.9,
            swap=index,
            point="baseline" if index == 0 else "settled",
            anon_bytes=int((400 + rng.normal(0, 2)) * MIB),
            rss_bytes=int(760 * MIB),
            lazyfree_bytes=0,
            file_rss_bytes=int(356 * MIB),
            in_use_bytes=int((230 + rng.normal(0, 1)) * MIB),
            free_held_bytes=None,
            mapped_bytes=None,
            arenas=None,
        )
        for index, start in enumerate([995.0, *staged])
    ]
    return timeline, requests, memory, breakdown


@pytest.fixture(name="long_run")
def long_run_fixture():
    """long_run (test modules cannot import conftest under importlib mode)."""
    return long_run
