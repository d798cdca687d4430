"""The swap index shared by the driver (writer) and the samplers (readers)."""

from __future__ import annotations

import threading


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
