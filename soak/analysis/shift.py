"""How far apart two samples are, with its uncertainty: the Hodges–Lehmann shift.

`hodges_lehmann(x, y)` is the median of all pairwise differences x_i - y_j (the
variant's values minus the reference's): a robust estimate of how far x sits
from y, as Kayenta judges a canary against its baseline. Its distribution-free
confidence interval (Moses; the inversion of the Mann–Whitney test) is a pair of
order statistics of those differences, [d_(k), d_(nm-k+1)], with k the largest
count such that P(U <= k - 1) <= alpha/2 under the null distribution of the
Mann–Whitney U: exact for small samples (n * m <= EXACT_MAX_PAIRS), the normal
approximation with a continuity correction above. It assumes independent values
and the same shape in both samples; it needs no normality.

Too few values for a 95 % interval (e.g. 3 against 3: the most extreme ordering
alone has probability 0.1 two-sided) give no interval, and no label: the data
cannot tell, which `same` would hide. With an interval, `judge` labels a shift
where lower is better:

- `worse`: the interval lies above 0 *and* the shift exceeds the practical margin;
- `better`: the interval lies below 0 *and* the shift is below minus the margin;
- `same`: otherwise: no difference beyond both the noise and the margin (which
  does not prove equality: a wide interval says how large a difference could hide).

The margin is the figure's, chosen by the caller (soak/analysis/comparison.py
holds the margins of the variants' figures and why).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from soak.analysis.pairwise import MAX_MADE_PAIRS, kth_differences
from soak.analysis.result import Shift

BETTER, SAME, WORSE = "better", "same", "worse"
LABELS = (BETTER, SAME, WORSE)
CONFIDENCE = 0.95
EXACT_MAX_PAIRS = 2500  # beyond this many pairs the normal approximation is exact enough
_Z = {0.90: 1.6448536269514722, 0.95: 1.959963984540054, 0.99: 2.5758293035489004}


def hodges_lehmann(
    x: Sequence[float], y: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float | None, float | None, float | None]:
    """(shift, low, high) of x - y; low and high None with too few values for an interval,
    all None when either sample is empty. Non-finite values are left out."""
    a = _finite(x)
    b = _finite(y)
    if not len(a) or not len(b):
        return None, None, None
    k = _rank(len(a), len(b), confidence)
    if len(a) * len(b) > MAX_MADE_PAIRS:
        return _selected(a, b, k)
    d = np.sort(np.subtract.outer(a, b).ravel())
    shift = float(np.median(d))
    if k < 1:
        return shift, None, None
    return shift, float(d[k - 1]), float(d[len(d) - k])


def _selected(
    a: np.ndarray, b: np.ndarray, k: int
) -> tuple[float | None, float | None, float | None]:
    """hodges_lehmann's figures from the differences' order statistics, selected
    (pairwise.py) rather than sorted: the same floats, in bounded memory."""
    total = len(a) * len(b)
    middle = [total // 2] if total % 2 else [total // 2 - 1, total // 2]
    ends = [k - 1, total - k] if k >= 1 else []
    values = kth_differences(a, b, middle + ends)
    shift = float(np.mean(np.asarray(values[: len(middle)])))  # as np.median averages two
    if k < 1:
        return shift, None, None
    return shift, values[-2], values[-1]


def judge(shift: float | None, low: float | None, high: float | None, margin: float) -> str | None:
    """better / same / worse for a figure where lower is better (None: no interval)."""
    if shift is None or low is None or high is None:
        return None
    if low > 0 and shift > margin:
        return WORSE
    if high < 0 and shift < -margin:
        return BETTER
    return SAME


def compare_samples(
    x: Sequence[float], y: Sequence[float], margin: float, confidence: float = CONFIDENCE
) -> Shift:
    """x (the variant's values) against y (the reference's), labelled with `margin`."""
    shift, low, high = hodges_lehmann(x, y, confidence)
    ref = _finite(y)
    return Shift(
        shift=shift,
        low=low,
        high=high,
        label=judge(shift, low, high, margin),
        margin=margin,
        n=len(_finite(x)),
        n_reference=len(ref),
        reference_median=float(np.median(ref)) if len(ref) else None,
    )


def _finite(values: Sequence[float | None]) -> np.ndarray:
    a = np.asarray([v for v in values if v is not None], dtype=float)
    return a[np.isfinite(a)]


def _rank(n: int, m: int, confidence: float) -> int:
    """k: the interval is the k-th smallest and k-th largest difference (0: no interval)."""
    alpha_half = (1.0 - confidence) / 2.0
    if n * m <= EXACT_MAX_PAIRS:
        counts = _u_counts(n, m)
        total = sum(counts)
        k, cumulative = 0, 0
        for count in counts:  # P(U <= k) for k = 0, 1, ...
            cumulative += count
            if cumulative / total > alpha_half:
                break
            k += 1
        return k
    z = _Z.get(round(confidence, 2)) or _normal_quantile(1.0 - alpha_half)
    sigma = math.sqrt(n * m * (n + m + 1) / 12.0)
    return max(0, math.floor(n * m / 2.0 - z * sigma + 0.5))


def _u_counts(n: int, m: int) -> list[int]:
    """How many of the C(n+m, n) orderings give U = 0, 1, ..., n*m: the coefficients of
    the Gaussian binomial [n+m choose n]_q = prod_{i=1..n} (1 - q^(m+i)) / (1 - q^i)."""
    size = n * m + 1
    poly = [0] * (size + n + m + 1)
    poly[0] = 1
    for i in range(1, n + 1):
        step = m + i
        for u in range(len(poly) - 1, step - 1, -1):  # times (1 - q^(m+i))
            poly[u] -= poly[u - step]
        for u in range(i, len(poly)):  # divided by (1 - q^i): a running sum at stride i
            poly[u] += poly[u - i]
    return poly[:size]


def _normal_quantile(p: float) -> float:
    """The standard normal quantile (bisection on erf; only for unusual confidences)."""
    lo, hi = -10.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
