"""How closely does the prober keep its schedule, at what CPU, and does it hide stalls?

Starts benchmarks/fast_endpoint.py in its own process (so its CPU is not the
prober's), then:

1. runs the real LatencyProber at each rate for `--seconds` and prints the achieved
   rate, the send lag (t_start - t_intended) p50/p99/max, the share of late sends
   (lag over the analysis' LATE_SEND_MS) and the CPU of this process (only the prober
   and its CSV log run in it) as % of one core; beside each run, a sibling process
   sleeps one thread to the same schedule (`--timer-floor`): how late the OS wakes a
   thread then, the share of the lag no prober code can remove;
2. stalls the endpoint for 1 s during a 50 rps run of the prober and of a closed-loop
   client (send, wait for the answer, send the next; same RestPredict call), and
   prints for each how many requests show the stall (due in it, latency up to its end
   from when they were due, within 5 ms), the max latency and the p99.

Each measurement runs `--repeat` times; the last lines give the spread (min..max).

    PYTHONPATH=. python benchmarks/prober_accuracy.py [--rates 20,100,500] [--seconds 20]
        [--repeat 3]
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from soak.analysis.latency import LATE_SEND_MS
from soak.samplers.clock import SwapClock
from soak.samplers.latency import LatencyProber, RestPredict
from soak.store.csv_log import CsvLog
from soak.store.records import LatencySample

BODY = {"signature_name": "serving_default", "instances": [{"x": [1.0, 2.0]}]}
ENDPOINT = Path(__file__).with_name("fast_endpoint.py")
STALL_RPS = 50
STALL_S = 1.0
STALL_AT_S = 1.5  # into the run
STALL_RUN_S = 4.0
SHOWS_STALL_TOLERANCE_MS = 5.0


@dataclass(frozen=True)
class Row:
    t_intended: float
    t_start: float
    t_end: float
    latency_ms: float


@dataclass(frozen=True)
class RateFigures:
    achieved_rps: float
    lag_p50_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    late_pct: float
    cpu_pct: float
    floor_p50_ms: float
    floor_p99_ms: float


@dataclass(frozen=True)
class StallFigures:
    requests: int
    due_in_stall: int
    showing_stall: int
    max_ms: float
    p99_ms: float


def percentile(values: list[float], q: float) -> float:
    """Nearest rank, as the prober's recent_p99_ms."""
    ordered = sorted(values)
    return ordered[max(math.ceil(q / 100 * len(ordered)) - 1, 0)]


