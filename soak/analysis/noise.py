"""How much a run's own figures scatter: the noise a regression check allows for
(soak/analysis/regression.py has the formula it goes into).

- `retained_mb` (the last swap's level): how far settled memory scatters around
  its trend over the swaps judged: the larger of the verdict's `noise_mb` and the
  standard deviation of the residuals (jemalloc's settled memory wanders by several
  MiB from swap to swap; a run ending high or low is luck);
- `retained_mb_per_swap`: that scatter over the spread of the swaps judged (the
  slope's standard error);
- `steady_p99_ms`, `swap_p99_ms`: the standard deviation of the p99s of the run's
  windows, one per swap (how far a p99 moves from window to window).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import numpy as np

from soak.analysis.result import Noise, VariantResult
from soak.analysis.verdict import theil_sen


def noise_of(v: VariantResult) -> Noise:
    """The noise of a variant's compared figures, from its per-swap values."""
    scatter = memory_scatter(v)
    slope_noise = None
    if scatter is not None:
        spread = _spread(_judged(v)[0])
        slope_noise = scatter / spread if spread > 0 else None
    return Noise(
        retained_mb=scatter,
        retained_mb_per_swap=slope_noise,
        steady_p99_ms=_sd([s.steady_p99_ms for s in v.swaps]),
        swap_p99_ms=_sd([s.p99_ms for s in v.swaps]),
    )


def memory_scatter(v: VariantResult) -> float | None:
    """How far settled memory scatters around its trend over the swaps the verdict judged.

    The larger of the verdict's noise (robust, from swap-to-swap differences)
    and the sd of the residuals around the Theil–Sen line (which sees a level
    that wanders and comes back); None with fewer than 3 swaps judged.
    """
    x, y = _judged(v)
    if len(x) < 3 or len(set(x)) < 2:
        return None
    slope, intercept = theil_sen(x, y)
    residuals = np.asarray(y) - (slope * np.asarray(x, dtype=float) + intercept)
    dof = len(x) - 2  # two fitted parameters
    residual_sd = float(np.sqrt(np.sum(residuals**2) / dof))
    return max(v.memory.verdict.noise_mb or 0.0, residual_sd)


def _judged(v: VariantResult) -> tuple[list[int], list[float]]:
    """The swaps the verdict judged, with their settled memory above the baseline."""
    judged = set(v.memory.verdict.swaps_judged)
    pairs = [
        (s.index, s.retained_mb)
        for s in v.swaps
        if s.index in judged and s.completed and s.retained_mb is not None
    ]
    return [i for i, _ in pairs], [r for _, r in pairs]


def _spread(x: Sequence[int]) -> float:
    """sqrt(sum (x - mean x)^2): how much the swap indices lever a fitted slope."""
    if not x:
        return 0.0
    return float(np.sqrt(np.sum((np.asarray(x, dtype=float) - np.mean(x)) ** 2)))


def _sd(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.stdev(known) if len(known) >= 2 else None
