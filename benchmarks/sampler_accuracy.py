"""How well does the memory sampler keep time, and how soon does it see a step?

The real `MemorySampler` (its thread, ticker, /proc reader and CSV log) samples a
child process at the default 10 Hz while the child allocates and touches 100 MiB
and frees it again, five times. Printed per load condition:

- achieved sample rate, and the sampling interval's p50/p99/max (jitter);
- the delay from the moment the child's 100 MiB is touched to the first sample
  that shows it (p50/max over the steps; the ideal is half an interval on average).

Load conditions: `idle`; `cpu` (one busy process per core beside it: the server
competing for the CPUs); `gil` (a busy Python thread inside the sampling process:
soak's own other threads competing for the interpreter).

    python benchmarks/sampler_accuracy.py --repeat 3
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from soak.core.procfs import read_proc_memory
from soak.samplers.clock import SwapClock
from soak.samplers.memory import MemorySampler
from soak.store.csv_log import CsvLog
from soak.store.records import MIB, MemorySample

INTERVAL_S = 0.1
STEP_MIB = 100
STEPS = 5
HOLD_S = 1.0  # how long the child keeps each step, and waits between steps

# The child: on each line of stdin, touch STEP_MIB (then print when it is touched),
# hold it, free it.
CHILD = f"""
import sys, time
for _ in sys.stdin:
    block = b"\\x01" * ({STEP_MIB} << 20)  # every page written: resident at once
    print(time.time(), flush=True)
    time.sleep({HOLD_S})
    del block
    print(time.time(), flush=True)
"""


class ChildTarget:
    """The sampler's view of the child: its /proc memory (what a ProcessTarget reads)."""

    def __init__(self, pid: int):
        self.pid = pid

    def read_memory(self) -> dict[str, int]:
        return read_proc_memory(self.pid)

    def exit_reason(self) -> str | None:
        return None


@dataclass(frozen=True)
class Accuracy:
    rate_hz: float
    interval_p50_ms: float
    interval_p99_ms: float
    interval_max_ms: float
    step_delays_ms: list[float]


def _burn(stop) -> None:
    while not stop.is_set():
        pass


@contextmanager
def load(condition: str):
    if condition == "cpu":
        stop = multiprocessing.Event()
        burners = [
            multiprocessing.Process(target=_burn, args=(stop,)) for _ in range(os.cpu_count() or 1)
        ]
        for b in burners:
            b.start()
        try:
            yield
        finally:
            stop.set()
            for b in burners:
                b.join()
    elif condition == "gil":
        done = threading.Event()
        thread = threading.Thread(target=_burn, args=(done,), daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
    else:
        yield


def measure(condition: str) -> Accuracy:
    out = Path(tempfile.mkdtemp(prefix="soak-sampler-"))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdin is not None and child.stdout is not None
    log = CsvLog(out / "memory.csv", MemorySample, ["t", "rss_bytes", "anon_bytes", "swap"])
    sampler = MemorySampler(ChildTarget(child.pid), log, SwapClock(), interval_s=INTERVAL_S)
    touched = []
    with load(condition):
        sampler.start()
        time.sleep(HOLD_S)
        for _ in range(STEPS):
            child.stdin.write("step\n")
            child.stdin.flush()
            touched.append(float(child.stdout.readline()))
            child.stdout.readline()  # freed
            time.sleep(HOLD_S)
        sampler.stop()
    child.stdin.close()
    child.wait()
    log.close()
    with (out / "memory.csv").open() as f:
        rows = [(float(r["t"]), int(r["anon_bytes"])) for r in csv.DictReader(f)]
    times = [t for t, _ in rows]
    intervals = sorted((b - a) * 1000 for a, b in zip(times, times[1:], strict=False))
    floor = min(anon for _, anon in rows)
    delays = []
    for t_touched in touched:
        seen = next(
            t for t, anon in rows if t >= t_touched and anon >= floor + 0.95 * STEP_MIB * MIB
        )
        delays.append((seen - t_touched) * 1000)
    return Accuracy(
        rate_hz=(len(times) - 1) / (times[-1] - times[0]),
        interval_p50_ms=statistics.median(intervals),
        interval_p99_ms=intervals[int(0.99 * (len(intervals) - 1))],
        interval_max_ms=intervals[-1],
        step_delays_ms=delays,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--conditions", default="idle,cpu,gil")
    args = parser.parse_args()
    print(f"memory sampler at {1 / INTERVAL_S:g} Hz; a {STEP_MIB} MiB step, {STEPS} times per run")
    for condition in args.conditions.split(","):
        for i in range(args.repeat):
            a = measure(condition)
            print(
                f"{condition:5s} run {i + 1}: {a.rate_hz:.2f} samples/s; interval p50"
                f" {a.interval_p50_ms:.1f} p99 {a.interval_p99_ms:.1f} max {a.interval_max_ms:.1f}"
                f" ms; step seen after p50 {statistics.median(a.step_delays_ms):.0f}"
                f" max {max(a.step_delays_ms):.0f} ms",
                flush=True,
            )


if __name__ == "__main__":
    main()
