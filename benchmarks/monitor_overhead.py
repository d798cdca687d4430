"""soak's own cost while it watches a server: CPU share of one core, and its memory.

Runs `soak run` as a user would (jemalloc, fixed swaps, the demo model) and reads
the soak process's own utime+stime and RSS from /proc once a second. The server is
another process; its CPU is not counted. The figure is the CPU share over the middle
third of the measuring phase (from the first to the last request in latency.csv):
the steady cost, without start-up (imports, model staging) or the analysis.

    python benchmarks/monitor_overhead.py --repeat 3
    python benchmarks/monitor_overhead.py --scale 10     # 10x rps, memory and status rates
    python benchmarks/monitor_overhead.py --profile      # py-spy stacks of soak's threads

Each --scale multiplies the default rates: 20 requests/s, memory at 10 Hz and the
status poll's fast rate (around swaps) at 10 Hz.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
DEFAULT_RPS = 20.0
DEFAULT_MEMORY_INTERVAL_S = 0.1
DEFAULT_STATUS_INTERVAL_S = 0.1


@dataclass(frozen=True)
class Reading:
    t: float  # epoch seconds
    cpu_s: float  # utime + stime of the soak process
    rss_mib: float
    threads: dict[int, float]  # thread id -> its utime + stime


@dataclass(frozen=True)
class Overhead:
    cpu_share: float  # of one core, middle third of the measuring phase
    measured_s: float  # length of that middle third
    rss_start_mib: float  # soak's RSS at the start of the middle third
    rss_end_mib: float  # ... at the end of the measuring phase
    requests: int
    by_thread: dict[str, float]  # thread name -> CPU share of one core, middle third


def cpu_seconds(stat_path: Path) -> float:
    stat = stat_path.read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def read(pid: int) -> Reading | None:
    try:
        statm = Path(f"/proc/{pid}/statm").read_text().split()
        cpu = cpu_seconds(Path(f"/proc/{pid}/stat"))
    except OSError:
        return None
    threads = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            threads[int(task.name)] = cpu_seconds(task / "stat")
    return Reading(time.time(), cpu, int(statm[1]) * PAGE / 2**20, threads)


def thread_names(pid: int) -> dict[int, str]:
    """Python thread names by thread id, from `py-spy dump` (empty without py-spy)."""
    if shutil.which("py-spy") is None:
        return {}
    dump = subprocess.run(["py-spy", "dump", "--pid", str(pid)], capture_output=True, text=True)
    return {
        int(m.group(1)): m.group(2)
        for m in re.finditer(r'^Thread (\d+) .*"(.+)"', dump.stdout, re.M)
    }


def per_thread(first: Reading, last: Reading, names: dict[int, str]) -> dict[str, float]:
    """CPU share by thread name (pool workers summed) between two readings."""
    shares: dict[str, float] = {}
    for tid, cpu in last.threads.items():
        name = re.sub(r"_\d+$", "_*", names.get(tid, "?"))
        used = (cpu - first.threads.get(tid, 0.0)) / (last.t - first.t)
        shares[name] = shares.get(name, 0.0) + used
    return dict(sorted(shares.items(), key=lambda kv: -kv[1]))


def measuring_phase(run_dir: Path) -> tuple[float, float, int]:
    """First and last request's due time in latency.csv, and how many requests."""
    [latency] = run_dir.glob("*/latency.csv")
    with latency.open() as f:
        due = [float(row["t_intended"]) for row in csv.DictReader(f)]
    return min(due), max(due), len(due)


def run_once(scale: float, swaps: int, profile: Path | None, extra: list[str]) -> Overhead:
    out = Path(tempfile.mkdtemp(prefix="soak-overhead-"))
    run_dir = out / "run"
    args = [
        sys.executable, "-m", "soak", "run", "--quiet", "--out", str(run_dir),
        "--allocators", "jemalloc", "--swaps", str(swaps),
        "--history", str(out / "history.sqlite"),
    ]  # fmt: skip
    if scale != 1:  # at 1x no rate flags: the same command measures soak versions without them
        args += [
            "--rps", str(DEFAULT_RPS * scale),
            "--memory-interval", str(DEFAULT_MEMORY_INTERVAL_S / scale),
            "--status-interval", str(DEFAULT_STATUS_INTERVAL_S / scale),
        ]  # fmt: skip
    args += extra
    soak = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    spy = None
    if profile is not None:
        spy = subprocess.Popen(
            ["py-spy", "record", "--pid", str(soak.pid), "--threads", "--nonblocking",
             "--rate", "50", "--format", "raw", "--output", str(profile)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    readings = []
    names: dict[int, str] = {}
    while soak.poll() is None:
        if (r := read(soak.pid)) is not None:
            readings.append(r)
            if len(readings) % 20 == 0:  # threads come and go per variant: keep naming them
                names.update(thread_names(soak.pid))
        time.sleep(1.0)
    if spy is not None:
        spy.wait(timeout=60)
    if soak.returncode != 0:
        raise SystemExit(f"soak run exited {soak.returncode}; run dir {run_dir}")
    first, last, requests = measuring_phase(run_dir)
    third = (last - first) / 3
    window = [r for r in readings if first + third <= r.t <= last - third]
    tail = [r for r in readings if first + third <= r.t <= last]
    shutil.rmtree(out)
    if len(window) < 3:
        raise SystemExit("run too short to measure: raise --swaps")
    cpu = (window[-1].cpu_s - window[0].cpu_s) / (window[-1].t - window[0].t)
    return Overhead(
        cpu,
        window[-1].t - window[0].t,
        tail[0].rss_mib,
        tail[-1].rss_mib,
        requests,
        per_thread(window[0], window[-1], names),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the default rates")
    parser.add_argument("--swaps", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy collapsed stacks per run (flamegraph.pl input)",
    )
    parser.add_argument("extra", nargs="*", help="more `soak run` arguments (after --)")
    args = parser.parse_args()
    results = []
    for i in range(args.repeat):
        profile = Path(f"monitor_overhead_{args.scale:g}x_{i}.folded") if args.profile else None
        o = run_once(args.scale, args.swaps, profile, args.extra)
        results.append(o)
        print(
            f"run {i + 1}: soak CPU {o.cpu_share * 100:.2f}% of one core over {o.measured_s:.0f} s"
            f" (middle third); soak RSS {o.rss_start_mib:.1f} -> {o.rss_end_mib:.1f} MiB;"
            f" {o.requests} requests" + (f"; profile {profile}" if profile else ""),
            flush=True,
        )
        print(
            "  by thread: "
            + ", ".join(
                f"{name} {share * 100:.2f}%" for name, share in o.by_thread.items() if share
            )
        )
    shares = [o.cpu_share * 100 for o in results]
    print(
        f"{args.scale:g}x default rates, {len(shares)} runs: soak CPU "
        f"{min(shares):.2f}..{max(shares):.2f}% of one core"
        f" (median {statistics.median(shares):.2f}%)"
    )


if __name__ == "__main__":
    main()
