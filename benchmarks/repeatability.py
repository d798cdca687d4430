"""Does the default `soak run` give the same answer every time? (issue 9)

Runs the embedded default `soak run` (no options) N times and prints each
variant's verdict line, its retained MiB and `soak check`'s exit code with no
limits, then the tally: glibc flagged (leak or plateau), jemalloc released, the
gate failing glibc and passing jemalloc, each out of N.

    .venv/bin/python benchmarks/repeatability.py [--runs 5] [--out DIR] [-- EXTRA soak run ARGS]
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path

from soak_runs import VariantOutcome, line, soak_run, spread

FLAGGED = ("leak", "plateau")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, help="keep the run dirs here")
    parser.add_argument("extra", nargs="*", help="extra `soak run` arguments (after --)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="soak-repeat-"))
    by_variant: dict[str, list[VariantOutcome]] = {}
    for i in range(args.runs):
        for o in soak_run(out / f"run{i}", *args.extra):
            by_variant.setdefault(o.variant, []).append(o)
            print(line(f"run {i + 1}/{args.runs}", o), flush=True)
    print()
    for variant, outcomes in by_variant.items():
        n = len(outcomes)
        verdicts = Counter(o.verdict for o in outcomes)
        flagged = sum(verdicts[v] for v in FLAGGED)
        failed_gate = sum(o.check_exit == 1 for o in outcomes)
        retained = [o.retained_mb for o in outcomes if o.retained_mb is not None]
        levels = [o.level_mb for o in outcomes if o.level_mb is not None]
        minutes = [o.elapsed_s / 60 for o in outcomes]
        print(
            f"{variant:9s} verdicts {dict(verdicts)}; flagged {flagged}/{n}, released "
            f"{verdicts['released']}/{n}; soak check fails {failed_gate}/{n}; retained "
            f"{spread(retained)} MiB; level {spread(levels)} MiB; run {min(minutes):.1f}.."
            f"{max(minutes):.1f} min"
        )
    print(f"\nrun dirs: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
