"""A drift-free periodic schedule for the sampler threads."""

from __future__ import annotations

import threading
import time


class Ticker:
    """Ticks at start + k * interval on the monotonic clock.

    Slow iterations do not push later ticks back (no drift), and ticks missed
    while the caller was busy are skipped rather than fired in a burst.
    """

    def __init__(self, interval_s: float, stop: threading.Event):
        if interval_s <= 0:
            raise ValueError(f"interval must be positive, got {interval_s}")
        self.interval_s = interval_s
        self._stop = stop
        self._next = time.monotonic()

    def wait(self) -> bool:
        """Sleep until the next tick; False once stop is set."""
        self._next += self.interval_s
        now = time.monotonic()
        if self._next < now:
            missed = int((now - self._next) / self.interval_s) + 1
            self._next += missed * self.interval_s
        return not self._stop.wait(self._next - now)
