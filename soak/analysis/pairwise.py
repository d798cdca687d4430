"""Order statistics of all pairwise differences and slopes, without making the pairs.

The Hodges–Lehmann shift (shift.py) is the median of the n * m differences between
two samples and its interval two more of their order statistics. A day-long run
has thousands of swaps per variant: 8 000 against 5 000 are 40 M differences,
320 MB to hold and more to sort. Here they are selected instead: with `a` sorted
up and `b` sorted down, every row i of the differences (a_i - b_0, a_i - b_1, ...)
is sorted up (rounding is monotone, so this holds for the differences as computed),
and a value's rank is counted by a binary search per row. Each round draws a
sample of the pairs still in play, counts two of its quantiles around the wanted
rank, and keeps the rows' slices between them; when few are left they are made
and sorted. The values are those `np.sort(np.subtract.outer(a, b).ravel())` holds:
the same floats, only found in O((n + m) log) memory and time.

The Theil–Sen slope (verdict.py) is the median of the n (n - 1) / 2 slopes between
swaps: `kth_slopes` selects it alike, counting with inversions (see `_Slopes`).
Up to MAX_MADE_PAIRS pairs, both are made and sorted as before: a normal run's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

MAX_MADE_PAIRS = 1_000_000  # up to this many pairs they are made and sorted
FEW_PAIRS = 200_000  # pairs still in play: made and sorted
SAMPLE = 4_096  # pairs drawn per round to place the next bounds
SPREAD = 4.0  # the bounds lie this many standard errors of the sample around the rank
MAX_DRAWS = 1 << 20  # pairs drawn at most per round, to find SAMPLE of those in play
# Slopes this close (relative) to a value that a whole sample holds are taken as equal to
# it: counting works on exact slopes, while a run of equal slopes holds rounded ones.
TIE_WIDTH = 1e-9


def kth_differences(a: np.ndarray, b: np.ndarray, ranks: Sequence[int]) -> list[float]:
    """The values at `ranks` (0-based) of the sorted differences a_i - b_j."""
    pairs = _Pairs(np.sort(a), np.sort(b)[::-1])
    return [pairs.select(rank) for rank in ranks]


class _Pairs:
    """The matrix a_i - b_j, rows sorted up, read only by position."""

    def __init__(self, a: np.ndarray, b: np.ndarray):
        self.a = np.ascontiguousarray(a, dtype=float)
        self.b = np.ascontiguousarray(b, dtype=float)
        self.rng = np.random.default_rng(0)  # fixed: the same run selects the same way

    def select(self, rank: int) -> float:
        n, m = len(self.a), len(self.b)
        if not 0 <= rank < n * m:
            raise IndexError(f"rank {rank} of {n * m} differences")
        low = np.zeros(n, dtype=np.int64)  # row i's pairs before low[i] are below the rank
        high = np.full(n, m, dtype=np.int64)  # ... and from high[i] on above it
        below = 0  # pairs left of `low`
        step_scale = SPREAD
        while True:
            sizes = high - low
            left = int(sizes.sum())
            if left <= FEW_PAIRS:
                return self._pick(low, high, rank - below)
            values = self._sample(low, sizes, left)
            share = (rank - below) / left
            step = step_scale * np.sqrt(max(share * (1 - share), 1.0 / SAMPLE) / SAMPLE)
            bounds = [max(0.0, share - step), min(1.0, share + step)]
            lo_v, hi_v = np.quantile(values, bounds, method="lower")  # values of pairs in play
            lo_at = self._first(lo_v, low, high, strict=True)  # first pair >= lo_v per row
            hi_at = self._first(hi_v, low, high, strict=False)  # first pair > hi_v per row
            under = below + int((lo_at - low).sum())
            upto = below + int((hi_at - low).sum())
            if rank < under:  # the bounds missed: keep the side the rank is on
                high = lo_at
            elif rank >= upto:
                below, low = upto, hi_at
            elif lo_v == hi_v:  # the rank is in a run of equal differences
                return float(lo_v)
            elif under == below and upto == below + left:  # many equal values: split at one
                step_scale = 0.0
            else:
                below, low, high = under, lo_at, hi_at
                step_scale = SPREAD

    def _sample(self, low: np.ndarray, sizes: np.ndarray, left: int) -> np.ndarray:
        """The values of SAMPLE pairs drawn evenly from those still in play."""
        picks = self.rng.integers(0, left, SAMPLE)
        ends = np.cumsum(sizes)
        rows = np.searchsorted(ends, picks, side="right")
        columns = low[rows] + picks - (ends[rows] - sizes[rows])
        return self.a[rows] - self.b[columns]

    def _first(self, value: float, low: np.ndarray, high: np.ndarray, strict: bool) -> np.ndarray:
        """Per row, the first position in [low, high) whose difference is >= `value`
        (strict) or > `value`: a binary search on all rows at once."""
        lo, hi = low.copy(), high.copy()
        while True:
            open_ = lo < hi
            if not open_.any():
                return lo
            mid = (lo + hi) // 2
            d = self.a - self.b[np.minimum(mid, len(self.b) - 1)]
            before = (d < value) if strict else (d <= value)
            before &= open_
            lo = np.where(before, mid + 1, lo)
            hi = np.where(open_ & ~before, mid, hi)

    def _pick(self, low: np.ndarray, high: np.ndarray, rank: int) -> float:
        """The rank-th smallest of the pairs still in play, made and partitioned."""
        sizes = high - low
        rows = np.repeat(np.arange(len(self.a)), sizes)
        starts = np.cumsum(sizes) - sizes
        columns = np.arange(int(sizes.sum())) - np.repeat(starts - low, sizes)
        values = self.a[rows] - self.b[columns]
        return float(np.partition(values, rank)[rank])


def kth_slopes(x: np.ndarray, y: np.ndarray, ranks: Sequence[int]) -> list[float]:
    """The values at `ranks` (0-based) of the sorted slopes (y_j - y_i) / (x_j - x_i) over
    all pairs i < j; `x` distinct. See `_Slopes` for how they are found."""
    order = np.argsort(x, kind="stable")
    slopes = _Slopes(np.asarray(x, dtype=float)[order], np.asarray(y, dtype=float)[order])
    return [slopes.select(rank) for rank in ranks]


class _Slopes:
    """The slopes of all pairs of points (x sorted up, distinct), found by counting.

    The slopes at most s are the pairs i < j with z_j <= z_i, z = y - s * x: the
    inversions of z's order, counted in O(n log^2 n) (`_inversions`). Each round draws
    pairs, takes two quantiles of the slopes in play as bounds and counts them; the
    pairs between two bounds are the ones whose order flips from one z to the other,
    listed when few are left, their slopes made and sorted. Counting sees the exact
    slopes, listing the rounded ones: a slope within rounding of a bound may be put on
    the other side of it, which moves the result only when it is that slope.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x, self.y = x, y
        self.n = len(x)
        self.pairs = self.n * (self.n - 1) // 2
        self.rng = np.random.default_rng(0)
        # how steep a slope can be: the width of a run of equal slopes at 0 scales with it
        self.scale = float(np.ptp(y) / np.min(np.diff(x))) if self.n > 1 else 0.0

    def select(self, rank: int) -> float:
        if not 0 <= rank < self.pairs:
            raise IndexError(f"rank {rank} of {self.pairs} slopes")
        lo: float | None = None  # the slopes in play are in (lo, hi]; None: unbounded
        hi: float | None = None
        below, upto = 0, self.pairs  # slopes <= lo, <= hi
        while upto - below > FEW_PAIRS:
            values = np.sort(self._sample(lo, hi, upto - below))
            share = (rank - below) / (upto - below)
            step = SPREAD * np.sqrt(max(share * (1 - share), 1.0 / len(values)) / len(values))
            at = np.clip(np.array([share - step, share, share + step]) * len(values), 0, None)
            low, middle, high = (values[min(len(values) - 1, int(a))] for a in at)
            lo_v, hi_v = _gap_below(values, low), _gap_above(values, high)
            if lo_v is None and hi_v is None:  # the sample is one value: is the rank there?
                lo_v, hi_v = middle - TIE_WIDTH * abs(middle), middle + TIE_WIDTH * abs(middle)
                if middle == 0:
                    lo_v, hi_v = -TIE_WIDTH * self.scale, TIE_WIDTH * self.scale
                under, over = self._count_le(lo_v), self._count_le(hi_v)
                if under <= rank < over:
                    return middle
            else:
                under = below if lo_v is None else self._count_le(lo_v)
                over = upto if hi_v is None else self._count_le(hi_v)
            if rank < under:
                hi, upto = lo_v, under
            elif rank >= over:
                lo, below = hi_v, over
            else:
                lo, hi, below, upto = lo_v, hi_v, under, over
        values = np.sort(self._between(lo, hi))
        return float(values[min(len(values) - 1, max(0, rank - below))])

    def _count_le(self, s: float) -> int:
        """Pairs whose slope is at most s."""
        return _inversions(self._rank(s))

    def _rank(self, s: float) -> np.ndarray:
        """Each point's place in the order of z = y - s * x, equal z by falling index
        (so that a pair of slope s counts as at most s)."""
        z = self.y - s * self.x
        order = np.lexsort((-np.arange(self.n), z))
        rank = np.empty(self.n, dtype=np.int64)
        rank[order] = np.arange(self.n)
        return rank

    def _sample(self, lo: float | None, hi: float | None, in_play: int) -> np.ndarray:
        """Slopes of pairs drawn at random, those in (lo, hi]: about SAMPLE of them."""
        draws = min(SAMPLE * max(1, self.pairs // max(1, in_play)), MAX_DRAWS)
        i = self.rng.integers(0, self.n, draws)
        j = self.rng.integers(0, self.n, draws)
        i, j = np.minimum(i, j)[i != j], np.maximum(i, j)[i != j]
        slopes = (self.y[j] - self.y[i]) / (self.x[j] - self.x[i])
        keep = np.ones(len(slopes), dtype=bool)
        if lo is not None:
            keep &= slopes > lo
        if hi is not None:
            keep &= slopes <= hi
        kept = slopes[keep]
        return kept if len(kept) else slopes

    def _between(self, lo: float | None, hi: float | None) -> np.ndarray:
        """The slopes of the pairs in (lo, hi]: those whose order flips from z at lo to z at
        hi (unbounded: every point is before, or after, every other)."""
        after = np.arange(self.n) if lo is None else self._rank(lo)
        before = np.arange(self.n)[::-1] if hi is None else self._rank(hi)
        sequence = np.empty(self.n, dtype=np.int64)
        sequence[after] = before  # the points in lo's order, each with its place in hi's
        points = np.empty(self.n, dtype=np.int64)
        points[after] = np.arange(self.n)
        first, second = _inversion_pairs(sequence)
        i, j = points[first], points[second]
        i, j = np.minimum(i, j), np.maximum(i, j)
        return (self.y[j] - self.y[i]) / (self.x[j] - self.x[i])


def _levels(rank: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per bit of the values (a permutation of 0..n-1), high to low: the positions in
    order of the higher bits (stable), and whether each has the bit set. A pair p < q
    with rank_p > rank_q differs first at one bit, where p has it and q not."""
    n = len(rank)
    for bit in range(max(1, int(n - 1).bit_length())):
        order = np.argsort(rank >> (bit + 1), kind="stable")
        yield order, ((rank[order] >> bit) & 1).astype(bool), rank[order] >> (bit + 1)


def _inversions(rank: np.ndarray) -> int:
    """Pairs p < q with rank_p > rank_q."""
    total = 0
    for _, ones, groups in _levels(rank):
        before = np.cumsum(ones) - ones  # set bits earlier in the whole order
        total += int(np.sum((before - before[_group_starts(groups)])[~ones]))
    return total


def _inversion_pairs(rank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pairs (p, q), p < q, with rank_p > rank_q: positions."""
    firsts, seconds = [], []
    for order, ones, groups in _levels(rank):
        before = np.cumsum(ones) - ones
        start = before[_group_starts(groups)]
        zeros = ~ones
        counts = (before - start)[zeros]
        set_positions = order[ones]  # in order: a group's set bits are a run of these
        offsets = np.repeat(start[zeros] - np.cumsum(counts) + counts, counts)
        firsts.append(set_positions[np.arange(int(counts.sum())) + offsets])
        seconds.append(np.repeat(order[zeros], counts))
    return np.concatenate(firsts), np.concatenate(seconds)


def _group_starts(groups: np.ndarray) -> np.ndarray:
    """For each element of a sorted array, the index of the first of its equal run."""
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    return np.repeat(starts, np.diff(np.r_[starts, len(groups)]))


def _gap_below(values: np.ndarray, value: float) -> float | None:
    """Halfway between `value` and the next smaller of the sorted `values` (None: none)."""
    i = int(np.searchsorted(values, value, side="left"))
    return None if i == 0 else (float(values[i - 1]) + value) / 2


def _gap_above(values: np.ndarray, value: float) -> float | None:
    """Halfway between `value` and the next larger of the sorted `values` (None: none)."""
    i = int(np.searchsorted(values, value, side="right"))
    return None if i == len(values) else (float(values[i]) + value) / 2
