"""How do soak's time and cost grow with the model? Default runs of demo models by size.

Per size (`--demo-size-mb`), a default `soak run` (glibc, then jemalloc, `--swaps auto`)
a few times: each variant's verdict and swaps, the run's time to a decision, the
median time per swap against its floor (benchmarks/swap_time.py), the server's peak
during a swap, and soak's own peak RSS (VmHWM) and CPU seconds, read from /proc once
a second while it runs (the server is another process and is not counted).

    .venv/bin/python benchmarks/model_size.py [--sizes 16 128 512 2048] [--repeats 2]
        [--out DIR] [-- EXTRA soak run ARGS]

The demo model of each size is generated once (cached) before its first run, so the
runs time soak, not the model's generation.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from swap_time import swap_figures

from soak.driver.model_versions import demo_model_path

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class SizeRun:
    size_mb: float
    elapsed_s: float
    soak_cpu_s: float
    soak_peak_mib: float
    verdicts: dict[str, str]  # variant -> verdict
    swaps: dict[str, int]  # variant -> completed swaps
    server_peak_mib: dict[str, float]  # variant -> highest memory during a swap


def run_once(run_dir: Path, size_mb: float, extra: list[str]) -> SizeRun:
    command = [sys.executable, "-m", "soak", "run", "--quiet", "--out", str(run_dir)]
    command += ["--demo-size-mb", f"{size_mb:g}", *extra]
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cpu_s, peak_mib = 0.0, 0.0
    while process.poll() is None:
        with contextlib.suppress(OSError, ValueError):  # between the last reading and the exit
            cpu_s, peak_mib = _own_usage(process.pid)
        time.sleep(1.0)
    elapsed = time.monotonic() - started
    summary = json.loads((run_dir / "summary.json").read_text())
    return SizeRun(
        size_mb=size_mb,
        elapsed_s=elapsed,
        soak_cpu_s=cpu_s,
        soak_peak_mib=peak_mib,
        verdicts={v["name"]: v["memory"]["verdict"] for v in summary["variants"]},
        swaps={v["name"]: v["swaps_completed"] for v in summary["variants"]},
        server_peak_mib={
            v["name"]: max((s.get("peak_mb") or 0.0) for s in v["swaps"]) if v["swaps"] else 0.0
            for v in summary["variants"]
        },
    )


def _own_usage(pid: int) -> tuple[float, float]:
    """soak's own utime+stime (s) and peak RSS (VmHWM, MiB) so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / TICKS
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return cpu_s, int(line.split()[1]) / 1024
    raise ValueError("no VmHWM")


def _spread(values: list[float], fmt: str = ".1f") -> str:
    if not values:
        return "-"
    return f"{min(values):{fmt}}..{max(values):{fmt}}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[16, 128, 512, 2048])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, help="keep the run dirs here")
    parser.add_argument("extra", nargs="*", help="extra `soak run` arguments (after --)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="soak-sizes-"))
    rows = []
    for size in args.sizes:
        demo_model_path(size)  # generated once, before the runs it would otherwise slow
        runs, dirs = [], []
        for i in range(args.repeats):
            run_dir = out / f"{size:g}mb-{i}"
            run = run_once(run_dir, size, args.extra)
            runs.append(run)
            dirs.append(run_dir)
            print(f"{size:g} MiB run {i + 1}: {run}", flush=True)
        figures = swap_figures(dirs)
        for variant in runs[0].verdicts:
            swap = figures.get(variant, {})
            rows.append(
                (
                    f"{size:g}",
                    variant,
                    " ".join(r.verdicts.get(variant, "-") for r in runs),
                    " ".join(str(r.swaps.get(variant, 0)) for r in runs),
                    _spread([r.elapsed_s / 60 for r in runs]),
                    f"{statistics.median(swap['swap']):.1f}" if swap.get("swap") else "-",
                    f"{statistics.median(swap['floor']):.1f}" if swap.get("floor") else "-",
                    _spread([r.server_peak_mib.get(variant, 0.0) for r in runs], ".0f"),
                    _spread([r.soak_peak_mib for r in runs], ".0f"),
                    _spread([r.soak_cpu_s for r in runs]),
                )
            )
    header = (
        "MiB", "variant", "verdicts", "swaps", "run min", "swap s", "floor s",
        "server peak MiB", "soak peak MiB", "soak CPU s",
    )  # fmt: skip
    print("\n| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nrun dirs: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
