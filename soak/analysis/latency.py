"""Latency by window: steady serving versus swaps.

Each request belongs to the window of its *intended* send time (the prober is
open-loop, so a stall shows up as latency rather than as missing requests):

- `baseline`: before the baseline settled (first load, warm traffic): left out;
- `swap`: from a swap's staging until the version change is over (the old
  version END, else the new one AVAILABLE) plus SWAP_TAIL_S, and never past
  the swap's end (memory settled, else the next staging);
- `steady`: everything else, up to the moment the run stopped the server. The
  wait for memory to settle after END is steady serving on the new version:
  the driver stages the next swap as soon as memory settled, so counting that
  wait as "swap" would leave almost no steady window at all;
- `after`: after that stop: left out.

Percentiles are over successful (HTTP 200) requests; errors are counted apart
(status != 200, 0 = no response), since a refused connection is fast and would
flatter the percentiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from soak.analysis.result import LatencyFigures
from soak.analysis.timeline import SwapTimes, Timeline
from soak.analysis.window_stats import percentiles, sorted_windows

BASELINE, STEADY, SWAP, AFTER = 0, 1, 2, 3  # window_labels' codes (a byte per request)
LATE_SEND_MS = 10.0  # the prober sent this much later than planned: it fell behind
SWAP_TAIL_S = 1.0  # after the version change, a swap's effects (cold paths) still count
MIN_WINDOW_REQUESTS = 10  # a steady window's p99 from fewer requests is not reported


def swap_window(swap: SwapTimes) -> tuple[float, float]:
    """[start, end] of a swap's latency window (epoch seconds; end may be inf)."""
    end = swap.end_t if swap.end_t is not None else math.inf
    if swap.transition_end_t is not None:
        end = min(end, swap.transition_end_t + SWAP_TAIL_S)
    return swap.staged_t, end


FIRST_ANSWERS_S = 0.25  # the new version's first answers: requests sent until this after it


