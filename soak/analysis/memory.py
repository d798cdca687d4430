"""Per-swap memory figures from memory.csv and the timeline.

The settled level of a swap is the median of the metric over the last second
of samples before its `settled` event: the same window the settle rule judged,
robust to a stray sample. Figures are MiB (2^20 bytes).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from soak.analysis.result import SwapResult
from soak.analysis.timeline import SwapTimes, Timeline
from soak.analysis.window_stats import maxima, medians, sorted_windows
from soak.store.records import CGROUP_MEMORY_COLUMNS, LEVEL_WINDOW_S, MIB

MAX_SAMPLE_GAP_S = 5.0  # with no sample in the window, accept one this old at most


class MemorySeries:
    """memory.csv of one variant, with level and peak lookups by time."""

    def __init__(self, frame: pd.DataFrame, metric: str):
        self.frame = frame
        self.metric = metric
        self.t = frame["t"].to_numpy(dtype=float)
        self._values: dict[str, np.ndarray] = {}
        self._has: dict[str, bool] = {}

    def has(self, column: str) -> bool:
        if column not in self._has:
            self._has[column] = bool(np.isfinite(self.values(column)).any())
        return self._has[column]

    def values(self, column: str) -> np.ndarray:
        """The column as floats (NaN where missing); empty if memory.csv has no such column."""
        if column not in self._values:
            present = column in self.frame
            self._values[column] = (
                self.frame[column].to_numpy(dtype=float) if present else np.array([], dtype=float)
            )
        return self._values[column]

    def level_mb(self, t: float | None, column: str | None = None) -> float | None:
        """The median of `column` over the second before `t`."""
        return self.levels_mb([t], column)[0]

    def levels_mb(
        self, times: Sequence[float | None], column: str | None = None
    ) -> list[float | None]:
        """level_mb at each of `times`, found together (a long run has thousands of swaps)."""
        column = column or self.metric
        if not self.has(column):
            return [None] * len(times)
        values = self.values(column)
        known = np.isfinite(values)
        t = np.array([np.nan if at is None else at for at in times], dtype=float)
        lo, hi = np.searchsorted(self.t, [t - LEVEL_WINDOW_S, t], side="right")
        windows = sorted_windows(values, lo, hi, known)
        level = medians(windows)
        # an empty window: the last sample before it, if not older than MAX_SAMPLE_GAP_S
        kept_t, kept = self.t[known], values[known]
        last = np.concatenate(([0], np.cumsum(known)))[hi] - 1  # among the kept samples
        empty = (windows.count == 0) & (last >= 0)
        recent = empty.copy()
        recent[empty] = t[empty] - kept_t[last[empty]] <= MAX_SAMPLE_GAP_S
        level[recent] = kept[last[recent]]
        return [
            None if at is None or np.isnan(mb) else mb / MIB
            for at, mb in zip(times, level.tolist(), strict=True)
        ]

    def peak_mb(self, start: float | None = None, end: float | None = None) -> float | None:
        """The highest metric in [start, end] (open ends: the whole series)."""
        return self.peaks_mb([start], [end])[0]

    def peaks_mb(
        self, starts: Sequence[float | None], ends: Sequence[float | None]
    ) -> list[float | None]:
        """peak_mb over each window [start, end], found together."""
        if not self.has(self.metric):
            return [None] * len(starts)
        lo = np.searchsorted(self.t, [-np.inf if s is None else s for s in starts], side="left")
        hi = np.searchsorted(self.t, [np.inf if e is None else e for e in ends], side="right")
        values = self.values(self.metric)
        peaks = maxima(values, lo, np.maximum(lo, hi), np.isfinite(values))
        return [None if np.isnan(mb) else mb / MIB for mb in peaks.tolist()]


def swap_memory(series: MemorySeries, timeline: Timeline) -> list[SwapResult]:
    """One SwapResult per staged swap, in order (latency not yet filled in)."""
    baseline = series.level_mb(timeline.baseline_t)
    previous = baseline
    settled_at = [swap.settled_t for swap in timeline.swaps]
    settled_mb = series.levels_mb(settled_at)
    rss_mb = series.levels_mb(settled_at, "rss_bytes")
    cgroup_anon_mb = series.levels_mb(settled_at, CGROUP_MEMORY_COLUMNS[0])
    working_set_mb = series.levels_mb(settled_at, CGROUP_MEMORY_COLUMNS[1])
    peaks = series.peaks_mb([s.staged_t for s in timeline.swaps], [s.end_t for s in timeline.swaps])
    figures = []
    for i, swap in enumerate(timeline.swaps):
        settled = settled_mb[i]
        figures.append(
            SwapResult(
                index=swap.index,
                version=swap.version,
                completed=swap.completed,
                settle_timed_out=swap.settle_timed_out,
                load_failed=swap.load_failed,
                load_s=_span(swap.staged_t, swap.available_t),
                settle_s=_span(_settle_start(swap), swap.settled_t),
                settled_mb=settled,
                peak_mb=peaks[i],
                retained_mb=_minus(settled, baseline),
                increment_mb=_minus(settled, previous),
                rss_settled_mb=rss_mb[i],
                cgroup_anon_settled_mb=cgroup_anon_mb[i],
                cgroup_working_set_settled_mb=working_set_mb[i],
            )
        )
        if settled is not None:
            previous = settled
    return figures


def _settle_start(swap: SwapTimes) -> float:
    return swap.old_end_t if swap.old_end_t is not None else swap.staged_t


def _span(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else max(0.0, end - start)


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b
