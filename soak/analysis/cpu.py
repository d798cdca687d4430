"""The server's CPU: per request while it serves steadily, and per swap (the load's cost).

memory.csv's `cpu_s` is the server's cumulative CPU seconds (user + system: the
process's /proc/PID/stat, a container's cgroup cpu.stat) at each sample. Runs of
an older soak have no such column: every figure is then None.

- Steady windows: after each swap, from the moment memory settled until the next
  swap was staged (the end of the variant's traffic for the last one: the
  `swaps_done` event, the trim experiment's `release`, or the stop); the part of
  the steady window of latency.py after the settle wait. A window's CPU-ms per
  request is the growth of cpu_s between its first and last sample, over the
  requests (any status: an error costs CPU too) intended after the first sample
  until the last, x 1000 (the idle server's CPU is shared among them). A window
  with fewer than MIN_WINDOW_REQUESTS requests or MIN_WINDOW_SAMPLES samples is
  left out (the tick of /proc's CPU times is 10 ms).
- Swaps: the growth of cpu_s from a swap's staging until memory settled (first and
  last sample inside), completed swaps only: loading the new version, unloading the
  old one, and serving the requests meanwhile.

Per variant (`CpuFigures`): the median over the windows and its interquartile range,
and the median over the swaps.
"""

from __future__ import annotations

import numpy as np

from soak.analysis.latency import MIN_WINDOW_REQUESTS, LatencySeries
from soak.analysis.memory import MemorySeries
from soak.analysis.result import CpuFigures, SwapResult
from soak.analysis.timeline import SwapTimes, Timeline

CPU_COLUMN = "cpu_s"
MIN_WINDOW_SAMPLES = 5  # memory.csv samples with cpu_s inside a steady window (~0.5 s)


def traffic_end_t(timeline: Timeline) -> float | None:
    """When the variant's steady traffic ended: its swaps were done (the trim experiment
    stops traffic after that), else the release, else the stop (None: never seen)."""
    ends = [
        t
        for t in (
            timeline.swaps_done_t,
            timeline.release.t if timeline.release is not None else None,
            timeline.stopped_t,
        )
        if t is not None
    ]
    return min(ends, default=None)


def steady_window(swap: SwapTimes, timeline: Timeline) -> tuple[float, float] | None:
    """[settled, next staging or the end of traffic] after `swap` (None: it never settled)."""
    if swap.settled_t is None:
        return None
    end = swap.next_staged_t
    if end is None:
        end = traffic_end_t(timeline)
    return swap.settled_t, np.inf if end is None else end


def per_swap_cpu(
    series: MemorySeries, requests: LatencySeries, timeline: Timeline
) -> dict[int, tuple[float | None, float | None]]:
    """Per swap index: (CPU s from staging to settled, steady CPU-ms per request after it).

    Empty when memory.csv has no cpu_s. All swaps at once: a long run has thousands.
    """
    if not series.has(CPU_COLUMN):
        return {}
    t = series.t
    cpu = series.values(CPU_COLUMN)
    known = np.isfinite(cpu)
    t, cpu = t[known], cpu[known]
    nan = float("nan")
    loads = [(s.staged_t, nan if s.settled_t is None else s.settled_t) for s in timeline.swaps]
    swap_s, _, _ = _growth(t, cpu, loads, min_samples=2)
    steady = [steady_window(s, timeline) or (nan, nan) for s in timeline.swaps]
    seconds, first_t, last_t = _growth(t, cpu, steady, min_samples=MIN_WINDOW_SAMPLES)
    # requests intended in (first_t, last_t]: the CPU growth between two samples pays these
    lo, hi = np.searchsorted(requests.t, [first_t, last_t], side="right")
    n = np.maximum(0, hi - lo)
    per_request = np.where(n >= MIN_WINDOW_REQUESTS, seconds * 1000.0 / np.maximum(n, 1), nan)
    return {
        swap.index: (_figure(a), _figure(b))
        for swap, a, b in zip(timeline.swaps, swap_s.tolist(), per_request.tolist(), strict=True)
    }


def cpu_figures(swaps: tuple[SwapResult, ...]) -> CpuFigures:
    """A variant's CPU figures from its swaps' (see the module docstring)."""
    windows = [s.steady_cpu_ms_per_request for s in swaps]
    steady = np.asarray([w for w in windows if w is not None], dtype=float)
    loads = np.asarray([s.cpu_s for s in swaps if s.cpu_s is not None], dtype=float)
    spread = None
    if len(steady):
        low, high = np.percentile(steady, [25, 75])
        spread = (float(low), float(high))
    return CpuFigures(
        steady_ms_per_request=float(np.median(steady)) if len(steady) else None,
        steady_ms_per_request_spread=spread,
        swap_cpu_s=float(np.median(loads)) if len(loads) else None,
        windows=len(steady),
        swaps=len(loads),
    )


def _growth(
    t: np.ndarray, cpu: np.ndarray, windows: list[tuple[float, float]], min_samples: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per window [start, end] (NaN: none), over the samples inside it: the growth of cpu_s,
    the first and the last sample's t; NaN with fewer than `min_samples`, or when cpu_s
    went down (a restarted counter). `t` is not empty."""
    bounds = np.array(windows, dtype=float).reshape(-1, 2)
    lo = np.searchsorted(t, bounds[:, 0], side="left")
    hi = np.searchsorted(t, bounds[:, 1], side="right")
    usable = (hi - lo >= min_samples) & ~np.isnan(bounds).any(axis=1)
    first, last = np.where(usable, lo, 0), np.where(usable, hi - 1, 0)
    grown = cpu[last] - cpu[first]
    usable &= grown >= 0
    grown, first_t, last_t = (np.where(usable, v, np.nan) for v in (grown, t[first], t[last]))
    return grown, first_t, last_t


def _figure(value: float) -> float | None:
    return None if np.isnan(value) else value
