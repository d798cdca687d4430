"""How much does glibc keep across hot swaps, against request concurrency and load threads?

glibc's retention grows with the number of malloc arenas in use, that is with
the threads that allocate at once (request threads, load threads, TF's op
threads). This runs `soak run` on the demo model for each setting below, a few
times each, and prints the memory each run kept over its baseline, so the
defaults of `soak run` can be chosen to show the real effect (README table).

    .venv/bin/python benchmarks/retention_vs_threads.py [--repeats 2] [--swaps 8]
        [--allocators glibc] [--only NAME ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS: dict[str, list[str]] = {
    "concurrency 1": ["--concurrency", "1"],
    "concurrency 4": ["--concurrency", "4"],
    "concurrency 16": ["--concurrency", "16"],
    "load threads 4": ["--server-arg=--num_load_threads=4"],
    "concurrency 4, load threads 4": [
        "--concurrency",
        "4",
        "--server-arg=--num_load_threads=4",
    ],
    "op threads 16, load threads 4": [
        "--server-arg=--tensorflow_intra_op_parallelism=16",
        "--server-arg=--tensorflow_inter_op_parallelism=16",
        "--server-arg=--num_load_threads=4",
    ],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--swaps", type=int, default=8)
    parser.add_argument("--allocators", default="glibc")
    parser.add_argument("--only", nargs="*", choices=sorted(SETTINGS), help="settings to run")
    parser.add_argument("--out", type=Path, help="keep the run dirs here")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="soak-retention-"))
    rows = []
    for name in args.only or SETTINGS:
        for repeat in range(args.repeats):
            run_dir = out / f"{name.replace(' ', '_').replace(',', '')}-{repeat}"
            started = time.monotonic()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "soak",
                    "run",
                    "--quiet",
                    "--out",
                    str(run_dir),
                    "--allocators",
                    args.allocators,
                    "--swaps",
                    str(args.swaps),
                    *SETTINGS[name],
                ],
                check=False,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            elapsed = time.monotonic() - started
            for row in _rows(run_dir, name, elapsed):
                rows.append(row)
                print(_format(row), flush=True)
    print("\nper setting (median of the runs' later-half level, MiB above baseline):")
    for name in dict.fromkeys(r["setting"] for r in rows):
        for variant in dict.fromkeys(r["variant"] for r in rows if r["setting"] == name):
            levels = [
                r["level"]
                for r in rows
                if r["setting"] == name and r["variant"] == variant and r["level"] is not None
            ]
            verdicts = [
                r["verdict"] for r in rows if r["setting"] == name and r["variant"] == variant
            ]
            spread = f"{min(levels):+.0f}..{max(levels):+.0f}" if levels else "-"
            print(f"  {name:32s} {variant:9s} kept {spread:>12s} MiB  verdicts {verdicts}")
    print(f"\nrun dirs: {out}")
    return 0


def _rows(run_dir: Path, setting: str, elapsed: float):
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        yield {
            "setting": setting,
            "variant": "?",
            "verdict": "no summary",
            "level": None,
            "series": [],
            "elapsed": elapsed,
        }
        return
    for v in summary["variants"]:
        series = [s["retained_mb"] for s in v["swaps"] if s.get("retained_mb") is not None]
        later = series[len(series) // 2 :]
        yield {
            "setting": setting,
            "variant": v["name"],
            "verdict": v["memory"]["verdict"],
            "level": statistics.median(later) if later else None,
            "series": series,
            "elapsed": elapsed,
        }


def _format(row: dict) -> str:
    series = " ".join(f"{x:+.0f}" for x in row["series"])
    level = f"{row['level']:+.1f}" if row["level"] is not None else "-"
    return (
        f"{row['setting']:32s} {row['variant']:9s} {row['verdict']:12s} level {level:>7s} MiB "
        f"({row['elapsed']:.0f} s)  per swap: {series}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
