"""`soak run` from a resolved config to an analysed run directory.

`prepare` finds every set-up problem (model, allocator libraries, server,
Docker) before any server starts; then the orchestrator executes the plan,
variant after variant; then the analysis turns the CSVs into summary.json and
report.html, even after Ctrl-C.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from soak.analysis.swap_budget import AUTO, SwapBudget
from soak.analysis.verdict import default_threshold_mb
from soak.config.settings import RunConfig
from soak.core import interrupts
from soak.core.errors import SoakError
from soak.driver.environment import collect
from soak.driver.orchestrator import Orchestrator, RunInterrupted, VariantResult
from soak.driver.plan import prepare
from soak.driver.progress import Progress
from soak.store.records import Status
from soak.store.run_dir import RunDir

if TYPE_CHECKING:
    from soak.analysis.result import RunResult
    from soak.history.location import HistoryLocation


@dataclass
class RunOutcome:
    run_dir: Path
    result: RunResult
    variants: list[VariantResult] = field(default_factory=list)
    interrupted: bool = False
    signal: int | None = None  # the signal that interrupted the run (exit 128 + it)
    history: HistoryLocation | None = None  # where the run was recorded (None: it could not be)
    history_error: str | None = None  # why not
    forced: bool = False  # a second signal came, after the analysis was written

    @property
    def failed_variants(self) -> list[VariantResult]:
        return [v for v in self.variants if v.status == Status.FAILED]


def run_soak(config: RunConfig, progress: Progress) -> RunOutcome:
    """Prepare, execute, analyse; SIGINT/SIGTERM stop it cleanly (`soak.core.interrupts`).

    Interrupted, it still writes summary.json from what was measured and returns
    with `signal` set; a second signal skips the analysis too (interrupts.Interrupted
    with `forced`), leaving the raw data for `soak report`.
    """
    from soak.history.store import check_writable

    check_writable(config.history_location)
    with interrupts.handling():
        with interrupts.interruptible():
            plan = prepare(config, progress.message)
        for what in plan.removed_leftovers:
            progress.notice(f"removed a leftover of a dead run: {what}")
        run_dir = RunDir(plan.run_dir)
        run_dir.path.mkdir(parents=True, exist_ok=True)
        run_dir.run_toml.write_text(config.to_toml())
        collect(plan).write(run_dir.environment_json)
        threshold = config.threshold_mb or default_threshold_mb(plan.model.size_bytes)
        orchestrator = Orchestrator(
            plan,
            progress,
            lambda: SwapBudget(
                None if config.swaps == AUTO else int(config.swaps),
                config.max_swaps,
                threshold,
                config.warmup_swaps,
            ),
        )
        signum = None
        try:
            results = orchestrator.run()
        except RunInterrupted as exc:
            results, signum = exc.results, exc.signum
        outcome = conclude(config, run_dir.path, results, signum is not None, signum)
        outcome.forced = interrupts.forced()  # read before handling() resets it
        return outcome


def conclude(
    config: RunConfig,
    run_dir: Path,
    variants: list[VariantResult],
    interrupted: bool,
    signal: int | None = None,
) -> RunOutcome:
    """After the variants ran (or were stopped): the analysis once, summary.json and
    report.html from it, then the run recorded in the history.

    Only the analysis is forcible: a second signal there skips it (the raw data stay
    for `soak report`); one that lands later is held, so what the last line says
    (analysed or not) is what happened.
    """
    from soak.history import store as history
    from soak.history.location import parse
    from soak.report.outputs import write_outputs

    with interrupts.forcible():
        result = write_outputs(run_dir)
    outcome = RunOutcome(run_dir, result, variants, interrupted, signal)
    try:
        where = parse(config.history_location)
        history.record(where, result, run_dir)
        outcome.history = where
    except (SoakError, OSError) as exc:  # the run is on disk: `soak history --add` later
        outcome.history_error = str(exc)
    return outcome
