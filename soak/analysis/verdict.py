"""Does memory grow from swap to swap, and does it come back? The verdict rules
(docs/contract.md#verdicts; docs/verdicts.md#how-a-verdict-is-decided).

Input: the settled memory after each completed swap, as MiB above the baseline
(swap 0), and a threshold T in MiB per swap. Two questions, answered separately,
each as above / below / unsure:

- **growth**: the Theil–Sen slope `s` (median of pairwise slopes, so one odd
  swap cannot make or hide a leak) over the swaps after the first
  `warmup_swaps` (one-time costs make a step there), against T; and the same
  slope over the later half of those swaps (`s2`), to tell "still growing" from
  "grew, then stopped".
- **kept memory**: the level memory settles at (the median over the same swaps
  as the slope: after the first ones, it has had the chance to pile up or to
  come back), measured from the baseline, minus what a clean control
  variant of the same run keeps (one-time costs every variant pays: thread
  pools, caches), against the bound B = KEPT_BOUND_SWAPS * T (25 swaps' worth of
  the threshold: 25 % of the model, at least 25 MiB).

The noise `sigma` is the scatter of settled memory from one swap to the next, as
the larger of two robust (MAD) estimates: from first differences (blind to a
trend and to one-off jumps) and from second differences (blind to a bend). The
larger, because jemalloc's settled memory wanders (each swap starts where the
last one left off) and over a few swaps either estimate alone can come out
near zero and call that wander growth; glibc's jumps and bends, which inflate
one estimate, only make growth unsure, and its kept memory is caught by the
second question.
Standard errors: sigma / sqrt(sum (x - mean x)^2) for a slope, and
1.2533 * sd / sqrt(m) for the median of m levels, with sd the spread of those
levels themselves: glibc's levels zigzag (+113, +9, +129 MiB), which
swap-to-swap differences read as even larger noise, while the levels sit far
above the bound. An estimate is unsure only
when the noise is large against its bound (1.645 standard errors, a one-sided
95 % margin, exceed half the bound) and the estimate lies within that margin:
closeness alone never makes a verdict inconclusive, noise does.

Verdicts:
- `leak`: growth above T and the later half still grows (above T/2, or unsure:
  growth is shown, a stop is not); or a leak that started late (s2 above T over
  at least 4 swaps).
- `plateau`: not shown to grow, but keeps more than B: memory never given back.
- `released`: not growing, and keeps less than B (or within the noise of it).
- `inconclusive`: only when neither question is answered (growth unsure and
  kept memory unsure), when there are too few swaps, or the server died; the
  reason says about how many more swaps would decide.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from soak.analysis.pairwise import MAX_MADE_PAIRS, kth_slopes

MIN_SWAPS = 3  # swaps after the warmup swaps, for a slope
MIN_LATE_SWAPS = 4  # a leak seen in the later half alone needs this many swaps there
LATER_HALF_GROWTH = 0.5  # the later half "still grows" above this fraction of T
NOISE_MARGIN = 1.645  # standard errors: one-sided 95 %
MEDIAN_SE = 1.2533  # standard error of a median, in units of sigma / sqrt(m)
KEPT_BOUND_SWAPS = 25  # kept memory above this many thresholds is flagged
MAX_SWAPS_ADVICE = 200  # beyond this, "more swaps" is not advice
MIN_THRESHOLD_MB = 1.0
THRESHOLD_MODEL_FRACTION = 0.01
MIB = 1 << 20

LEAK, PLATEAU, RELEASED, INCONCLUSIVE = "leak", "plateau", "released", "inconclusive"
FLAGGED = (LEAK, PLATEAU)  # memory never given back: `soak check` fails these
ABOVE, BELOW, UNSURE = "above", "below", "unsure"


@dataclass(frozen=True)
class Verdict:
    verdict: str
    reason: str  # one line for people
    mb_per_swap: float | None  # Theil–Sen slope over the swaps judged for growth
    later_mb_per_swap: float | None  # the same over their later half
    level_mb: float | None  # where memory settles, above the baseline (median after the warmup)
    noise_mb: float | None  # swap-to-swap scatter (sigma)
    swaps_judged: tuple[int, ...] = ()  # the swaps the growth slope is fitted on
    growth: str | None = None  # above / below / unsure (None: not judged)
    later_growth: str | None = None  # the later half's slope against T/2 (still growing?)
    kept: str | None = None  # kept memory against its bound: above / below / unsure
    kept_mb: float | None = None  # level_mb minus the control's one-time costs
    kept_bound_mb: float | None = None  # B
    one_time_mb: float = 0.0  # what the control variant keeps, subtracted from the level
    control: str | None = None  # the variant whose level counts as one-time costs
    more_swaps: int | None = None  # about how many more swaps would decide (inconclusive)


@dataclass(frozen=True)
class SettledSeries:
    """One variant's settled memory after each completed swap (MiB above its baseline)."""

    swaps: Sequence[int]
    retained_mb: Sequence[float]
    died: str | None = None  # why the run ended early, if it did


