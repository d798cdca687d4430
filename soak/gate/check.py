"""`soak check`: the gate for schedulers and CI.

One line per crossed limit, naming the variant, the figure, the limit and the
run dir; exit 1 (once) if there is any. The gate fails closed: a limit on a
figure the run could not measure (too few swaps, no successful request) is
crossed, and so is a variant that failed. With no limit given, the gate is the
verdict: memory never given back (`leak` or `plateau`) fails, `released`
passes, and `inconclusive` fails with its reason unless allowed
(`--allow-inconclusive`).

Regression: against a baseline run (`--baseline RUN_DIR`) or the median of the
last N comparable runs of the history (`--against-history N`), a figure
regresses only when it is worse by more than the given percentage *and* the
floor *and* the noise the runs measured (soak/regression.py has the formula),
so two identical runs never regress against each other.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from soak.analysis.load import load_result
from soak.analysis.regression import (
    DEFAULT_REGRESSION_PCT,
    Figure,
    Reference,
    compare,
    measured,
)
from soak.analysis.result import RunResult, VariantResult
from soak.analysis.verdict import FLAGGED, INCONCLUSIVE
from soak.core.errors import EXIT_GATE_FAILED, EXIT_OK, UsageError
from soak.gate.limits import LIMITS, Limit, maxima
from soak.store.records import Status

if TYPE_CHECKING:
    from soak.history.location import HistoryLocation


@dataclass(frozen=True)
class Limits:
    """What `soak check` checks: absolute maxima (soak.gate.limits), a baseline or history."""

    maxima: Mapping[str, float] = field(default_factory=dict)  # by Limit name
    variant: str | None = None  # check only this variant
    baseline_dir: Path | None = None
    against_history: int | None = None  # the last N comparable runs of the history
    max_regression_pct: float | None = None
    allow_inconclusive: bool = False  # with no limit: an undecided verdict passes
    history: str | None = None  # the history (default: SOAK_HISTORY, else beside the run dir)

    def any_limit(self) -> bool:
        return bool(self.maxima) or any(
            value is not None
            for value in (
                self.baseline_dir,
                self.against_history,
                self.max_regression_pct,
            )
        )


def check(
    result: RunResult,
    limits: Limits,
    baseline: RunResult | None = None,
    run_dir: Path | str | None = None,
    references: dict[str, Reference] | None = None,
) -> list[str]:
    """One line per crossed limit; an empty list means the run passes.

    `baseline` is a run to compare with; `references` per variant name what else
    to compare with (the history's comparable runs: `history_references`).
    Lines name the run as `run_dir`, else as the result's own `run_dir`.
    """
    run = str(run_dir) if run_dir is not None else result.run_dir
    variants = selected(result, limits.variant)
    lines = [] if variants else [f"no variant data in {run}"]
    for v in variants:
        if v.status == Status.FAILED:
            lines.append(failed_line(v, run))
            continue
        lines += limit_lines(v, limits, LIMITS, run)
        if not limits.any_limit():
            lines += verdict_lines(v, run, limits.allow_inconclusive)
    pct = limits.max_regression_pct
    pct = DEFAULT_REGRESSION_PCT if pct is None else pct
    if baseline is not None:
        lines += regression_lines(variants, baseline_references(variants, baseline), pct, run)
    if references:
        lines += regression_lines(variants, references, pct, run)
    return lines


def baseline_references(variants: list[VariantResult], baseline: RunResult) -> dict[str, Reference]:
    """Each variant's reference in a baseline run (UsageError if they share none)."""
    other = baseline.run_dir or "?"
    before = {v.name: v for v in baseline.variants}
    common = [v for v in variants if v.name in before]
    if not common:
        names = ", ".join(v.name for v in variants) or "none"
        raise UsageError(f"no variant of the run ({names}) is in the baseline run {other}")
    return {
        v.name: Reference(f"the baseline run {other}", (measured(before[v.name]),)) for v in common
    }


def regression_lines(
    variants: list[VariantResult], references: dict[str, Reference], pct: float, run: str
) -> list[str]:
    """One line per figure that regressed against (or cannot be compared with) its reference."""
    lines = []
    for v in variants:
        reference = references.get(v.name)
        if reference is None or not reference.runs or v.status == Status.FAILED:
            continue
        for r in compare(v, reference.runs, pct):
            if r.regressed or r.unknown:
                lines.append(r.line(run, reference.description))
    return lines


def history_references(
    result: RunResult,
    run_dir: Path,
    variants: list[VariantResult],
    n: int,
    history_at: HistoryLocation | str | Path,
) -> tuple[dict[str, Reference], list[str]]:
    """Per variant, the last `n` comparable runs of the history; and notes on what is missing.

    Comparable: the same variant name, config hash and model (name, and --model as
    given or the demo model's size), completed. A variant without any is not
    compared (a note says so): the first runs of a schedule have no history.
    """
    from soak.history import store as history
    from soak.history.location import parse

    where = parse(history_at)  # named with its password masked
    model_path = result.identity.model_path if result.identity else "unknown"
    machine = result.environment.machine_text if result.environment else None
    references: dict[str, Reference] = {}
    notes: list[str] = []
    for v in variants:
        config_hash = v.identity.config_hash if v.identity else "unknown"
        found = history.comparable(
            where,
            v.name,
            config_hash,
            result.model.name,
            model_path,
            n,
            run_dir=run_dir,
            started_t=result.started_t,
        )
        if not found:
            notes.append(
                f"{v.name}: no comparable run in {where} (config {config_hash}, "
                f"model {result.model.name}, {model_path}): not compared"
            )
            continue
        if len(found) == 1:
            runs = "the last comparable run"
        else:
            runs = f"the median of the last {len(found)} comparable runs"
        references[v.name] = Reference(
            f"{runs} in {where}",
            tuple(recorded.measured() for _, recorded in found),
        )
        elsewhere = sorted({m for run, _ in found if (m := run.machine) != machine})
        if machine is not None and elsewhere:
            notes.append(
                f"{v.name}: {sum(run.machine != machine for run, _ in found)} of {len(found)} "
                f"reference runs came from another machine ({'; '.join(elsewhere)}; "
                f"this run: {machine}): a difference may be the machine's"
            )
    return references, notes


def failed_line(v: VariantResult, run: str) -> str:
    return f"{v.name}: variant failed ({v.reason or 'no reason'}) in {run}"


def verdict_lines(v: VariantResult, run: str, allow_inconclusive: bool = False) -> list[str]:
    """The gate with no limit: memory never given back crosses it, and so does no answer."""
    verdict = v.memory.verdict
    if verdict.verdict in FLAGGED:  # a leak whose growth is live data is named so
        return [f"{v.name}: verdict {v.verdict_text} ({verdict.reason}) in {run}"]
    if verdict.verdict == INCONCLUSIVE and not allow_inconclusive:
        return [
            f"{v.name}: verdict inconclusive ({verdict.reason}; --allow-inconclusive "
            f"passes it) in {run}"
        ]
    return []


def limit_lines(
    v: VariantResult, limits: Limits, checked: tuple[Limit, ...], run: str
) -> list[str]:
    """One line per limit of `checked` that `v` crosses or cannot be checked on."""
    lines = []
    for limit in checked:
        maximum = limits.maxima.get(limit.name)
        if maximum is None:
            continue
        figure, value = limit.figure, limit.figure.of(v)
        if value is None:
            lines.append(
                f"{v.name}: {figure.name} unknown ({_why_unknown(v, figure)}), "
                f"{limit.option} {maximum:g} cannot be checked in {run}"
            )
        elif value > maximum:
            unit = _u(figure.unit)
            lines.append(
                f"{v.name}: {figure.name} {value:g}{unit} > "
                f"{limit.option} {maximum:g}{unit} in {run}"
            )
    return lines


def add_check_arguments(parser: argparse.ArgumentParser) -> None:
    """The limit options of `soak check` (the caller adds the RUN_DIR positional, `run_dir`)."""
    for limit in LIMITS:
        parser.add_argument(
            limit.option,
            type=limit.kind,
            metavar=limit.metavar,
            help=f"{limit.help} (default: none)",
        )
    parser.add_argument("--variant", metavar="NAME", help="check only this variant (default: all)")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="OTHER_RUN_DIR",
        help="fail a figure that regressed against an earlier run (default: none)",
    )
    parser.add_argument(
        "--against-history",
        type=int,
        metavar="N",
        help="fail a figure that regressed against the median of the last N comparable runs "
        "of the history: same variant, config hash and model (default: none)",
    )
    parser.add_argument(
        "--history",
        metavar="FILE|URL",
        help="the history of --against-history: an SQLite file or a postgresql:// URL "
        "(default: $SOAK_HISTORY, else history.sqlite beside RUN_DIR)",
    )
    parser.add_argument(
        "--max-regression",
        type=float,
        metavar="PCT",
        help="allowed worsening in percent, on top of the runs' measured noise "
        f"(default: {DEFAULT_REGRESSION_PCT:g})",
    )
    parser.add_argument(
        "--allow-inconclusive",
        action="store_true",
        help="with no limit: pass a variant whose verdict is inconclusive (default: off)",
    )
    parser.epilog = (
        "Exit 0 within limits; 1 if any limit is crossed (once, with one line per crossed "
        "limit); 2 bad usage or input. With no limit, the gate fails a variant whose verdict "
        "is leak or plateau (memory never given back) or inconclusive (unless "
        "--allow-inconclusive), and passes released. A figure regresses only when it is "
        "worse than its reference by more than --max-regression percent, the floor (the "
        "variant's threshold for memory, 1 ms for latency) and 3 times the noise the runs "
        "measured (their swap-to-swap scatter and, from 3 history runs on, the spread "
        "between runs)."
    )


