"""Open-loop sending: request i is due at a fixed time, whatever happened to the others.

Requests go in bursts of `burst`: request i is due at t0 + (i // burst) * burst / rps.

Each wake-up of a thread costs 70-110 us of CPU on a small VM (BENCHMARKS.md), as much as an
HTTP call's own Python code, so the scheme is built around one per request (plus
the answer's): a free worker claims the next request and sleeps until it is due,
then sends it itself, no handoff between waking and sending. Two claims are kept
pending (`KEEP_PENDING`), so when a worker starts sending another is already asleep
on the next request; a worker done sending claims again, or parks if two are
pending. Only when a send starts with no claim pending (the others are all sending:
a slow server, or a burst) does it wake a parked worker or start one, up to
`max_workers`, so a stall never delays the schedule while workers are left, and only
as many threads (each with its own connection) exist as were ever needed at once.
With every worker busy, the first one free claims what is overdue and sends it at
once: late, but the caller times it from its due time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

KEEP_PENDING = 2


class OpenLoop:
    """Calls `send(due)` (due: monotonic seconds) on worker threads, on schedule."""

    def __init__(
        self,
        send: Callable[[float], None],
        rps: float,
        burst: int,
        max_workers: int,
        max_duration_s: float,
        name: str,
    ):
        self.send = send
        self.interval_s = burst / rps
        self.burst = burst
        self.max_workers = max_workers
        self.max_duration_s = max_duration_s
        self.name = name
        self.t0 = 0.0  # monotonic start of the schedule
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._reset()

    def _reset(self) -> None:
        self._next = 0  # the next request nobody has claimed
        self._pending = 0  # workers asleep until their claimed request is due
        self._parked = 0  # workers waiting on the condition
        self._wanted = 0  # parked workers asked to claim
        self._exhausted = False  # the schedule's end (max_duration_s) was claimed
        self._workers: list[threading.Thread] = []  # all started, for stop() to join
        self._alive = 0  # workers not yet returned (one whose send raised is replaced)

    def start(self) -> None:
        self._stop.clear()
        self._reset()
        self.t0 = time.monotonic()
        with self._cond:
            self._add_worker()

    def stop(self) -> None:
        """Stop the schedule; wait for the sends under way (claimed ones are not sent)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
            workers = list(self._workers)
        for worker in workers:
            worker.join()

    def _add_worker(self) -> None:
        """With the lock held (so stop() joins every thread started)."""
        worker = threading.Thread(
            target=self._work, name=f"{self.name}-{len(self._workers)}", daemon=True
        )
        self._workers.append(worker)
        self._alive += 1
        worker.start()

    def _work(self) -> None:
        try:
            while (due := self._claim()) is not None:
                delay = due - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
                with self._cond:
                    self._pending -= 1
                    if self._pending == 0 and not self._stop.is_set():
                        self._hand_over()
                self.send(due)
        finally:
            with self._cond:
                self._alive -= 1

    def _claim(self) -> float | None:
        """The due time of the next request, claimed; None when the loop is over."""
        with self._cond:
            if self._pending >= KEEP_PENDING and not self._wanted:
                self._parked += 1
                while not (self._wanted or self._stop.is_set() or self._exhausted):
                    self._cond.wait()
                self._parked -= 1
            if self._stop.is_set() or self._exhausted:
                return None
            self._wanted = max(self._wanted - 1, 0)
            offset = (self._next // self.burst) * self.interval_s
            if offset >= self.max_duration_s:
                self._exhausted = True
                self._cond.notify_all()
                return None
            self._next += 1
            self._pending += 1
            return self.t0 + offset

    def _hand_over(self) -> None:
        """No one is asleep on the next request: wake a parked worker for it, or add one."""
        if self._parked > self._wanted:
            self._wanted += 1
            self._cond.notify()
        elif self._alive < self.max_workers:
            self._add_worker()
