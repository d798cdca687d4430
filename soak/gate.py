"""`soak check`: the gate for schedulers and CI (SPEC §2).

One line per crossed limit, naming the variant, the figure, the limit and the
run dir; exit 1 if there is any. The gate fails closed: a limit on a figure the
run could not measure (too few swaps, no successful request) is crossed, and
so is a variant that failed. With no limit given, the gate is "no variant leaks".

Regression against a baseline run: a figure regresses when it is worse by more
than the given percentage *and* by more than a floor (the verdict threshold for
memory, 1 ms for latency), so 0.01 -> 0.02 MiB per swap is not a 100 % failure.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, fields
from pathlib import Path

from soak.analysis.summary import SCHEMA, analyse_run
from soak.analysis.verdict import LEAK
from soak.errors import EXIT_GATE_FAILED, EXIT_OK, UsageError
from soak.store.run_dir import RunDir

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

    def any_limit(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self) if f.name != "variant")


# (limit field, section, figure, unit, option)
_ABSOLUTE = (
    ("max_retained_mb_per_swap", "memory", "retained_mb_per_swap", "MiB"),
    ("max_retained_mb", "memory", "retained_mb", "MiB"),
    ("max_swap_p99_ms", "latency", "swap_p99_ms", "ms"),
    ("max_errors", "latency", "errors", ""),
)
# (section, figure, unit, floor: None = the run's threshold_mb)
_REGRESSION = (
    ("memory", "retained_mb_per_swap", "MiB", None),
    ("memory", "retained_mb", "MiB", None),
    ("latency", "steady_p99_ms", "ms", LATENCY_FLOOR_MS),
    ("latency", "swap_p99_ms", "ms", LATENCY_FLOOR_MS),
)


def check(
    summary: dict,
    limits: Limits,
    baseline_summary: dict | None = None,
    run_dir: Path | str | None = None,
) -> list[str]:
    """One line per crossed limit; an empty list means the run passes.

    Lines name the run as `run_dir`, else as the summary's own `run_dir`.
    """
    run = str(run_dir) if run_dir is not None else summary.get("run_dir", "?")
    variants = _selected(summary, limits.variant)
    lines = [] if variants else [f"no variant data in {run}"]
    for v in variants:
        name = v["name"]
        if v["status"] == "failed":
            lines.append(f"{name}: variant failed ({v.get('reason') or 'no reason'}) in {run}")
            continue
        for field, section, figure, unit in _ABSOLUTE:
            limit = getattr(limits, field)
            if limit is None:
                continue
            value = v[section].get(figure)
            option = "--" + field.replace("_", "-")
            if value is None:
                lines.append(
                    f"{name}: {figure} unknown ({_why_unknown(v, section)}), "
                    f"{option} {limit:g} cannot be checked in {run}"
                )
            elif value > limit:
                lines.append(
                    f"{name}: {figure} {value:g}{_u(unit)} > {option} {limit:g}{_u(unit)} in {run}"
                )
        if not limits.any_limit() and v["memory"]["verdict"] == LEAK:
            lines.append(f"{name}: verdict leak ({v['memory']['verdict_reason']}) in {run}")
    if baseline_summary is not None:
        pct = limits.max_regression_pct
        pct = DEFAULT_REGRESSION_PCT if pct is None else pct
        lines += _regressions(summary | {"run_dir": run}, variants, baseline_summary, pct)
    return lines


def _regressions(summary: dict, variants: list[dict], baseline: dict, pct: float) -> list[str]:
    run, other = summary.get("run_dir", "?"), baseline.get("run_dir", "?")
    before = {v["name"]: v for v in baseline["variants"]}
    common = [v for v in variants if v["name"] in before]
    if not common:
        raise UsageError(f"no variant of {run} is in the baseline run {other}: cannot compare")
    lines = []
    for v in common:
        for section, figure, unit, floor in _REGRESSION:
            new, old = v[section].get(figure), before[v["name"]][section].get(figure)
            if new is None or old is None:
                continue
            floor = summary.get("threshold_mb", 1.0) if floor is None else floor
            if new - old > floor and new > old + abs(old) * pct / 100:
                lines.append(
                    f"{v['name']}: {figure} {new:g}{_u(unit)} regressed from {old:g}{_u(unit)} "
                    f"(> {pct:g} % and > {floor:g}{_u(unit)} worse) in {run} vs {other}"
                )
    return lines


def load_summary(run_dir: Path) -> dict:
    """RUN_DIR/summary.json if it is there and sound, else a fresh analysis of the raw data."""
    path = RunDir(Path(run_dir)).summary_json
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = None
    if not isinstance(summary, dict) or summary.get("schema") != SCHEMA:
        summary = analyse_run(Path(run_dir))
    summary["run_dir"] = str(run_dir)  # name the run as the user did
    return summary


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
    parser.epilog = "With no limit, the gate fails if any variant's verdict is leak."


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
    )


def run_check(args: argparse.Namespace) -> int:
    """`soak check`: print one line per crossed limit; EXIT_GATE_FAILED if any."""
    limits = limits_from_args(args)
    summary = load_summary(args.run_dir)
    baseline = load_summary(limits.baseline_dir) if limits.baseline_dir is not None else None
    lines = check(summary, limits, baseline)
    for line in lines:
        print(line)
    if lines:
        return EXIT_GATE_FAILED
    checked = ", ".join(v["name"] for v in _selected(summary, limits.variant))
    print(f"soak check: within limits ({checked}) in {summary['run_dir']}")
    return EXIT_OK


def _selected(summary: dict, name: str | None) -> list[dict]:
    if name is None:
        return summary["variants"]
    chosen = [v for v in summary["variants"] if v["name"] == name]
    if not chosen:
        names = ", ".join(v["name"] for v in summary["variants"]) or "none"
        raise UsageError(f"no variant {name!r} in {summary.get('run_dir')} (variants: {names})")
    return chosen


def _why_unknown(v: dict, section: str) -> str:
    if section == "memory":
        return f"verdict {v['memory']['verdict']}: {v['memory']['verdict_reason']}"
    return "no successful request in that window"


def _u(unit: str) -> str:
    return f" {unit}" if unit else ""
