"""Which planted leaks does `soak run --swaps auto` catch, and in how many swaps? (issue 9)

On jemalloc (which gives freed memory back, so only the planted leak stays),
the stand-in keeps M MiB per load (`--debug_retain_mb_per_load=M`). For each M,
a few runs with `--swaps auto`; then clean jemalloc runs at `--swaps 8` and at
the default. Prints every run's verdict and swaps, then the tally.

    .venv/bin/python benchmarks/detection_power.py [--repeats 3] [--leaks 0.5 1 2 4 8]
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path

from soak_runs import VariantOutcome, line, soak_run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--leaks", type=float, nargs="*", default=[0.5, 1, 2, 4, 8])
    parser.add_argument("--out", type=Path, help="keep the run dirs here")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="soak-detection-"))
    cases: dict[str, list[str]] = {
        f"leak {mb:g} MiB/swap, auto": [
            "--swaps",
            "auto",
            f"--server-arg=--debug_retain_mb_per_load={mb:g}",
        ]
        for mb in args.leaks
    }
    cases["clean, --swaps 8"] = ["--swaps", "8"]
    cases["clean, default"] = []
    results: dict[str, list[VariantOutcome]] = {}
    for label, extra in cases.items():
        for i in range(args.repeats):
            run_dir = out / f"{label.replace(' ', '_').replace(',', '').replace('/', '-')}-{i}"
            for o in soak_run(run_dir, "--allocators", "jemalloc", *extra):
                results.setdefault(label, []).append(o)
                print(line(label, o), flush=True)
    print()
    for label, outcomes in results.items():
        verdicts = Counter(o.verdict for o in outcomes)
        swaps = sorted(o.swaps for o in outcomes)
        print(f"{label:28s} {dict(verdicts)}  swaps {swaps}")
    print(f"\nrun dirs: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
