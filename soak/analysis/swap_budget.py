"""How many swaps a variant gets: a fixed count, or `auto` until its verdict is decided.

With `--swaps auto` the orchestrator asks after every swap whether to go on.
The variant is decided when the verdict rules, applied to the settled levels
so far (the driver's own readings, the same medians the analysis takes), give
the same answer after two swaps in a row and that answer is a decision, its
grounds shown and not merely left open by the noise: `plateau` (kept memory
above its bound: flagged whatever the growth), `leak` with its later swaps
still growing (jemalloc's settled memory wanders by a few MiB, and over five
or six swaps a wander upwards is a slope that no later swap has yet had the
chance to take back), or `released` with growth ruled out (a slow leak looks
released until the slope is pinned down). A fixed floor of swaps comes first:
glibc can give everything back for a swap or two.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from soak.analysis.verdict import (
    ABOVE,
    BELOW,
    LEAK,
    MIN_SWAPS,
    PLATEAU,
    RELEASED,
    Verdict,
    classify,
)

AUTO = "auto"


@dataclass
class SwapBudget:
    swaps: int | None  # a fixed count; None: auto
    max_swaps: int
    threshold_mb: float
    warmup_swaps: int
    baseline_mb: float | None = None
    retained_mb: dict[int, float] = field(default_factory=dict)
    _previous: str | None = None

    @property
    def min_swaps(self) -> int:
        """Before this, auto does not stop: the warmup swaps, a slope, and one to confirm."""
        return self.warmup_swaps + MIN_SWAPS + 1

    @property
    def planned(self) -> str:
        """For progress: '12', or 'auto (max 30)'."""
        return str(self.swaps) if self.swaps is not None else f"{AUTO} (max {self.max_swaps})"

    def record(self, index: int, settled_mb: float | None) -> None:
        """The settled level after swap `index` (0: the baseline)."""
        if settled_mb is None:
            return
        if index == 0:
            self.baseline_mb = settled_mb
        elif self.baseline_mb is not None:
            self.retained_mb[index] = settled_mb - self.baseline_mb

    def stop_reason(self, done: int) -> str | None:
        """None to swap again; else why the variant has had its swaps (one line).

        "on its own": the variant is judged without a control (the variants run in
        turn, so the others' one-time costs are not known yet); the run's verdict,
        judged against the control, may then explain kept memory away.
        """
        if self.swaps is not None:
            return f"{done} swaps done, as planned" if done >= self.swaps else None
        if done >= self.max_swaps:
            return f"--max-swaps {self.max_swaps} reached, {_alone(self._verdict())}"
        if done < self.min_swaps:
            self._previous = None
            return None
        verdict = self._verdict()
        answer = verdict.verdict if is_decided(verdict) else None
        stable, self._previous = answer is not None and answer == self._previous, answer
        return f"decided after {done} swaps: {_alone(verdict)}" if stable else None

    def _verdict(self) -> Verdict:
        swaps = sorted(self.retained_mb)
        return classify(
            swaps, [self.retained_mb[i] for i in swaps], self.threshold_mb, self.warmup_swaps
        )


def _alone(verdict: Verdict) -> str:
    """'plateau on its own': judged without the run's control (see `stop_reason`)."""
    return f"{verdict.verdict} on its own"


def is_decided(verdict: Verdict) -> bool:
    """Is the verdict's ground shown, not merely left open by the noise?"""
    if verdict.verdict == LEAK:
        return verdict.later_growth == ABOVE
    if verdict.verdict == RELEASED:
        return verdict.growth == BELOW
    return verdict.verdict == PLATEAU