def limits_from_args(args: argparse.Namespace) -> Limits:
    if args.max_regression is not None and args.baseline is None and args.against_history is None:
        raise UsageError("--max-regression needs --baseline OTHER_RUN_DIR or --against-history N")
    if args.history is not None and args.against_history is None:
        raise UsageError("--history needs --against-history N")
    if args.max_regression is not None and args.max_regression < 0:
        raise UsageError(f"--max-regression must be >= 0, not {args.max_regression:g}")
    if args.against_history is not None and args.against_history < 1:
        raise UsageError(f"--against-history must be >= 1, not {args.against_history}")
    return Limits(
        maxima=maxima({limit.name: getattr(args, limit.name) for limit in LIMITS}),
        variant=args.variant,
        baseline_dir=args.baseline,
        against_history=args.against_history,
        max_regression_pct=args.max_regression,
        allow_inconclusive=args.allow_inconclusive,
        history=args.history,
    )


def run_check(args: argparse.Namespace) -> int:
    """`soak check`: print one line per crossed limit; EXIT_GATE_FAILED if any."""
    limits = limits_from_args(args)
    result = load_result(args.run_dir)
    baseline = load_result(limits.baseline_dir) if limits.baseline_dir is not None else None
    references: dict[str, Reference] | None = None
    notes: list[str] = []
    if limits.against_history is not None:
        from soak.config.settings import default_history_path
        from soak.history.location import resolve

        where = resolve(limits.history, os.environ, default_history_path(Path(args.run_dir)))
        references, notes = history_references(
            result,
            Path(args.run_dir),
            selected(result, limits.variant),
            limits.against_history,
            where,
        )
    lines = check(result, limits, baseline, references=references)
    for note in notes:
        print(f"soak check: note: {note}")
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
