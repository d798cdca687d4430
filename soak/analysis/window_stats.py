"""Order statistics of many windows of one series at once: per-swap p99s, settled levels.

A day-long run has thousands of swaps, each with a swap and a steady latency window
and settled memory levels: one `np.percentile` or `np.median` per window is some
30 µs of Python each, 27 000 p99s and 54 000 medians a day. Here each window's values
are sorted once (`np.sort` of a slice, a microsecond) and the order statistics of all
windows are taken together by the arithmetic numpy's own functions use, so the
floats are the same (tests/analysis/test_window_stats.py holds them to numpy's). A
maximum needs no sort: np.maximum.reduceat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SortedWindows:
    """The values of each window, sorted, one window after the other."""

    values: np.ndarray  # (values outside the windows may be between them)
    start: np.ndarray  # where each window's values begin in `values`
    count: np.ndarray  # how many values each window has (int64)


def sorted_windows(
    values: np.ndarray, lo: np.ndarray, hi: np.ndarray, keep: np.ndarray | None = None
) -> SortedWindows:
    """Per window i, the values at positions [lo[i], hi[i]) that `keep` marks (None: all)."""
    kept = values.copy() if keep is None else values[keep]  # ours to sort
    if keep is not None:  # window bounds among the kept values
        before = np.concatenate(([0], np.cumsum(keep)))
        lo, hi = before[lo], before[hi]
    count = np.maximum(np.asarray(hi, dtype=np.int64) - lo, 0)
    starts, ends = lo.tolist(), hi.tolist()
    if all(b <= a for b, a in zip(ends, starts[1:], strict=False)):  # one after the other
        for a, b in zip(starts, ends, strict=True):
            kept[a:b].sort()  # in place: each window's values stay where they are
        return SortedWindows(kept, np.asarray(lo, dtype=np.int64), count)
    parts = [np.sort(kept[a:b]) for a, b in zip(starts, ends, strict=True) if b > a]
    joined = np.concatenate(parts) if parts else np.empty(0, dtype=float)
    return SortedWindows(joined, np.cumsum(count) - count, count)


def percentiles(windows: SortedWindows, q: float) -> np.ndarray:
    """`np.percentile(window, q)` (its default, linear method) per window; NaN if empty."""
    n = windows.count
    some = n > 0
    virtual = (n[some] - 1) * (q / 100)
    above = virtual >= n[some] - 1  # numpy takes the last value, from index -1
    previous = np.where(above, -1.0, np.floor(virtual))
    first = windows.start[some]
    last = first + n[some] - 1
    below_at = np.where(above, last, first + previous.astype(np.int64))
    above_at = np.where(above, last, below_at + 1)
    a, b = windows.values[below_at], windows.values[above_at]
    gamma = virtual - previous
    diff = b - a  # numpy's _lerp: from the nearer end
    value = np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)
    value[np.isnan(windows.values[last])] = np.nan  # a NaN sorts last and makes the result NaN
    return _spread(value, some)


def medians(windows: SortedWindows) -> np.ndarray:
    """`np.median(window)` per window (the mean of the middle one or two); NaN if empty."""
    n = windows.count
    some = n > 0
    first, half = windows.start[some], n[some] // 2
    upper = windows.values[first + half]
    lower = windows.values[first + np.maximum(half - 1, 0)]
    value = np.where(n[some] % 2 == 1, upper, (lower + upper) / 2)
    value[np.isnan(windows.values[first + n[some] - 1])] = np.nan
    return _spread(value, some)


def maxima(
    values: np.ndarray, lo: np.ndarray, hi: np.ndarray, keep: np.ndarray | None = None
) -> np.ndarray:
    """The highest of the values at [lo[i], hi[i]) that `keep` marks, per window (NaN if
    none); a maximum needs no sort: np.maximum.reduceat over the kept values."""
    kept = values if keep is None else values[keep]
    if keep is not None:
        before = np.concatenate(([0], np.cumsum(keep)))
        lo, hi = before[lo], before[hi]
    some = np.asarray(hi) > lo
    out = np.full(len(some), np.nan)
    if some.any():  # reduceat takes [each index, the next one): starts and ends alternate
        edges = np.stack((lo[some], hi[some]), axis=1).ravel()
        ended = np.append(kept, -np.inf)  # an end may be the last value's: one more index
        out[some] = np.maximum.reduceat(ended, edges)[::2]
    return out


def _spread(value: np.ndarray, some: np.ndarray) -> np.ndarray:
    """The figures of the non-empty windows in place, NaN for the empty ones."""
    out = np.full(len(some), np.nan)
    out[some] = value
    return out