def theil_sen(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Slope and intercept: median of pairwise slopes, median of the offsets."""
    return _theil_sen(tuple(map(float, x)), tuple(map(float, y)))


@functools.lru_cache(maxsize=4)  # classify_run fits a variant alone, then beside the control
def _theil_sen(x: tuple[float, ...], y: tuple[float, ...]) -> tuple[float, float]:
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    pairs = len(xs) * (len(xs) - 1) // 2
    if pairs > MAX_MADE_PAIRS and len(np.unique(xs)) == len(xs):  # a long run: selected
        middle = [pairs // 2] if pairs % 2 else [pairs // 2 - 1, pairs // 2]
        slope = float(np.mean(np.asarray(kth_slopes(xs, ys, middle))))  # as np.median does
        return slope, float(np.median(ys - slope * xs))
    i, j = np.triu_indices(len(xs), k=1)
    dx = xs[j] - xs[i]
    keep = dx != 0
    if not keep.any():
        raise ValueError("a slope needs two distinct x values")
    slope = float(np.median((ys[j] - ys[i])[keep] / dx[keep]))
    return slope, float(np.median(ys - slope * xs))


def swap_noise(y: Sequence[float]) -> float:
    """Sigma of the swap-to-swap scatter: the larger of two robust estimates.

    White noise of sd sigma gives differences of sd sigma * sqrt 2 (first) and
    sigma * sqrt 6 (second); 1.4826 * MAD estimates an sd robustly.
    """
    values = np.asarray(y, dtype=float)
    estimates = []
    for order, scale in ((1, math.sqrt(2)), (2, math.sqrt(6))):
        d = np.diff(values, n=order)
        if len(d):
            estimates.append(1.4826 * np.median(np.abs(d - np.median(d))) / scale)
    return float(max(estimates, default=0.0))


def default_threshold_mb(model_size_bytes: int | None) -> float:
    """docs/contract.md#verdicts: T = max(1 MiB, 1 % of the model's size) per swap."""
    size_mb = (model_size_bytes or 0) / MIB
    return max(MIN_THRESHOLD_MB, THRESHOLD_MODEL_FRACTION * size_mb)


def kept_bound_mb(threshold_mb: float) -> float:
    """B: kept memory above this is flagged (25 swaps' worth of the threshold)."""
    return KEPT_BOUND_SWAPS * threshold_mb


def classify_run(
    series: Mapping[str, SettledSeries], threshold_mb: float, warmup_swaps: int = 2
) -> dict[str, Verdict]:
    """Every variant's verdict, with the run's control telling one-time costs apart.

    The control is the variant that keeps the least memory among those released
    on their own: what it keeps, every variant pays (one-time costs), so the
    others are judged on their level above the control's (`kept_mb`). Except
    where that leaves a decided verdict undecided: taking off the control's level
    may explain memory away, but never makes a finding less sure, so the variant
    keeps the verdict it has on its own. With no control
    (one variant, or none released) each is judged on its own.
    """
    alone = {
        name: classify(s.swaps, s.retained_mb, threshold_mb, warmup_swaps, s.died)
        for name, s in series.items()
    }
    clean = [
        (v.level_mb, name)
        for name, v in alone.items()
        if v.verdict == RELEASED and v.level_mb is not None
    ]
    if len(series) < 2 or not clean:
        return alone
    one_time, control = min(clean)
    if one_time <= 0:
        return alone
    verdicts = {}
    for name, s in series.items():
        v = alone[name]
        if name != control:
            with_control = classify(
                s.swaps, s.retained_mb, threshold_mb, warmup_swaps, s.died, one_time, control
            )
            if with_control.verdict != INCONCLUSIVE or v.verdict == INCONCLUSIVE:
                verdicts[name] = with_control
                continue
        kept = None if v.level_mb is None else v.level_mb - one_time
        verdicts[name] = replace(v, control=control, one_time_mb=one_time, kept_mb=kept)
    return verdicts


def classify(
    swaps: Sequence[int],
    retained_mb: Sequence[float],
    threshold_mb: float,
    warmup_swaps: int = 2,
    died: str | None = None,
    one_time_mb: float = 0.0,
    control: str | None = None,
) -> Verdict:
    """The verdict on settled memory (MiB above baseline) after swaps `swaps`.

    `died` is why the run ended early (the server died or hung), if it did.
    `one_time_mb` is what the run's `control` variant keeps (see classify_run).
    """
    pairs = sorted(
        (int(i), float(r)) for i, r in zip(swaps, retained_mb, strict=True) if math.isfinite(r)
    )
    judged = [(i, r) for i, r in pairs if i > warmup_swaps]
    x = [i for i, _ in judged]
    y = [r for _, r in judged]
    t = threshold_mb
    bound = kept_bound_mb(t)
    slope = theil_sen(x, y)[0] if len(set(x)) >= 2 else None
    base = Verdict(
        INCONCLUSIVE,
        "",
        slope,
        None,
        None,
        None,
        tuple(x),
        kept_bound_mb=bound,
        one_time_mb=one_time_mb,
        control=control,
    )
    if died:
        trend = f"; until then {_mb(slope)} MiB per swap" if slope is not None else ""
        return replace(base, reason=f"the run ended early: {died}{trend}")
    if len(x) < MIN_SWAPS:
        plural = "s" if len(x) != 1 else ""
        return replace(
            base,
            reason=f"only {len(x)} swap{plural} after the {warmup_swaps} warmup swaps; "
            f"need {MIN_SWAPS}",
            more_swaps=MIN_SWAPS - len(x),
        )
    assert slope is not None

    later_x, later_y = x[len(x) // 2 :], y[len(y) // 2 :]
    later_slope = theil_sen(later_x, later_y)[0]
    level = float(np.median(y))
    kept_mb = level - one_time_mb
    sigma = swap_noise(y)
    late = f"swaps {later_x[0]}–{later_x[-1]}"
    v = replace(
        base,
        later_mb_per_swap=later_slope,
        level_mb=level,
        noise_mb=sigma,
        kept_mb=kept_mb,
    )

    growth = _compare(slope, sigma / _spread(x), t)
    later_se = sigma / _spread(later_x)
    later_growth = _compare(later_slope, later_se, LATER_HALF_GROWTH * t, t)
    spread_sd = _level_sd(y)
    kept = _compare(kept_mb, MEDIAN_SE * spread_sd / math.sqrt(len(y)), bound)
    v = replace(v, growth=growth, later_growth=later_growth, kept=kept)
    noise = f"settled memory scatters ±{_mb(sigma)} MiB from swap to swap"
    holds = _holds_text(v, len(pairs))

    if growth == ABOVE:
        if later_growth == ABOVE:
            return replace(
                v,
                verdict=LEAK,
                reason=f"keeps {_mb(slope)} MiB more per swap, still growing in {late} "
                f"({_mb(later_slope)} MiB per swap; threshold {_mb(t)})",
            )
        if later_growth == UNSURE:  # growth is shown, a stop is not: a gate must not pass it
            return replace(
                v,
                verdict=LEAK,
                reason=f"keeps {_mb(slope)} MiB more per swap, with no sign that it stopped "
                f"in {late} ({noise}; threshold {_mb(t)})",
            )
    elif (
        growth == BELOW
        and len(later_x) >= MIN_LATE_SWAPS
        and _compare(later_slope, later_se, t) == ABOVE
    ):
        return replace(
            v,
            verdict=LEAK,
            reason=f"started growing late: {_mb(later_slope)} MiB per swap in {late} "
            f"(threshold {_mb(t)})",
        )

    if kept == ABOVE:
        trend = (
            "whether it still grows is not shown"
            if growth == UNSURE
            else f"not growing ({_mb(later_slope)} MiB per swap in {late})"
        )
        return replace(v, verdict=PLATEAU, reason=f"{holds}, never given back; {trend} ({noise})")
    if growth == UNSURE and kept == UNSURE:
        more = _more_swaps(x, slope, kept_mb, sigma, spread_sd, t, bound)
        advice = (
            f"about {more} more swap{'s' if more != 1 else ''} would decide"
            if more
            else "more swaps may not decide"
        )
        return replace(
            v,
            more_swaps=more,
            reason=f"too noisy to tell: {noise} against a threshold of {_mb(t)} MiB per swap "
            f"and {_mb(bound)} MiB kept; {advice}",
        )
    if kept == UNSURE:
        return replace(
            v,
            verdict=RELEASED,
            reason=f"not growing ({_mb(slope)} MiB per swap); {holds}, within the noise "
            f"(±{_mb(sigma)} MiB)",
        )
    if growth == UNSURE:
        return replace(
            v,
            verdict=RELEASED,
            reason=f"{holds}; growth within the noise ({_mb(slope)} MiB per swap, {noise})",
        )
    if growth == ABOVE:
        trend = f"grew {_mb(slope)} MiB per swap, then stopped in {late}"
    else:
        trend = f"not growing ({_mb(slope)} MiB per swap)"
    return replace(v, verdict=RELEASED, reason=f"{trend}; {holds}")


def _holds_text(v: Verdict, swaps: int) -> str:
    """'keeps +87.5 MiB of the baseline (...)': the kept memory, explained."""
    assert v.level_mb is not None and v.kept_mb is not None and v.kept_bound_mb is not None
    text = f"keeps {v.level_mb:+.1f} MiB over the baseline after {swaps} swaps"
    if v.control and v.one_time_mb:
        text += (
            f" ({v.one_time_mb:.1f} MiB of it one-time costs that {v.control}, the control, "
            f"keeps too; {v.kept_mb:+.1f} MiB beyond them)"
        )
    relation = {ABOVE: "over", BELOW: "under", UNSURE: "near"}[v.kept or UNSURE]
    return f"{text}, {relation} the {_mb(v.kept_bound_mb)} MiB bound"


def _compare(estimate: float, se: float, bound: float, scale: float | None = None) -> str:
    """Above / below / unsure; unsure only if the margin exceeds half the `scale` (the bound)."""
    margin = NOISE_MARGIN * se
    if margin > abs(bound if scale is None else scale) / 2 and abs(estimate - bound) <= margin:
        return UNSURE
    return ABOVE if estimate > bound else BELOW


def _more_swaps(
    x: Sequence[int],
    slope: float,
    kept: float,
    sigma: float,
    spread_sd: float,
    t: float,
    bound: float,
) -> int | None:
    """About how many more swaps until either question is answered, at this noise."""
    needs = []
    gap = abs(slope - t)
    if gap > 0:
        # slope SE with n evenly spaced swaps: sigma / sqrt(n (n^2 - 1) / 12)
        n = len(x)
        while n < MAX_SWAPS_ADVICE and NOISE_MARGIN * sigma / math.sqrt(
            n * (n * n - 1) / 12
        ) >= max(gap, t / 2):
            n += 1
        needs.append(n - len(x))
    gap = abs(kept - bound)
    if gap > 0:
        m = (NOISE_MARGIN * MEDIAN_SE * spread_sd / max(gap, bound / 2)) ** 2
        needs.append(max(0, math.ceil(m) - len(x)))
    best = min(needs, default=None)
    return None if best is None or best >= MAX_SWAPS_ADVICE else max(1, best)


def _level_sd(y: Sequence[float]) -> float:
    """The spread of the settled levels themselves: the sample sd, not a robust one.

    Not robust on purpose: over a few swaps a MAD sees only the two closest
    levels (glibc at +62, +1.8, +1.1 MiB would look settled at +1.8); the plain
    sd counts every swap, so a wild one makes kept memory unsure, never decided.
    """
    return float(np.std(np.asarray(y, dtype=float), ddof=1)) if len(y) > 1 else 0.0


def _spread(x: Sequence[int]) -> float:
    """sqrt(sum (x - mean x)^2): how much the swap indices lever a fitted slope."""
    return float(np.sqrt(np.sum((np.asarray(x, dtype=float) - np.mean(x)) ** 2)))


def _mb(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.1f}" if abs(value) >= 1 else f"{value:.2f}"
