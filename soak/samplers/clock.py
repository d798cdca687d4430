"""Clocks the samplers share: the swap index, and epoch time that cannot step."""

from __future__ import annotations

import threading
import time

ANCHOR_READS = 5  # reads of the clock pair; the tightest one anchors


class EpochClock:
    """Epoch seconds measured on the monotonic clock, anchored once.

    Latencies and timestamps stay consistent when the wall clock steps during a run.
    The anchor is the pair of readings least apart of a few: a thread switched out
    between reading the monotonic and the wall clock would shift every row by as long.
    """

    def __init__(self) -> None:
        self._offset = 0.0
        self.anchor()

    def anchor(self) -> None:
        best_gap = float("inf")
        for _ in range(ANCHOR_READS):
            before = time.monotonic()
            wall = time.time()
            after = time.monotonic()
            if after - before < best_gap:
                best_gap = after - before
                self._offset = wall - (before + after) / 2

    def epoch(self, t_mono: float) -> float:
        """Epoch seconds of a monotonic instant."""
        return t_mono + self._offset

    def now(self) -> float:
        return self.epoch(time.monotonic())


class SwapClock:
    """Thread-safe current swap index: 0 during the baseline, k from the staging of swap k.

    Every row a sampler writes is stamped with the value read at that moment,
    so the analysis can cut the timelines per swap without matching clocks.
    """

    def __init__(self, swap: int = 0):
        self._lock = threading.Lock()
        self._swap = swap

    @property
    def swap(self) -> int:
        with self._lock:
            return self._swap

    @swap.setter
    def swap(self, value: int) -> None:
        with self._lock:
            self._swap = value
