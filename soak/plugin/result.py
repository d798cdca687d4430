"""SoakResult: an analysed run and assertions with `soak check`'s limits, for tests."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from soak.store.records import Status

if TYPE_CHECKING:  # the analysis (pandas) loads when a test uses soak, not with pytest
    from soak.analysis.result import RunResult, VariantResult
    from soak.gate.limits import Limit
    from soak.history.location import HistoryLocation


class SoakWarning(UserWarning):
    """What a test should know about a comparison without failing on it."""


@dataclass(frozen=True)
class SoakResult:
    """An analysed run (`result`) plus assertions that name the variant, figure, limit and run dir.

    Each assertion is about its own figures: `assert_released` about memory,
    `assert_latency` about latency, `assert_no_regression` about the change
    against a baseline run or the history. All fail a variant that did not
    complete with its allocator verified, since its figures are not the allocator's.
    """

    run_dir: Path
    result: RunResult = field(repr=False)
    history: HistoryLocation | None = None  # where the run was recorded

    @classmethod
    def from_run_dir(
        cls, run_dir: Path, history: str | Path | HistoryLocation | None = None
    ) -> SoakResult:
        """The result of an earlier run, from its summary.json; `history`: where it was
        recorded (an SQLite file or a postgresql:// URL), for `assert_no_regression`."""
        from soak.analysis.load import load_result
        from soak.history.location import parse

        where = parse(history) if history is not None else None
        return cls(Path(run_dir), load_result(Path(run_dir)), where)

    def variant(self, name: str) -> VariantResult:
        return self.result.variant(name)

    def assert_released(self, variant: str | None = None, **maxima: float | None) -> None:
        """Each variant gives its memory back (verdict released) and keeps within the limits
        given as keywords: `soak check`'s memory limits (soak.gate.limits), e.g.
        `max_retained_mb_per_swap=2`, `max_retained_mb=50`."""
        from soak.gate.limits import MEMORY_LIMITS

        self._assert(variant, maxima, MEMORY_LIMITS, leaks=True)

    def assert_latency(self, variant: str | None = None, **maxima: float | None) -> None:
        """Each variant's figures are within the latency limits given as keywords (soak
        check's: `max_swap_p99_ms=80`, `max_errors=0`)."""
        from soak.gate.limits import LATENCY_LIMITS

        self._assert(variant, maxima, LATENCY_LIMITS)

    def assert_no_regression(
        self,
        baseline: Path | str | SoakResult | None = None,
        *,
        against_history: int | None = None,
        max_regression_pct: float | None = None,
        variant: str | None = None,
    ) -> None:
        """No figure is worse than the baseline run's (a run dir or a SoakResult), or than the
        median of the last `against_history` comparable runs of this run's history, by more
        than `max_regression_pct` percent and the runs' measured noise (`soak check`'s rule).

        A variant with no comparable run in the history yet is not compared.
        """
        from soak.analysis.regression import DEFAULT_REGRESSION_PCT
        from soak.gate.check import (
            baseline_references,
            history_references,
            regression_lines,
            selected,
        )

        if (baseline is None) == (against_history is None):
            raise TypeError("assert_no_regression takes a baseline or against_history=N")
        run = str(self.run_dir)
        variants = selected(self.result, variant)
        if baseline is not None:
            before = baseline if isinstance(baseline, SoakResult) else _load(Path(baseline))
            references = baseline_references(variants, before.result)
        else:
            assert against_history is not None
            if self.history is None:
                raise TypeError("this result was not recorded in a history: pass a baseline")
            references, notes = history_references(
                self.result, self.run_dir, variants, against_history, self.history
            )
            for note in notes:  # e.g. references from another machine: shown, not failed
                warnings.warn(note, SoakWarning, stacklevel=2)
        failures = [_not_completed(v, run) for v in variants if not _usable(v)]
        pct = DEFAULT_REGRESSION_PCT if max_regression_pct is None else max_regression_pct
        usable = [v for v in variants if _usable(v)]
        failures += regression_lines(usable, references, pct, run)
        if failures:
            pytest.fail("\n".join(failures), pytrace=False)

    def _assert(
        self,
        variant: str | None,
        given: Mapping[str, float | None],
        checked: tuple[Limit, ...],
        leaks: bool = False,
    ) -> None:
        from soak.gate.check import Limits, limit_lines, selected, verdict_lines
        from soak.gate.limits import maxima

        limits = Limits(maxima=maxima(given, checked))
        run = str(self.run_dir)
        failures = []
        for v in selected(self.result, variant):
            if not _usable(v):
                failures.append(_not_completed(v, run))
                continue
            if leaks:
                failures += verdict_lines(v, run)
            failures += limit_lines(v, limits, checked, run)
        if failures:
            pytest.fail("\n".join(failures), pytrace=False)


def _load(run_dir: Path) -> SoakResult:
    from soak.analysis.load import load_result

    return SoakResult(run_dir, load_result(run_dir))


def _usable(v: VariantResult) -> bool:
    return v.status == Status.COMPLETED and v.allocator_verified


def _not_completed(v: VariantResult, run: str) -> str:
    from soak.gate.check import failed_line

    if v.status == Status.FAILED:
        return failed_line(v, run)
    why = f" ({v.reason})" if v.reason else ""
    return f"{v.name}: status {v.status}, allocator_verified {v.allocator_verified}{why} in {run}"
