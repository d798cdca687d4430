"""`soak check`: the gate for schedulers and CI (SPEC §2).

One line per crossed limit, naming the variant, the figure, the limit and the
run dir; exit 1 if there is any. The gate fails closed: a limit on a figure the
run could not measure (too few swaps, no successful request) is crossed, and
so is a variant that failed. With no limit given, the gate is the verdict:
memory never given back (`leak` or `plateau`) fails, `released` passes, and
`inconclusive` fails with its reason unless allowed (`--allow-inconclusive`).

Regression against a baseline run: a figure regresses when it is worse by more
than the given percentage *and* by more than a floor (the verdict threshold for
memory, 1 ms for latency), so 0.01 -> 0.02 MiB per swap is not a 100 % failure.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path

from soak.analysis import summary_json
from soak.analysis.analyse import analyse_run
from soak.analysis.result import RunResult, VariantResult
from soak.analysis.verdict import FLAGGED, INCONCLUSIVE
from soak.errors import EXIT_GATE_FAILED, EXIT_OK, UsageError

DEFAULT_REGRESSION_PCT = 10.0
LATENCY_FLOOR_MS = 1.0


@dataclass(frozen=True)
class Limits:
    max_retained_mb_per_swap: float | None = None
    max_retained_mb: float | None = None
    max_swap_p99_ms: float | None = None
    max_errors: int | None = None
    variant: str | None = None  # check only this variant
    baseline_dir: Path | None = None
    max_regression_pct: float | None = None
    allow_inconclusive: bool = False  # with no limit: an undecided verdict passes

    def any_limit(self) -> bool:
        return any(
            getattr(self, f.name) is not None
            for f in fields(self)
            if f.name not in ("variant", "allow_inconclusive")
        )


@dataclass(frozen=True)
class Figure:
    """A figure a limit applies to: its summary.json name, unit, and where it is."""

    name: str
    unit: str
    memory: bool  # a memory figure (else latency)
    of: Callable[[VariantResult], float | None]


RETAINED_MB_PER_SWAP = Figure(
    "retained_mb_per_swap", "MiB", True, lambda v: v.memory.retained_mb_per_swap
)
RETAINED_MB = Figure("retained_mb", "MiB", True, lambda v: v.memory.retained_mb)
STEADY_P99_MS = Figure("steady_p99_ms", "ms", False, lambda v: v.latency.steady_p99_ms)
SWAP_P99_MS = Figure("swap_p99_ms", "ms", False, lambda v: v.latency.swap_p99_ms)
ERRORS = Figure("errors", "", False, lambda v: v.latency.errors)

# The absolute limits: the Limits field (and option) name -> the figure it limits.
MEMORY_LIMITS = {"max_retained_mb_per_swap": RETAINED_MB_PER_SWAP, "max_retained_mb": RETAINED_MB}
LATENCY_LIMITS = {"max_swap_p99_ms": SWAP_P99_MS, "max_errors": ERRORS}
# (figure, floor: None = the run's threshold_mb)
_REGRESSION: tuple[tuple[Figure, float | None], ...] = (
    (RETAINED_MB_PER_SWAP, None),
    (RETAINED_MB, None),
    (STEADY_P99_MS, LATENCY_FLOOR_MS),
    (SWAP_P99_MS, LATENCY_FLOOR_MS),
)


def check(
    result: RunResult,
    limits: Limits,
    baseline: RunResult | None = None,
    run_dir: Path | str | None = None,
) -> list[str]:
    """One line per crossed limit; an empty list means the run passes.

    Lines name the run as `run_dir`, else as the result's own `run_dir`.
    """
    run = str(run_dir) if run_dir is not None else result.run_dir
    variants = selected(result, limits.variant)
    lines = [] if variants else [f"no variant data in {run}"]
    for v in variants:
        if v.status == "failed":
            lines.append(failed_line(v, run))
            continue
        lines += limit_lines(v, limits, {**MEMORY_LIMITS, **LATENCY_LIMITS}, run)
        if not limits.any_limit():
            lines += verdict_lines(v, run, limits.allow_inconclusive)
    if baseline is not None:
        pct = limits.max_regression_pct
        pct = DEFAULT_REGRESSION_PCT if pct is None else pct
        lines += _regressions(result, run, variants, baseline, pct)
    return lines


def failed_line(v: VariantResult, run: str) -> str:
    return f"{v.name}: variant failed ({v.reason or 'no reason'}) in {run}"


def verdict_lines(v: VariantResult, run: str, allow_inconclusive: bool = False) -> list[str]:
    """The gate with no limit: memory never given back crosses it, and so does no answer."""
    verdict = v.memory.verdict
    if verdict.verdict in FLAGGED:
        return [f"{v.name}: verdict {verdict.verdict} ({verdict.reason}) in {run}"]
    if verdict.verdict == INCONCLUSIVE and not allow_inconclusive:
        return [
            f"{v.name}: verdict inconclusive ({verdict.reason}; --allow-inconclusive "
            f"passes it) in {run}"
        ]
    return []


def limit_lines(
    v: VariantResult, limits: Limits, figures: dict[str, Figure], run: str
) -> list[str]:
    """One line per limit of `figures` (by option name) that `v` crosses or cannot be checked on."""
    lines = []
    for option_name, figure in figures.items():
        limit = getattr(limits, option_name)
        if limit is None:
            continue
        value = figure.of(v)
        option = "--" + option_name.replace("_", "-")
        if value is None:
            lines.append(
                f"{v.name}: {figure.name} unknown ({_why_unknown(v, figure)}), "
                f"{option} {limit:g} cannot be checked in {run}"
            )
        elif value > limit:
            unit = _u(figure.unit)
            lines.append(
                f"{v.name}: {figure.name} {value:g}{unit} > {option} {limit:g}{unit} in {run}"
            )
    return lines


def _regressions(
    result: RunResult, run: str, variants: list[VariantResult], baseline: RunResult, pct: float
) -> list[str]:
    other = baseline.run_dir or "?"
    before = {v.name: v for v in baseline.variants}
    common = [v for v in variants if v.name in before]
    if not common:
        raise UsageError(f"no variant of {run} is in the baseline run {other}: cannot compare")
    lines = []
    for v in common:
        for figure, floor in _REGRESSION:
            new, old = figure.of(v), figure.of(before[v.name])
            if new is None or old is None:
                continue
            floor = result.threshold_mb if floor is None else floor
            unit = _u(figure.unit)
            if new - old > floor and new > old + abs(old) * pct / 100:
                lines.append(
                    f"{v.name}: {figure.name} {new:g}{unit} regressed from {old:g}{unit} "
                    f"(> {pct:g} % and > {floor:g}{unit} worse) in {run} vs {other}"
                )
    return lines


def load_result(run_dir: Path) -> RunResult:
    """RUN_DIR/summary.json if it is there and sound, else a fresh analysis of the raw data."""
    try:
        result = summary_json.read(Path(run_dir))
    except summary_json.NotASummary:
        result = analyse_run(Path(run_dir))
    return replace(result, run_dir=str(run_dir))  # name the run as the user did


def add_check_arguments(parser: argparse.ArgumentParser) -> None:
    """The limit options of `soak check` (the caller adds the RUN_DIR positional, `run_dir`)."""
    parser.add_argument(
        "--max-retained-mb-per-swap",
        type=float,
        metavar="MIB",
        help="fail if a variant keeps more than this per swap (the fitted slope)",
    )
    parser.add_argument(
        "--max-retained-mb",
        type=float,
        metavar="MIB",
        help="fail if a variant ends more than this above its baseline",
    )
    parser.add_argument(
        "--max-swap-p99-ms",
        type=float,
        metavar="MS",
        help="fail if the p99 latency during swaps is above this",
    )
    parser.add_argument(
        "--max-errors", type=int, metavar="N", help="fail if more than N requests got no 200"
    )
    parser.add_argument("--variant", metavar="NAME", help="check only this variant")
    parser.add_argument(
        "--baseline", type=Path, metavar="OTHER_RUN_DIR", help="compare with an earlier run"
    )
    parser.add_argument(
        "--max-regression",
        type=float,
        metavar="PCT",
        help=f"with --baseline: allowed worsening in percent (default {DEFAULT_REGRESSION_PCT:g})",
    )
    parser.add_argument(
        "--allow-inconclusive",
        action="store_true",
        help="with no limit: pass a variant whose verdict is inconclusive",
    )
    parser.epilog = (
        "With no limit, the gate fails a variant whose verdict is leak or plateau (memory "
        "never given back) or inconclusive (unless --allow-inconclusive), and passes released."
    )


def limits_from_args(args: argparse.Namespace) -> Limits:
    if args.max_regression is not None and args.baseline is None:
        raise UsageError("--max-regression needs --baseline OTHER_RUN_DIR")
    for option in (
        "max_retained_mb_per_swap",
        "max_retained_mb",
        "max_swap_p99_ms",
        "max_errors",
        "max_regression",
    ):
        value = getattr(args, option)
        if value is not None and value < 0:
            raise UsageError(f"--{option.replace('_', '-')} must be >= 0, not {value:g}")
    return Limits(
        max_retained_mb_per_swap=args.max_retained_mb_per_swap,
        max_retained_mb=args.max_retained_mb,
        max_swap_p99_ms=args.max_swap_p99_ms,
        max_errors=args.max_errors,
        variant=args.variant,
        baseline_dir=args.baseline,
        max_regression_pct=args.max_regression,
        allow_inconclusive=args.allow_inconclusive,
    )


def run_check(args: argparse.Namespace) -> int:
    """`soak check`: print one line per crossed limit; EXIT_GATE_FAILED if any."""
    limits = limits_from_args(args)
    result = load_result(args.run_dir)
    baseline = load_result(limits.baseline_dir) if limits.baseline_dir is not None else None
    lines = check(result, limits, baseline)
    for line in lines:
        print(line)
    if lines:
        return EXIT_GATE_FAILED
    checked = ", ".join(v.name for v in selected(result, limits.variant))
    print(f"soak check: within limits ({checked}) in {result.run_dir}")
    return EXIT_OK


def selected(result: RunResult, name: str | None) -> list[VariantResult]:
    """All variants, or the one named (UsageError if there is none of that name)."""
    if name is None:
        return list(result.variants)
    chosen = [v for v in result.variants if v.name == name]
    if not chosen:
        names = ", ".join(v.name for v in result.variants) or "none"
        raise UsageError(f"no variant {name!r} in {result.run_dir} (variants: {names})")
    return chosen


def _why_unknown(v: VariantResult, figure: Figure) -> str:
    if figure.memory:
        return f"verdict {v.memory.verdict.verdict}: {v.memory.verdict.reason}"
    return "no successful request in that window"


def _u(unit: str) -> str:
    return f" {unit}" if unit else ""
