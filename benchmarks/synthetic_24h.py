"""How long does `soak report` take on a 24-hour run? Wall time, peak RSS and CPU time.

Writes a synthetic run directory as a 24-hour soak would leave it (variants in
turn, memory at 10 Hz, latency at 20 rps, a swap every 2 minutes: about 0.9 M
memory rows and 1.7 M latency rows in all), then runs `python -m soak report`
on it in a child process, several times, for each source tree given:

    python benchmarks/synthetic_24h.py --code /tmp/soak-main --code .

Peak RSS is the child's own (os.wait4), so the parent's memory does not count.
Target (issue 8): under 10 s and under 1 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

MIB = 1 << 20
T0 = 1_700_000_000.0
BASELINE_SETTLED_S = 20.0
SWAP_PERIOD_S = 120.0
MODEL_MB = 128.0
# Offsets of a swap's steps from its staging (s), as the stand-in server shows them.
STEPS = (
    ("staged", 0.0),
    ("loading", 1.0),
    ("available", 3.0),
    ("unloading", 3.2),
    ("end", 3.5),
    ("settled", 12.0),
)
VARIANTS = (("glibc", 0.4), ("jemalloc", 0.0))  # (name, MiB kept per swap)


def write_run(out: Path, hours: float, variants: int, seed: int = 0) -> Path:
    """A run directory of `variants` variants run in turn over `hours` in all."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    duration = hours * 3600 / variants
    chosen = VARIANTS[:variants]
    swaps = int((duration - BASELINE_SETTLED_S - 30) // SWAP_PERIOD_S)
    lines = [
        'model_name = "ranker"',
        'backend = "process"',
        f"swaps = {swaps}",
        "warmup_swaps = 2",
        'metric = "anon_bytes"',
    ]
    for name, _ in chosen:
        lines += ["", "[[variants]]", f'name = "{name}"', f'allocator = "{name}"']
    (out / "run.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for i, (name, kept) in enumerate(chosen):
        start = T0 + i * duration
        _write_variant(out / name, name, kept, start, duration, swaps, rng)
    return out


def _write_variant(
    vdir: Path,
    name: str,
    kept_mb: float,
    start: float,
    duration: float,
    swaps: int,
    rng: np.random.Generator,
) -> None:
    vdir.mkdir(parents=True, exist_ok=True)
    staged = BASELINE_SETTLED_S + 2.0 + SWAP_PERIOD_S * np.arange(swaps)  # offsets of swaps 1..N

    events = [
        (start - 0.01, 0, "staged", 1, "1"),
        (start, 0, "started", "", "4242"),
        (start + 0.5, 0, "loading", 1, ""),
        (start + 2.0, 0, "available", 1, ""),
        (start + BASELINE_SETTLED_S, 0, "settled", 1, "300.0"),
    ]
    for k in range(1, swaps + 1):
        s = staged[k - 1]
        for step, offset in STEPS:
            version = k if step in ("unloading", "end") else k + 1
            detail = str(version) if step == "staged" else ""
            events.append((start + s + offset, k, step, version, detail))
    events.append((start + duration, swaps, "stopped", "", ""))
    pd.DataFrame(events, columns=["t", "swap", "event", "version", "detail"]).to_csv(
        vdir / "events.csv", index=False
    )

    # memory.csv at 10 Hz: baseline + kept per swap, a model-sized bump while loading
    t = np.arange(0.0, duration, 0.1)
    k = np.searchsorted(staged, t, side="right")  # the swap going on (0: baseline)
    since = t - np.where(k > 0, staged[np.maximum(k - 1, 0)], 0.0)
    base = 300.0 + kept_mb * np.maximum(k - 1, 0)
    load = np.clip((since - 1.0) / 2.0, 0.0, 1.0) * MODEL_MB
    decay = np.where(since > 3.5, np.exp(-(since - 3.5) / 2.0), 1.0)
    anon_mb = base + np.where(k > 0, load * decay + kept_mb * (since > 3.5), 0.0)
    anon = ((anon_mb + rng.normal(0, 0.05, len(t))) * MIB).astype(np.int64)
    pd.DataFrame(
        {"t": start + t, "rss_bytes": anon + 120 * MIB, "anon_bytes": anon, "swap": k}
    ).to_csv(vdir / "memory.csv", index=False)

    # latency.csv at 20 rps: slower while versions change, a few errors there
    t = np.arange(1.0, duration - 1.0, 0.05)
    k = np.searchsorted(staged, t, side="right")
    since = t - np.where(k > 0, staged[np.maximum(k - 1, 0)], 0.0)
    in_swap = (k > 0) & (since <= 3.5)
    ms = np.where(in_swap, 30.0, 5.0) + np.abs(rng.normal(0, 0.5, len(t)))
    status = np.where(in_swap & (rng.random(len(t)) < 0.02), 503, 200)
    intended = start + t
    pd.DataFrame(
        {
            "t_intended": intended,
            "t_start": intended + 0.0005,
            "t_end": intended + ms / 1000,
            "latency_ms": ms,
            "status": status,
            "swap": k,
        }
    ).to_csv(vdir / "latency.csv", index=False)

    meta = {
        "name": name,
        "allocator": name,
        "library": None,
        "allocator_verified": True,
        "status": "completed",
        "reason": None,
        "model_size_bytes": int(MODEL_MB * MIB),
    }
    (vdir / "variant.json").write_text(json.dumps(meta), encoding="utf-8")


@dataclass(frozen=True)
class Timing:
    """One `soak report` in a child process: its wall time, peak RSS and CPU time."""

    wall_s: float
    peak_mib: float  # the child's own peak RSS (os.wait4), not the parent's
    cpu_s: float  # user + system

    def __str__(self) -> str:
        return f"{self.wall_s:.2f} s wall, {self.peak_mib:.0f} MiB peak RSS, {self.cpu_s:.2f} s CPU"


def time_report(code: Path, run_dir: Path, memory_limit: int | None = None) -> Timing:
    """`python -m soak report RUN_DIR` with `code` first on the path, timed.

    `memory_limit` (bytes) bounds the child's address space: past it the child fails
    with a MemoryError instead of calling in the kernel's OOM killer.
    """
    env = dict(os.environ, PYTHONPATH=str(code.resolve()), MPLBACKEND="Agg")

    def limit_memory() -> None:
        if memory_limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    begin = time.perf_counter()
    child = subprocess.Popen(  # cwd: `-m` puts it first on sys.path, before PYTHONPATH
        [sys.executable, "-m", "soak", "report", str(run_dir.resolve())],
        cwd=code.resolve(),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=limit_memory,
    )
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - begin
    child.returncode = os.waitstatus_to_exitcode(status)
    assert child.stderr is not None
    errors = child.stderr.read().decode(errors="replace")
    child.stderr.close()
    if child.returncode != 0:
        raise SystemExit(f"soak report failed ({code}): {errors[-2000:]}")
    peak = usage.ru_maxrss / 1024  # KiB on Linux
    return Timing(wall, peak, usage.ru_utime + usage.ru_stime)


def data_rows(run_dir: Path, name: str) -> int:
    """Data rows in every VARIANT/name of the run."""
    total = 0
    for path in run_dir.glob(f"*/{name}"):
        with path.open("rb") as f:
            total += sum(1 for _ in f) - 1
    return total


ROOT = Path(__file__).resolve().parent.parent


def add_timing_arguments(parser: argparse.ArgumentParser, repeat: int) -> None:
    """--repeat, --reuse and --code, as both report-timing benchmarks take them."""
    parser.add_argument("--repeat", type=int, default=repeat)
    parser.add_argument("--reuse", action="store_true", help="time the run(s) already at --out")
    parser.add_argument(
        "--code",
        type=Path,
        action="append",
        help="a source tree to time (repeatable; default: this checkout)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/soak-synthetic-24h"))
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--variants", type=int, choices=(1, 2), default=2)
    add_timing_arguments(parser, repeat=3)
    args = parser.parse_args()
    codes = args.code or [ROOT]

    begin = time.perf_counter()
    reuse = args.reuse and (args.out / "run.toml").exists()
    run_dir = args.out if reuse else write_run(args.out, args.hours, args.variants)
    memory_rows, latency_rows = (data_rows(run_dir, name) for name in ("memory.csv", "latency.csv"))
    print(
        f"{run_dir}: {args.hours:g} h, {args.variants} variant(s), {memory_rows} memory rows, "
        f"{latency_rows} latency rows (written in {time.perf_counter() - begin:.1f} s)"
    )
    for code in codes:
        for i in range(args.repeat):
            print(f"{code}: run {i + 1}: {time_report(code, run_dir)}", flush=True)


if __name__ == "__main__":
    main()