@contextmanager
def endpoint() -> Iterator[str]:
    """The fast endpoint in its own process; yields its base URL."""
    proc = subprocess.Popen([sys.executable, str(ENDPOINT)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield f"http://127.0.0.1:{int(proc.stdout.readline())}"
    finally:
        proc.terminate()
        proc.wait()


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def run_prober(url: str, rps: float, seconds: float, during: Callable[[], None] = lambda: None):
    """Rows of one prober run (sorted by due time) and its CPU as % of one core."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "latency.csv"
        log = CsvLog(path, LatencySample)
        prober = LatencyProber(url, BODY, rps, log, SwapClock(), max_duration_s=seconds)
        cpu0, wall0 = cpu_seconds(), time.monotonic()
        prober.start()
        during()
        time.sleep(max(seconds - (time.monotonic() - wall0), 0))
        prober.stop()
        log.close()
        cpu_pct = (cpu_seconds() - cpu0) / (time.monotonic() - wall0) * 100
        with path.open() as f:
            rows = [
                Row(*(float(r[k]) for k in ("t_intended", "t_start", "t_end", "latency_ms")))
                for r in csv.DictReader(f)
            ]
    return sorted(rows, key=lambda r: r.t_intended), cpu_pct


def timer_floor(rps: float, seconds: float) -> None:
    """Sleep one thread to an open-loop schedule (Event.wait, as the prober's workers);
    print how late it woke, in ms: [p50, p99]."""
    wake, lags = threading.Event(), []
    print("ready", flush=True)
    t0 = time.monotonic()
    for i in range(int(rps * seconds)):
        due = t0 + i / rps
        wake.wait(max(due - time.monotonic(), 0))
        lags.append((time.monotonic() - due) * 1000)
    print(json.dumps([percentile(lags, 50), percentile(lags, 99)]), flush=True)


def measure_rate(base: str, rps: float, seconds: float) -> RateFigures:
    floor = subprocess.Popen(
        [sys.executable, __file__, "--timer-floor", str(rps), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert floor.stdout is not None and floor.stdout.readline() == "ready\n"
    rows, cpu_pct = run_prober(f"{base}/v1/models/m:predict", rps, seconds)
    floor_p50, floor_p99 = json.loads(floor.communicate()[0])
    t0 = rows[0].t_intended
    on_time = sum(r.t_start <= t0 + seconds for r in rows)
    lags = [(r.t_start - r.t_intended) * 1000 for r in rows]
    return RateFigures(
        achieved_rps=on_time / seconds,
        lag_p50_ms=percentile(lags, 50),
        lag_p99_ms=percentile(lags, 99),
        lag_max_ms=max(lags),
        late_pct=100 * sum(lag > LATE_SEND_MS for lag in lags) / len(lags),
        cpu_pct=cpu_pct,
        floor_p50_ms=floor_p50,
        floor_p99_ms=floor_p99,
    )


def start_stall(base: str) -> tuple[float, float]:
    connection = http.client.HTTPConnection(base.removeprefix("http://"))
    connection.request("POST", f"/stall?s={STALL_S}")
    window = json.loads(connection.getresponse().read())
    connection.close()
    return window["from"], window["until"]


def stall_figures(rows: list[Row], stall: tuple[float, float]) -> StallFigures:
    """A request shows the stall when it was due in it and its latency covers the rest of it."""
    latencies = [r.latency_ms for r in rows]
    due = [r for r in rows if stall[0] <= r.t_intended < stall[1]]
    return StallFigures(
        requests=len(rows),
        due_in_stall=len(due),
        showing_stall=sum(
            r.latency_ms >= (stall[1] - r.t_intended) * 1000 - SHOWS_STALL_TOLERANCE_MS for r in due
        ),
        max_ms=max(latencies),
        p99_ms=percentile(latencies, 99),
    )


def open_loop_over_stall(base: str) -> StallFigures:
    stall: list[tuple[float, float]] = []

    def stall_later() -> None:
        time.sleep(STALL_AT_S)
        stall.append(start_stall(base))

    rows, _ = run_prober(f"{base}/v1/models/m:predict", STALL_RPS, STALL_RUN_S, stall_later)
    return stall_figures(rows, stall[0])


def closed_loop_over_stall(base: str) -> StallFigures:
    """Send, wait for the answer, send the next at its slot or at once if that passed."""
    call = RestPredict(f"{base}/v1/models/m:predict", BODY)
    rows: list[Row] = []
    t0 = time.monotonic()
    epoch = time.time() - t0
    stall: tuple[float, float] | None = None
    slot = t0
    while slot < t0 + STALL_RUN_S:
        time.sleep(max(slot - time.monotonic(), 0))
        if stall is None and time.monotonic() >= t0 + STALL_AT_S:
            stall = start_stall(base)
        start = time.monotonic()
        call()
        end = time.monotonic()
        rows.append(Row(epoch + start, epoch + start, epoch + end, (end - start) * 1000))
        slot = max(slot + 1 / STALL_RPS, time.monotonic())
    call.close()
    assert stall is not None
    return stall_figures(rows, stall)


def spread(values: list[float], fmt: str) -> str:
    return f"{min(values):{fmt}}..{max(values):{fmt}}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="20,100,500", help="requests/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="per run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timer-floor", nargs=2, type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.timer_floor:
        timer_floor(*args.timer_floor)
        return
    rates = [float(r) for r in args.rates.split(",")]

    print(f"late send: lag > {LATE_SEND_MS:g} ms (soak.analysis.latency.LATE_SEND_MS)")
    with endpoint() as base:
        by_rate: dict[float, list[RateFigures]] = {rps: [] for rps in rates}
        for run in range(args.repeat):
            for rps in rates:
                f = measure_rate(base, rps, args.seconds)
                by_rate[rps].append(f)
                print(
                    f"run {run + 1} {rps:5g} rps: achieved {f.achieved_rps:7.2f} rps, "
                    f"lag p50 {f.lag_p50_ms:.3f} p99 {f.lag_p99_ms:.3f} max {f.lag_max_ms:.1f} ms,"
                    f" late {f.late_pct:.2f} %, cpu {f.cpu_pct:.1f} % of a core;"
                    f" timer floor p50 {f.floor_p50_ms:.3f} p99 {f.floor_p99_ms:.3f} ms"
                    f" (load average {os.getloadavg()[0]:.2f})",
                    flush=True,
                )
        stalls: dict[str, list[StallFigures]] = {"open loop (prober)": [], "closed loop": []}
        for run in range(args.repeat):
            for name, measure in (
                ("open loop (prober)", open_loop_over_stall),
                ("closed loop", closed_loop_over_stall),
            ):
                s = measure(base)
                stalls[name].append(s)
                print(
                    f"run {run + 1} {STALL_S:g} s stall at {STALL_RPS} rps, {name}: "
                    f"{s.requests} requests, {s.due_in_stall} due in the stall, "
                    f"{s.showing_stall} show it, "
                    f"max {s.max_ms:.0f} ms, p99 {s.p99_ms:.0f} ms",
                    flush=True,
                )

    print(f"\nspread over {args.repeat} runs (min..max):")
    for rps, figures in by_rate.items():
        print(
            f"{rps:5g} rps: achieved {spread([f.achieved_rps for f in figures], '.2f')} rps, "
            f"lag p50 {spread([f.lag_p50_ms for f in figures], '.3f')} ms, "
            f"p99 {spread([f.lag_p99_ms for f in figures], '.3f')} ms, "
            f"max {spread([f.lag_max_ms for f in figures], '.1f')} ms, "
            f"late {spread([f.late_pct for f in figures], '.2f')} %, "
            f"cpu {spread([f.cpu_pct for f in figures], '.1f')} %; "
            f"timer floor p50 {spread([f.floor_p50_ms for f in figures], '.3f')} ms, "
            f"p99 {spread([f.floor_p99_ms for f in figures], '.3f')} ms"
        )
    for name, figures in stalls.items():
        print(
            f"stall, {name}: requests {spread([s.requests for s in figures], 'd')}, "
            f"showing it {spread([s.showing_stall for s in figures], 'd')}, "
            f"max {spread([s.max_ms for s in figures], '.0f')} ms, "
            f"p99 {spread([s.p99_ms for s in figures], '.0f')} ms"
        )


if __name__ == "__main__":
    main()
