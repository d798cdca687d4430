"""Open-loop sending: request i is due at a fixed time, whatever happened to the others.

Requests go in bursts of `burst`: request i is due at t0 + (i // burst) * burst / rps.
The threads are leader/followers: one worker (the leader) sleeps until the next
request is due, hands the lead to an idle worker (or starts one, up to
`max_workers`), then sends that request itself. So a request leaves on the thread
that woke for it (no handoff between waking and sending: less lag than a dispatcher
and a pool), a slow answer holds only its own worker, and only as many threads (each
with its own connection) exist as requests were ever in flight at once. When every
worker is busy there is no leader; the first one free takes the lead and sends what
is overdue at once: late, but counted from its due time by the caller.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


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
        self._next = 0  # the next request to send
        self._leading = False
        self._idle = 0  # workers waiting for the lead
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        self._stop.clear()
        self._next, self._leading, self._idle, self._workers = 0, False, 0, []
        self.t0 = time.monotonic()
        with self._cond:
            self._add_worker()

    def stop(self) -> None:
        """Stop the schedule; wait for the sends under way (overdue ones are not sent)."""
        self._end()
        with self._cond:
            workers = list(self._workers)
        for worker in workers:
            worker.join()

    def _end(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def _add_worker(self) -> None:
        """With the lock held (so stop() joins every thread started)."""
        worker = threading.Thread(
            target=self._work, name=f"{self.name}-{len(self._workers)}", daemon=True
        )
        self._workers.append(worker)
        worker.start()

    def _work(self) -> None:
        while True:
            with self._cond:
                self._idle += 1
                while self._leading and not self._stop.is_set():
                    self._cond.wait()
                self._idle -= 1
                if self._stop.is_set():
                    return
                self._leading = True
                index = self._next
            offset = (index // self.burst) * self.interval_s
            if offset >= self.max_duration_s:
                self._end()
                return
            due = self.t0 + offset
            delay = due - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            with self._cond:
                self._next += 1
                self._leading = False
                if self._idle:
                    self._cond.notify()
                elif len(self._workers) < self.max_workers and not self._stop.is_set():
                    self._add_worker()
            self.send(due)
