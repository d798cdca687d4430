"""How much does glibc keep across hot swaps, against concurrency, op and load threads?

glibc's retention grows with the number of malloc arenas in use, that is with
the threads that allocate at once (request threads, load threads, TF's op
threads), up to glibc's limit of 8 per core; `--node-cores N` sets all of them (and
the arena limit) as on a node of N cores. This runs `soak run` on the demo model for
each setting below, a few times each, and prints the memory each run kept over its baseline, so the
defaults of `soak run` can be chosen to show the real effect (README table).

    .venv/bin/python benchmarks/retention_vs_threads.py [--repeats 2] [--swaps 8]
        [--allocators glibc] [--only NAME ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from soak_runs import VariantOutcome, line, soak_run, spread


def _op_threads(n: int) -> list[str]:
    return [
        f"--server-arg=--tensorflow_intra_op_parallelism={n}",
        f"--server-arg=--tensorflow_inter_op_parallelism={n}",
    ]


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
    "op threads 1+1": _op_threads(1),
    "op threads 4+4": _op_threads(4),
    "op threads 16+16": _op_threads(16),
    "op threads 16, load threads 4": [*_op_threads(16), "--server-arg=--num_load_threads=4"],
    "node 8 cores": ["--node-cores", "8"],
    "node 16 cores": ["--node-cores", "16"],
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
    names = args.only or list(SETTINGS)
    results: dict[tuple[str, str], list[VariantOutcome]] = {}
    for name in names:
        for repeat in range(args.repeats):
            run_dir = out / f"{name.replace(' ', '_').replace(',', '')}-{repeat}"
            for o in soak_run(
                run_dir,
                "--allocators",
                args.allocators,
                "--swaps",
                str(args.swaps),
                *SETTINGS[name],
            ):
                results.setdefault((name, o.variant), []).append(o)
                print(line(name, o), flush=True)
    print("\nkept memory (later-half median over the baseline, MiB), per setting:")
    for (name, variant), outcomes in results.items():
        levels = [o.level_mb for o in outcomes if o.level_mb is not None]
        verdicts = " ".join(o.verdict for o in outcomes)
        print(f"  {name:32s} {variant:9s} {spread(levels):>30s}  {verdicts}")
    print(f"\nrun dirs: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
