"""What the report plots over time, reduced once by the analysis: `VariantTimeline`.

A 24-hour run has about a million samples per variant; a plot needs a few
thousand. Long series are reduced to the lowest and the highest point of each
time bin, so spikes and the floor both stay visible.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from soak.analysis.attribution import breakdown_series, release_bar
from soak.analysis.latency import STEADY, SWAP, LatencySeries, RequestWindows
from soak.analysis.memory import MemorySeries
from soak.analysis.result import Series, VariantTimeline
from soak.analysis.timeline import Timeline
from soak.store.records import MIB, BreakdownRow

MAX_POINTS = 2000  # per memory line; longer series are reduced to min/max per time bin
MAX_SCATTER_POINTS = 20000  # per latency scatter (the same reduction)
MAX_BARS = 200  # per-swap bars (the breakdown); more swaps are averaged in runs of swaps
# markers drawn one by one (errors, the first request after a new version): the same reduction
MAX_MARKERS = 500
# Memory lines drawn besides the verdict metric (grey), when present.
CONTEXT_COLUMNS = ("rss_bytes", "cgroup_working_set_bytes")


def variant_timeline(
    memory: MemorySeries,
    latency: LatencySeries,
    timeline: Timeline,
    windows: RequestWindows,
    breakdown: Sequence[BreakdownRow] = (),
) -> VariantTimeline:
    t0 = _t0(memory, latency, timeline)
    columns = [memory.metric] + [c for c in CONTEXT_COLUMNS if c != memory.metric]
    lines = tuple(
        _series(c.removesuffix("_bytes"), memory.t - t0, memory.values(c) / MIB)
        for c in columns
        if memory.has(c)
    )
    labels, firsts = windows.labels, windows.firsts
    shown = (labels == STEADY) | (labels == SWAP)
    last = float(np.max(latency.t)) if len(latency) else None
    start, end = windows.swaps[:, 0], windows.swaps[:, 1]
    if last is not None:
        end = np.minimum(end, np.maximum(last, start))
    shaded = list(zip((start - t0).tolist(), (end - t0).tolist(), strict=True))
    return VariantTimeline(
        t0=t0,
        started_t=timeline.started_t,
        baseline_s=None if timeline.baseline_t is None else timeline.baseline_t - t0,
        staged_s=tuple(s.staged_t - t0 for s in timeline.swaps),
        settled_s=tuple(None if s.settled_t is None else s.settled_t - t0 for s in timeline.swaps),
        swap_windows=tuple(shaded) if last is not None else (),
        memory=lines,
        latency_ok=_series("200", *_requests(latency, shown & latency.ok, t0), MAX_SCATTER_POINTS),
        latency_errors=_series("error", *_requests(latency, shown & ~latency.ok, t0), MAX_MARKERS),
        first_after_swap=_series(
            "first request after a new version",
            np.array([t for _, t, _ in firsts], dtype=float) - t0,
            np.array([ms for _, _, ms in firsts], dtype=float),
            MAX_MARKERS,
        ),
        breakdown=_binned(breakdown_series(breakdown)),
        release_mb=release_bar(breakdown),
        release_s=None if timeline.release is None else timeline.release.t - t0,
    )


def reduce_points(
    x: np.ndarray, y: np.ndarray, limit: int = MAX_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """At most about `limit` points: the min and max of each time bin, in order.

    The bins are np.array_split's (the first ones a point longer), each a row of a
    view: argmin and argmax per row, of equal values the first.
    """
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) <= limit:
        return x, y
    bins = limit // 2
    size, longer = divmod(len(x), bins)
    cut = longer * (size + 1)
    lowest, highest = [], []
    for start, width, block in ((0, size + 1, y[:cut]), (cut, size, y[cut:])):
        rows = block.reshape(-1, width)
        first = start + np.arange(len(rows)) * width
        lowest.append(first + rows.argmin(axis=1))
        highest.append(first + rows.argmax(axis=1))
    low, high = np.concatenate(lowest), np.concatenate(highest)
    chosen = np.column_stack((np.minimum(low, high), np.maximum(low, high))).ravel()
    return x[chosen], y[chosen]


def _binned(parts: tuple[Series, ...]) -> tuple[Series, ...]:
    """The breakdown's bars, at most MAX_BARS after the baseline's: the mean of each run
    of consecutive swaps (means of parts add up to the mean of their sum)."""
    if not parts or len(parts[0].x) - 1 <= MAX_BARS:
        return parts
    bins = np.array_split(np.arange(1, len(parts[0].x)), MAX_BARS)

    def means(values: tuple[float, ...]) -> tuple[float, ...]:
        array = np.asarray(values)
        return (values[0], *(float(np.mean(array[b])) for b in bins))

    x = means(parts[0].x)
    return tuple(Series(p.name, x, means(p.y)) for p in parts)


def _series(name: str, x: np.ndarray, y: np.ndarray, limit: int = MAX_POINTS) -> Series:
    rx, ry = reduce_points(x, y, limit)
    return Series(name, tuple(rx.tolist()), tuple(ry.tolist()))


def _requests(
    latency: LatencySeries, chosen: np.ndarray, t0: float
) -> tuple[np.ndarray, np.ndarray]:
    return latency.t[chosen] - t0, latency.latency_ms[chosen]


def _t0(memory: MemorySeries, latency: LatencySeries, timeline: Timeline) -> float:
    """Time zero of a variant's plots: its first event, else its first sample."""
    if timeline.started_t is not None:
        return timeline.started_t
    firsts = [float(a.min()) for a in (memory.t, latency.t) if len(a)]
    return min(firsts, default=0.0)
