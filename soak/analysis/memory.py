"""Per-swap memory figures from memory.csv and the timeline.

The settled level of a swap is the median of the metric over the last second
of samples before its `settled` event: the same window the settle rule judged,
robust to a stray sample. Figures are MiB (2^20 bytes).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from soak.analysis.result import SwapResult
from soak.analysis.timeline import SwapTimes, Timeline
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
        column = column or self.metric
        if t is None or not self.has(column):
            return None
        values = self.values(column)
        lo, hi = np.searchsorted(self.t, [t - LEVEL_WINDOW_S, t], side="right")
        window = values[lo:hi]
        window = window[np.isfinite(window)]
        if len(window) == 0:
            before = values[:hi][np.isfinite(values[:hi])]
            times = self.t[:hi][np.isfinite(values[:hi])]
            if len(before) == 0 or t - times[-1] > MAX_SAMPLE_GAP_S:
                return None
            window = before[-1:]
        return float(np.median(window)) / MIB

    def peak_mb(self, start: float | None = None, end: float | None = None) -> float | None:
        """The highest metric in [start, end] (open ends: the whole series)."""
        if not self.has(self.metric):
            return None
        lo = 0 if start is None else np.searchsorted(self.t, start, side="left")
        hi = len(self.t) if end is None else np.searchsorted(self.t, end, side="right")
        values = self.values(self.metric)[lo:hi]
        values = values[np.isfinite(values)]
        return float(values.max()) / MIB if len(values) else None


def swap_memory(series: MemorySeries, timeline: Timeline) -> list[SwapResult]:
    """One SwapResult per staged swap, in order (latency not yet filled in)."""
    baseline = series.level_mb(timeline.baseline_t)
    previous = baseline
    figures = []
    for swap in timeline.swaps:
        settled = series.level_mb(swap.settled_t)
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
                peak_mb=series.peak_mb(swap.staged_t, swap.end_t),
                retained_mb=_minus(settled, baseline),
                increment_mb=_minus(settled, previous),
                rss_settled_mb=series.level_mb(swap.settled_t, "rss_bytes"),
                cgroup_anon_settled_mb=series.level_mb(swap.settled_t, CGROUP_MEMORY_COLUMNS[0]),
                cgroup_working_set_settled_mb=series.level_mb(
                    swap.settled_t, CGROUP_MEMORY_COLUMNS[1]
                ),
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
