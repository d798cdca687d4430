"""Is the memory a swap leaves behind growing? The verdict rules (SPEC §1).

Input: the settled memory after each completed swap, as MiB above the
baseline, and a threshold T in MiB per swap. The first `warmup_swaps` swaps are
skipped (first-time costs: thread pools, arenas, caches), and the rest are
measured from where memory stood after them (the post-warmup level). On the rest:

- slope `s`: Theil–Sen (median of all pairwise slopes), so one odd swap
  cannot make or hide a leak. This is `retained_mb_per_swap`.
- later slope `s2`: Theil–Sen over the later half of those swaps.
- level: the median retained memory over the later half (what it holds now).
- noise `sigma`: the scatter of settled memory from one swap to the next, as
  the smaller of two robust (MAD) estimates: from first differences, blind to
  a trend and to one-off jumps (glibc's staircase), and from second
  differences, blind to a bend (growth, then a plateau). Either structure fools
  one estimate and not the other; plain scatter shows in both.

Each estimate is compared with a bound as above, below or unsure. It is unsure
only when the noise is large against the threshold (1.645 standard errors, a
one-sided 95 % margin, exceed T/2) and the estimate lies within that margin of
the bound: closeness alone never makes a verdict inconclusive, noise does.
Standard errors: sigma / sqrt(sum (x - mean x)^2) for a slope, and
sigma * sqrt(1.2533^2 / n + 1) for the level (a median less one reference swap).

Rules, in order:
1. `inconclusive` if the run ended early (the server died or stopped answering),
   or fewer than 3 swaps remain.
2. `inconclusive` if s is unsure against T.
3. s above T: `leak` if s2 is above T/2 (the later half still grows), or
   unsure (growth is shown, a stop is not); else on to the level.
4. s below T: `leak` if s2 is above T over at least 4 swaps (a leak that
   started late); else on to the level.
5. The level against T: `plateau` above (grew past it, then stopped), else
   `released`: back to the post-warmup level within the threshold, or within the
   noise when the noise cannot place it (no growth, and no retention shown).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_SWAPS = 3  # after the warmup swaps
MIN_LATE_SWAPS = 4  # a leak seen in the later half alone needs this many swaps there
LATER_HALF_GROWTH = 0.5  # the later half "still grows" above this fraction of T
NOISE_MARGIN = 1.645  # standard errors: one-sided 95 %

LEAK, PLATEAU, RELEASED, INCONCLUSIVE = "leak", "plateau", "released", "inconclusive"
ABOVE, BELOW, UNSURE = "above", "below", "unsure"


@dataclass(frozen=True)
class Verdict:
    verdict: str
    reason: str  # one line for people
    mb_per_swap: float | None  # Theil–Sen slope over the swaps judged
    later_mb_per_swap: float | None  # the same over their later half
    level_mb: float | None  # retained memory now (median of the later half)
    noise_mb: float | None  # swap-to-swap scatter (sigma)
    swaps_judged: tuple[int, ...] = ()


def theil_sen(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Slope and intercept: median of pairwise slopes, median of the offsets."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    i, j = np.triu_indices(len(xs), k=1)
    dx = xs[j] - xs[i]
    keep = dx != 0
    if not keep.any():
        raise ValueError("a slope needs two distinct x values")
    slope = float(np.median((ys[j] - ys[i])[keep] / dx[keep]))
    return slope, float(np.median(ys - slope * xs))


def swap_noise(y: Sequence[float]) -> float:
    """Sigma of the swap-to-swap scatter, blind to trends, jumps and bends.

    White noise of sd sigma gives differences of sd sigma * sqrt 2 (first) and
    sigma * sqrt 6 (second); 1.4826 * MAD estimates an sd robustly.
    """
    values = np.asarray(y, dtype=float)
    estimates = []
    for order, scale in ((1, math.sqrt(2)), (2, math.sqrt(6))):
        d = np.diff(values, n=order)
        if len(d):
            estimates.append(1.4826 * np.median(np.abs(d - np.median(d))) / scale)
    return float(min(estimates, default=0.0))


def classify(
    swaps: Sequence[int],
    retained_mb: Sequence[float],
    threshold_mb: float,
    warmup_swaps: int = 2,
    died: str | None = None,
) -> Verdict:
    """The verdict on settled memory (MiB above baseline) after swaps `swaps`.

    `died` is why the run ended early (the server died or hung), if it did.
    """
    pairs = sorted((int(i), float(r)) for i, r in zip(swaps, retained_mb, strict=True))
    # Levels are judged against where memory stood after the warmup swaps, so
    # one-time costs of the first swaps (arenas, thread pools) are not "held".
    reference = next((r for i, r in pairs if i == warmup_swaps and math.isfinite(r)), 0.0)
    judged = [(i, r - reference) for i, r in pairs if i > warmup_swaps and math.isfinite(r)]
    x = [i for i, _ in judged]
    y = [r for _, r in judged]
    t = threshold_mb
    slope = theil_sen(x, y)[0] if len(set(x)) >= 2 else None
    if died:
        trend = f"; until then {_mb(slope)} MiB per swap" if slope is not None else ""
        return Verdict(
            INCONCLUSIVE, f"the run ended early: {died}{trend}", slope, None, None, None, tuple(x)
        )
    if len(x) < MIN_SWAPS:
        plural = "s" if len(x) != 1 else ""
        return Verdict(
            INCONCLUSIVE,
            f"only {len(x)} swap{plural} after the {warmup_swaps} warmup swaps; need {MIN_SWAPS}",
            slope,
            None,
            None,
            None,
            tuple(x),
        )

    later_x, later_y = x[len(x) // 2 :], y[len(y) // 2 :]
    later_slope = theil_sen(later_x, later_y)[0]
    level = float(np.median(later_y))
    sigma = swap_noise(y)
    late = f"swaps {later_x[0]}–{later_x[-1]}"

    def compare(estimate: float, se: float, bound: float) -> str:
        margin = NOISE_MARGIN * se
        if margin > t / 2 and abs(estimate - bound) <= margin:
            return UNSURE
        return ABOVE if estimate > bound else BELOW

    def verdict(kind: str, reason: str) -> Verdict:
        return Verdict(kind, reason, slope, later_slope, level, sigma, tuple(x))

    noisy = f"settled memory scatters ±{_mb(sigma)} MiB from swap to swap (threshold {_mb(t)})"
    growth = compare(slope, sigma / _spread(x), t)
    later_se = sigma / _spread(later_x)
    if growth == UNSURE:
        return verdict(INCONCLUSIVE, f"too noisy to tell growth from none: {noisy}")
    if growth == ABOVE:
        still = compare(later_slope, later_se, LATER_HALF_GROWTH * t)
        if still == ABOVE:
            return verdict(
                LEAK,
                f"kept {_mb(slope)} MiB per swap, still growing in {late} "
                f"({_mb(later_slope)} MiB per swap; threshold {_mb(t)})",
            )
        if still == UNSURE:  # growth is shown, a stop is not: a gate must not pass it
            return verdict(
                LEAK,
                f"kept {_mb(slope)} MiB per swap, with no sign that it stopped in {late} "
                f"(settled memory scatters ±{_mb(sigma)} MiB; threshold {_mb(t)})",
            )
    elif len(later_x) >= MIN_LATE_SWAPS and compare(later_slope, later_se, t) == ABOVE:
        return verdict(
            LEAK,
            f"started growing late: {_mb(later_slope)} MiB per swap in {late} (threshold {_mb(t)})",
        )

    # the level is a median of the later half minus one reference swap: both scatter
    held = compare(level, sigma * math.sqrt(1.2533**2 / len(later_y) + 1), t)
    if held == UNSURE:  # not growing, and not shown to hold memory: released, within noise
        return verdict(
            RELEASED,
            f"stopped growing ({_mb(slope)} MiB per swap) and settles within the noise "
            f"(±{_mb(sigma)} MiB) of the post-warmup level in {late} (threshold {_mb(t)})",
        )
    if held == BELOW:
        where = f"{_mb(-level)} MiB below" if level < 0 else f"within {_mb(level)} MiB of"
        return verdict(
            RELEASED, f"settles {where} the post-warmup level in {late} (threshold {_mb(t)})"
        )
    return verdict(
        PLATEAU,
        f"holds +{_mb(level)} MiB over the post-warmup level but stopped growing in {late} "
        f"({_mb(later_slope)} MiB per swap; threshold {_mb(t)})",
    )


def _spread(x: Sequence[int]) -> float:
    """sqrt(sum (x - mean x)^2): how much the swap indices lever a fitted slope."""
    return float(np.sqrt(np.sum((np.asarray(x, dtype=float) - np.mean(x)) ** 2)))


def _mb(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.1f}" if abs(value) >= 1 else f"{value:.2f}"
