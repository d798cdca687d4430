"""Why memory is kept, per variant: kept, live, held, released on trim, left (issue 17).

Runs, each `--repeats` times: the default run (glibc, jemalloc; demo model,
`--swaps auto`), glibc with a planted live leak of 4 and of 16 MiB per load
(`--swaps 8`); and once, tcmalloc and mimalloc (`--swaps 8`). Prints every
variant's attribution from summary.json, then per case the median and the range
over the repeats.

    .venv/bin/python benchmarks/attribution.py [--repeats 3] [--cases default,planted16]
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

GLIBC_8 = ["--allocators", "glibc", "--swaps", "8"]
CASES: dict[str, list[str]] = {
    "default": [],
    "planted4": [*GLIBC_8, "--server-arg=--debug_retain_mb_per_load=4"],
    "planted16": [*GLIBC_8, "--server-arg=--debug_retain_mb_per_load=16"],
    "tcmalloc+mimalloc": ["--allocators", "tcmalloc,mimalloc", "--swaps", "8"],
}
ONCE = {"tcmalloc+mimalloc"}  # a look at the other allocators, not a repeated figure
FIGURES = ("kept", "live", "live/swap", "held", "released", "left")


def figures(variant: dict) -> dict[str, float | None]:
    memory, attribution = variant["memory"], variant.get("attribution") or {}
    return {
        "kept": memory.get("level_mb"),
        "live": attribution.get("live_mb"),
        "live/swap": attribution.get("live_mb_per_swap"),
        "held": attribution.get("held_mb"),
        "released": attribution.get("released_mb"),
        "left": attribution.get("left_after_release_mb"),
    }


def text(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES), help="of: " + ", ".join(CASES))
    parser.add_argument("--out", type=Path, help="keep the run dirs here")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="soak-attribution-"))
    chosen = [c for c in CASES if c in args.cases.split(",")] if args.cases else list(CASES)
    seen: dict[tuple[str, str], list[dict[str, float | None]]] = {}
    print(f"{'case':18s} {'variant':9s} {'verdict':9s}" + "".join(f"{f:>10s}" for f in FIGURES))
    for repeat in range(args.repeats):
        for case in chosen:
            if repeat > 0 and case in ONCE:
                continue
            run_dir = out / f"{case.replace(',', '-')}-{repeat}"
            started = time.monotonic()
            subprocess.run(
                [sys.executable, "-m", "soak", "run", "--quiet", "--out", str(run_dir)]
                + CASES[case],
                check=False,
                stdout=subprocess.DEVNULL,
            )
            elapsed = time.monotonic() - started
            try:
                summary = json.loads((run_dir / "summary.json").read_text())
            except (OSError, ValueError):
                print(f"{case:18s} no summary.json ({run_dir})")
                continue
            for variant in summary["variants"]:
                values = figures(variant)
                seen.setdefault((case, variant["name"]), []).append(values)
                print(
                    f"{case:18s} {variant['name']:9s} {variant['memory']['verdict']:9s}"
                    + "".join(f"{text(values[f]):>10s}" for f in FIGURES)
                    + f"   ({elapsed / 60:.1f} min, {variant['attribution']['probe']})",
                    flush=True,
                )
    print(f"\nmedian [min, max] over the repeats, MiB over the baseline ({args.repeats} runs)")
    for (case, variant), rows in seen.items():
        cells = []
        for f in FIGURES:
            values = [r[f] for r in rows if r[f] is not None]
            cells.append(
                f"{f} {statistics.median(values):+.1f} [{min(values):+.1f}, {max(values):+.1f}]"
                if values
                else f"{f} -"
            )
        print(f"{case:18s} {variant:9s} " + "; ".join(cells))
    print(f"\nrun dirs: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
