"""The pytest gate (SPEC §6): a `soak_run` fixture that runs soak and asserts on it.

    def test_hot_reload_releases_memory(soak_run):
        result = soak_run(model="models/ranker", allocators=["jemalloc"], swaps=8)
        result.assert_released(max_retained_mb_per_swap=2)
        result.assert_latency(max_swap_p99_ms=80)

The limits are the ones of `soak check`, so a CI gate and a test agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from soak.config import from_keywords
from soak.progress import Progress

if TYPE_CHECKING:  # the analysis (pandas) loads when a test uses soak, not with pytest
    from soak.analysis.result import RunResult, VariantResult
    from soak.gate import Figure, Limits


@dataclass(frozen=True)
class SoakResult:
    """An analysed run (`result`) plus assertions that name the variant, figure, limit and run dir.

    Each assertion is about its own figures: `assert_released` about memory,
    `assert_latency` about latency. Both fail a variant that did not complete
    with its allocator verified, since its figures are not the allocator's.
    """

    run_dir: Path
    result: RunResult = field(repr=False)

    @classmethod
    def from_run_dir(cls, run_dir: Path) -> SoakResult:
        """The result of an earlier run, from its summary.json."""
        from soak.analysis import summary_json

        return cls(Path(run_dir), summary_json.read(Path(run_dir)))

    def variant(self, name: str) -> VariantResult:
        return self.result.variant(name)

    def assert_released(
        self,
        max_retained_mb_per_swap: float | None = None,
        max_retained_mb: float | None = None,
        variant: str | None = None,
    ) -> None:
        """Each variant gives its memory back (verdict released) and keeps within the limits."""
        from soak.gate import MEMORY_LIMITS, Limits

        limits = Limits(
            max_retained_mb_per_swap=max_retained_mb_per_swap, max_retained_mb=max_retained_mb
        )
        self._assert(variant, limits, MEMORY_LIMITS, leaks=True)

    def assert_latency(
        self,
        max_swap_p99_ms: float | None = None,
        max_errors: int | None = None,
        variant: str | None = None,
    ) -> None:
        """Each variant's swap p99 and error count are within the limits given."""
        from soak.gate import LATENCY_LIMITS, Limits

        limits = Limits(max_swap_p99_ms=max_swap_p99_ms, max_errors=max_errors)
        self._assert(variant, limits, LATENCY_LIMITS)

    def _assert(
        self, variant: str | None, limits: Limits, figures: dict[str, Figure], leaks: bool = False
    ) -> None:
        from soak.gate import limit_lines, selected, verdict_lines

        run = str(self.run_dir)
        failures = []
        for v in selected(self.result, variant):
            if v.status != "completed" or not v.allocator_verified:
                failures.append(_not_completed(v, run))
                continue
            if leaks:
                failures += verdict_lines(v, run)
            failures += limit_lines(v, limits, figures, run)
        if failures:
            pytest.fail("\n".join(failures), pytrace=False)


def _not_completed(v: VariantResult, run: str) -> str:
    from soak.gate import failed_line

    if v.status == "failed":
        return failed_line(v, run)
    why = f" ({v.reason})" if v.reason else ""
    return f"{v.name}: status {v.status}, allocator_verified {v.allocator_verified}{why} in {run}"


@pytest.fixture
def soak_run(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., SoakResult]:
    """Run soak with `soak run`'s settings as keyword arguments; returns a SoakResult.

    The keywords are the settings' names (`soak run --help`, `soak.settings`):
    model, allocators, swaps, backend, image, server_args, rps, ...

    SIGINT or SIGTERM during the run stop it as they stop `soak run` (servers
    stopped, summary.json written as interrupted), then end the test session as
    Ctrl-C does (a KeyboardInterrupt).
    """
    from soak.interrupts import Interrupted
    from soak.runner import run_soak

    def run(**settings: Any) -> SoakResult:
        settings.setdefault("out", str(tmp_path_factory.mktemp("soak") / "run"))
        settings.setdefault("quiet", True)
        outcome = run_soak(from_keywords(**settings), Progress(quiet=True))
        if outcome.signal is not None:
            raise Interrupted(outcome.signal)
        return SoakResult(outcome.run_dir, outcome.result)

    return run
