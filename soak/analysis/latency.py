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

from dataclasses import dataclass

import numpy as np
import pandas as pd

from soak.analysis.timeline import SwapTimes, Timeline

BASELINE, STEADY, SWAP, AFTER = "baseline", "steady", "swap", "after"
LATE_SEND_MS = 10.0  # the prober sent this much later than planned: it fell behind
SWAP_TAIL_S = 1.0  # after the version change, a swap's effects (cold paths) still count


@dataclass(frozen=True)
class LatencyFigures:
    steady_p50_ms: float | None
    steady_p99_ms: float | None
    steady_max_ms: float | None
    swap_p50_ms: float | None
    swap_p99_ms: float | None
    swap_max_ms: float | None
    max_ms: float | None  # steady and swap windows together
    errors: int  # steady and swap windows together
    steady_errors: int
    swap_errors: int
    requests: int  # steady and swap windows together
    first_after_swap_ms: float | None  # median over swaps (see first_after_swap)
    first_after_swap_max_ms: float | None
    late_sends: int  # sent more than LATE_SEND_MS after the intended time


def swap_window(swap: SwapTimes) -> tuple[float, float]:
    """[start, end] of a swap's latency window (epoch seconds; end may be inf)."""
    end = swap.end_t if swap.end_t is not None else np.inf
    if swap.transition_end_t is not None:
        end = min(end, swap.transition_end_t + SWAP_TAIL_S)
    return swap.staged_t, end


def window_labels(t_intended: np.ndarray, timeline: Timeline) -> np.ndarray:
    """The window (BASELINE, STEADY, SWAP, AFTER) of each intended send time."""
    t = np.asarray(t_intended, dtype=float)
    labels = np.full(len(t), STEADY, dtype=object)
    for swap in timeline.swaps:
        start, end = swap_window(swap)
        labels[(t >= start) & (t <= end)] = SWAP
    if timeline.stopped_t is not None:
        labels[t >= timeline.stopped_t] = AFTER
    baseline_end = timeline.baseline_t if timeline.baseline_t is not None else np.inf
    labels[t < baseline_end] = BASELINE
    return labels


def first_after_swap(frame: pd.DataFrame, timeline: Timeline) -> list[float]:
    """Per swap, the latency of the first request sent once the new version was AVAILABLE.

    It is the first request the new version serves: a cold path (lazy
    initialisation, no warmup records) shows here even when the p99 hides it.
    """
    starts = frame["t_start"].to_numpy(dtype=float)
    order = np.argsort(starts, kind="stable")
    starts, latencies = starts[order], frame["latency_ms"].to_numpy(dtype=float)[order]
    firsts = []
    for swap in timeline.swaps:
        if swap.available_t is None:
            continue
        i = int(np.searchsorted(starts, swap.available_t, side="left"))
        if i < len(starts) and (swap.end_t is None or starts[i] <= swap.end_t):
            firsts.append(float(latencies[i]))
    return firsts


def latency_figures(frame: pd.DataFrame, timeline: Timeline) -> LatencyFigures:
    labels = window_labels(frame["t_intended"].to_numpy(dtype=float), timeline)
    latency = frame["latency_ms"].to_numpy(dtype=float)
    ok = frame["status"].to_numpy(dtype=float) == 200
    steady, swap = labels == STEADY, labels == SWAP
    counted = steady | swap
    firsts = first_after_swap(frame, timeline)
    late = (frame["t_start"] - frame["t_intended"]).to_numpy(dtype=float) * 1000 > LATE_SEND_MS
    return LatencyFigures(
        steady_p50_ms=_percentile(latency[steady & ok], 50),
        steady_p99_ms=_percentile(latency[steady & ok], 99),
        steady_max_ms=_percentile(latency[steady & ok], 100),
        swap_p50_ms=_percentile(latency[swap & ok], 50),
        swap_p99_ms=_percentile(latency[swap & ok], 99),
        swap_max_ms=_percentile(latency[swap & ok], 100),
        max_ms=_percentile(latency[counted & ok], 100),
        errors=int(np.sum(counted & ~ok)),
        steady_errors=int(np.sum(steady & ~ok)),
        swap_errors=int(np.sum(swap & ~ok)),
        requests=int(np.sum(counted)),
        first_after_swap_ms=float(np.median(firsts)) if firsts else None,
        first_after_swap_max_ms=max(firsts) if firsts else None,
        late_sends=int(np.sum(late & counted)),
    )


def swap_window_latency(frame: pd.DataFrame, timeline: Timeline) -> dict[int, tuple]:
    """Per swap index: (p99 ms of successful requests, errors) in its window."""
    t = frame["t_intended"].to_numpy(dtype=float)
    latency = frame["latency_ms"].to_numpy(dtype=float)
    ok = frame["status"].to_numpy(dtype=float) == 200
    out = {}
    for swap in timeline.swaps:
        start, end = swap_window(swap)
        inside = (t >= start) & (t <= end)
        if timeline.baseline_t is not None:
            inside &= t >= timeline.baseline_t
        out[swap.index] = (_percentile(latency[inside & ok], 99), int(np.sum(inside & ~ok)))
    return out


def _percentile(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None