class LatencySeries:
    """latency.csv of one variant as arrays, in order of intended send time."""

    def __init__(self, frame: pd.DataFrame):
        t = frame["t_intended"].to_numpy(dtype=float)
        # inputs.py sorts by intended time: then the columns are used as they are, not copied
        order = slice(None) if _ascending(t) else np.argsort(t, kind="stable")
        self.t = t[order]
        self.t_start = frame["t_start"].to_numpy(dtype=float)[order]
        self.latency_ms = frame["latency_ms"].to_numpy(dtype=float)[order]
        self.ok = frame["status"].to_numpy()[order] == 200

    def __len__(self) -> int:
        return len(self.t)

    def bounds(self, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per window [start, end], the positions [lo, hi) of the requests intended in it."""
        lo = np.searchsorted(self.t, starts, side="left")
        return lo, np.maximum(lo, np.searchsorted(self.t, ends, side="right"))


def _ascending(values: np.ndarray) -> bool:
    return bool(np.all(values[1:] >= values[:-1]))


def swap_windows(timeline: Timeline) -> np.ndarray:
    """Every swap's swap_window, one [start, end] row per swap."""
    return np.array([swap_window(swap) for swap in timeline.swaps], dtype=float).reshape(-1, 2)


def window_labels(series: LatencySeries, timeline: Timeline, windows: np.ndarray) -> np.ndarray:
    """The window (BASELINE, STEADY, SWAP, AFTER) of each request's intended send time;
    `windows`: swap_windows'."""
    t = series.t
    labels = np.full(len(t), STEADY, dtype=np.int8)
    lo, hi = series.bounds(windows[:, 0], windows[:, 1])
    # in a swap's window: more windows opened than closed up to it (all swaps at once)
    edges = np.bincount(lo, minlength=len(t) + 1) - np.bincount(hi, minlength=len(t) + 1)
    labels[np.cumsum(edges[:-1]) > 0] = SWAP
    if timeline.stopped_t is not None:
        labels[t >= timeline.stopped_t] = AFTER
    baseline_end = timeline.baseline_t if timeline.baseline_t is not None else np.inf
    labels[t < baseline_end] = BASELINE
    return labels


def first_after_swap(series: LatencySeries, timeline: Timeline) -> list[tuple[int, float, float]]:
    """Per swap, (swap index, intended send time, ms) of the new version's slowest first
    answer: among the successful requests answered after the version was seen AVAILABLE and
    sent by FIRST_ANSWERS_S after that, the longest wait counted from AVAILABLE (or from
    its send, if later).

    A cold path (lazy initialisation, no warmup records) shows here even when the p99
    hides it. Counting from AVAILABLE leaves out what requests waited while the version
    loaded (the swap window holds that); counting requests sent before it catches those
    the status poll saw late (it polls every 0.1 s while a version loads).
    """
    t_end = series.t + series.latency_ms / 1000
    # No request sent before AVAILABLE minus the longest wait (and a second for rounding) was
    # still waiting at it: each swap looks at the requests sent since then, not the whole run.
    longest = float(np.max(t_end - series.t)) if len(series) else 0.0
    swaps = [swap for swap in timeline.swaps if swap.available_t is not None]
    available = np.array([swap.available_t for swap in swaps], dtype=float)
    lo, hi = series.bounds(available - max(longest, 0.0) - 1.0, available + FIRST_ANSWERS_S)
    # the requests near each swap, one swap after the other (all swaps at once)
    count = hi - lo
    swap_of = np.repeat(np.arange(len(swaps)), count)
    near = np.arange(int(count.sum())) + np.repeat(lo - (np.cumsum(count) - count), count)
    at, t, ends = available[swap_of], series.t[near], t_end[near]
    answered = series.ok[near] & (ends >= at)
    waits = np.where(answered, ends - np.maximum(t, at), -np.inf)
    # per swap, its longest wait (the first of equal ones, as np.argmax takes it)
    some = count > 0
    longest_wait = np.full(len(swaps), -np.inf)
    longest_wait[some] = np.maximum.reduceat(waits, (np.cumsum(count) - count)[some])
    hit = np.flatnonzero(answered & (waits == longest_wait[swap_of]))
    chosen, first = np.unique(swap_of[hit], return_index=True)
    picked = near[hit[first]]
    return [
        (swaps[k].index, float(sent), float(wait * 1000))
        for k, sent, wait in zip(
            chosen.tolist(),
            series.t[picked].tolist(),
            waits[hit[first]].tolist(),
            strict=True,
        )
    ]


@dataclass(frozen=True)
class RequestWindows:
    """What the figures and plots of a variant's requests share, found once."""

    swaps: np.ndarray  # swap_windows
    labels: np.ndarray  # window_labels
    firsts: list[tuple[int, float, float]]  # first_after_swap


def request_windows(series: LatencySeries, timeline: Timeline) -> RequestWindows:
    swaps = swap_windows(timeline)
    labels = window_labels(series, timeline, swaps)
    return RequestWindows(swaps, labels, first_after_swap(series, timeline))


def latency_figures(
    series: LatencySeries, windows: RequestWindows, protocol: str = "rest"
) -> LatencyFigures:
    labels = windows.labels
    latency, ok = series.latency_ms, series.ok
    steady, swap = labels == STEADY, labels == SWAP
    counted = steady | swap
    firsts = [ms for _, _, ms in windows.firsts]
    late = (series.t_start - series.t) * 1000 > LATE_SEND_MS
    # one partition per window for its three figures (the same floats as one call each)
    steady_p50, steady_p99, steady_max = _percentiles(latency[steady & ok], [50, 99, 100])
    swap_p50, swap_p99, swap_max = _percentiles(latency[swap & ok], [50, 99, 100])
    return LatencyFigures(
        steady_p50_ms=steady_p50,
        steady_p99_ms=steady_p99,
        steady_max_ms=steady_max,
        swap_p50_ms=swap_p50,
        swap_p99_ms=swap_p99,
        swap_max_ms=swap_max,
        max_ms=_percentiles(latency[counted & ok], [100])[0],
        errors=int(np.sum(counted & ~ok)),
        steady_errors=int(np.sum(steady & ~ok)),
        swap_errors=int(np.sum(swap & ~ok)),
        requests=int(np.sum(counted)),
        first_after_swap_ms=float(np.median(firsts)) if firsts else None,
        first_after_swap_max_ms=max(firsts) if firsts else None,
        late_sends=int(np.sum(late & counted)),
        protocol=protocol,
    )


def swap_window_latency(
    series: LatencySeries, timeline: Timeline, windows: RequestWindows
) -> dict[int, tuple[float | None, int]]:
    """Per swap index: (p99 ms of successful requests, errors) in its window."""
    starts, ends = windows.swaps[:, 0], windows.swaps[:, 1]
    if timeline.baseline_t is not None:
        starts = np.maximum(starts, timeline.baseline_t)
    lo, hi = series.bounds(starts, ends)
    p99 = percentiles(sorted_windows(series.latency_ms, lo, hi, series.ok), 99)
    failed = np.concatenate(([0], np.cumsum(~series.ok)))
    errors = failed[hi] - failed[lo]
    return {
        swap.index: (_figure(p), int(e))
        for swap, p, e in zip(timeline.swaps, p99.tolist(), errors.tolist(), strict=True)
    }


def steady_window_latency(
    series: LatencySeries, timeline: Timeline, windows: RequestWindows
) -> dict[int, float | None]:
    """Per swap index: the p99 ms of successful steady requests after its swap window.

    The window runs from the end of the swap's latency window until the next
    swap was staged (or the server stopped); None with fewer than
    MIN_WINDOW_REQUESTS requests in it.
    """
    stop = np.inf if timeline.stopped_t is None else timeline.stopped_t
    ends = np.array(
        [stop if s.next_staged_t is None else s.next_staged_t for s in timeline.swaps],
        dtype=float,
    )
    lo, hi = series.bounds(windows.swaps[:, 1], ends)
    steady = (windows.labels == STEADY) & series.ok
    found = sorted_windows(series.latency_ms, lo, hi, steady)
    p99 = percentiles(found, 99)
    return {
        swap.index: _figure(p) if n >= MIN_WINDOW_REQUESTS else None
        for swap, p, n in zip(timeline.swaps, p99.tolist(), found.count.tolist(), strict=True)
    }


def _figure(value: float) -> float | None:
    """A window's figure: None where it had no values (NaN)."""
    return None if np.isnan(value) else value


def _percentiles(values: np.ndarray, qs: list[float]) -> list[float | None]:
    return [float(p) for p in np.percentile(values, qs)] if len(values) else [None] * len(qs)
