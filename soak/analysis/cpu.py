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

    Empty when memory.csv has no cpu_s.
    """
    if not series.has(CPU_COLUMN):
        return {}
    t = series.t
    cpu = series.values(CPU_COLUMN)
    known = np.isfinite(cpu)
    t, cpu = t[known], cpu[known]
    out: dict[int, tuple[float | None, float | None]] = {}
    for swap in timeline.swaps:
        swap_s = None
        if swap.settled_t is not None:
            grown = _growth(t, cpu, swap.staged_t, swap.settled_t, min_samples=2)
            swap_s = grown[0] if grown is not None else None
        steady = None
        window = steady_window(swap, timeline)
        if window is not None:
            grown = _growth(t, cpu, *window, min_samples=MIN_WINDOW_SAMPLES)
            if grown is not None:
                seconds, first_t, last_t = grown
                n = _requests(requests, first_t, last_t)
                if n >= MIN_WINDOW_REQUESTS:
                    steady = seconds * 1000.0 / n
        out[swap.index] = (swap_s, steady)
    return out


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


def _requests(requests: LatencySeries, after: float, until: float) -> int:
    """Requests intended in (after, until]: the CPU growth between two samples pays these."""
    lo, hi = np.searchsorted(requests.t, [after, until], side="right")
    return int(max(0, hi - lo))


def _growth(
    t: np.ndarray, cpu: np.ndarray, start: float, end: float, min_samples: int
) -> tuple[float, float, float] | None:
    """(cpu_s growth, first sample's t, last sample's t) over the samples in [start, end];
    None with fewer than `min_samples`, or when cpu_s went down (a restarted counter)."""
    lo = int(np.searchsorted(t, start, side="left"))
    hi = int(np.searchsorted(t, end, side="right"))
    if hi - lo < min_samples:
        return None
    grown = float(cpu[hi - 1] - cpu[lo])
    if grown < 0:
        return None
    return grown, float(t[lo]), float(t[hi - 1])
