"""One thread for the work soak does on a schedule: the prober's sends, the memory readings.

On a small VM soak's own CPU goes to the Python a thread runs right after it wakes, cold,
far more than to the work itself (BENCHMARKS.md "soak's own cost"): a wake-up costs
100-500 us whatever follows. So the duties share one thread and one grid: a request and a
memory reading due at the same moment are one wake-up (`grid` starts each schedule on the
loop's origin + k * interval, so 20 requests and 10 readings a second coincide), and the
prober reads its answers at its next wake-up rather than being woken by them
(`rest_sender.py`: the kernel's receive time says when they came).

A duty is run when it is due by time (`next_due`) or when one of the sockets it watches
is readable; `run` returns False when the duty is over, and the loop then drops it and
sets its `finished` event. The thread runs while the loop has duties: it starts with the
first added and ends when the last is dropped. Duties' state is the loop thread's; other
threads ask for something (a stop) by setting a flag and calling `wake`.
"""

from __future__ import annotations

import contextlib
import math
import select
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterable
from typing import Protocol


class Duty(Protocol):
    finished: threading.Event  # set by the loop when it drops the duty

    def next_due(self) -> float:
        """Monotonic time the duty next needs the loop (math.inf: only for its sockets)."""
        ...

    def watched(self) -> Iterable[socket.socket]:
        """Sockets whose data should wake the loop now (most of the time: none)."""
        ...

    def run(self, now: float) -> bool:
        """Do what is due at `now` (monotonic); False when the duty is over."""
        ...


class MonitorLoop:
    """Runs duties on one daemon thread, named `name`, while it has any."""

    def __init__(self, name: str = "soak-monitor"):
        self.name = name
        self.origin: float | None = None  # monotonic time of the first duty: the grid's start
        self._duties: tuple[Duty, ...] = ()  # replaced, never changed: read without the lock
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None  # the thread's, while it runs

    def grid(self, interval_s: float) -> float:
        """The first point of origin + k * interval_s from now on (the origin set now when
        the loop has none): schedules started on the grid coincide where their rates allow."""
        now = time.monotonic()
        with self._lock:
            if self.origin is None:
                self.origin = now
            origin = self.origin
        return origin + math.ceil((now - origin) / interval_s - 1e-9) * interval_s

    def add(self, duty: Duty) -> None:
        with self._lock:
            self._duties += (duty,)
            if self._thread is None:
                self._wake = socket.socketpair()
                for end in self._wake:
                    end.setblocking(False)
                self._thread = threading.Thread(
                    target=self._run, args=(self._wake[0],), name=self.name, daemon=True
                )
                self._thread.start()
        self.wake()

    def wake(self) -> None:
        """Make the loop look at its duties now (from any thread)."""
        with self._lock:
            if self._wake is None:
                return
            with contextlib.suppress(BlockingIOError):  # woken already, not read yet
                self._wake[1].send(b"\0")

    def wait_finished(self, duty: Duty) -> None:
        """Wait until the loop dropped `duty` (which was asked to end)."""
        while not duty.finished.wait(0.5):
            with self._lock:
                if duty not in self._duties:  # never added, or the thread died
                    return

    def _run(self, wake: socket.socket) -> None:
        while True:
            duties = self._duties
            if not duties:
                with self._lock:
                    if not self._duties:
                        for end in self._wake or ():
                            end.close()
                        self._thread, self._wake = None, None
                        return
                continue
            due = math.inf
            watched = [wake]
            for duty in duties:
                due = min(due, duty.next_due())
                watched.extend(duty.watched())
            timeout = None if due == math.inf else max(due - time.monotonic(), 0.0)
            readable = select.select(watched, [], [], timeout)[0]
            ready = set(readable)
            if wake in ready:
                _drain(wake)
            now = time.monotonic()
            for duty in duties:
                if duty.next_due() <= now or (ready and not ready.isdisjoint(duty.watched())):
                    self._run_duty(duty, now)

    def _run_duty(self, duty: Duty, now: float) -> None:
        try:
            going_on = duty.run(now)
        except Exception:  # a duty's bug ends that duty, not the others on the thread
            print(f"soak: {self.name}: a duty failed:", file=sys.stderr)
            traceback.print_exc()
            going_on = False
        if not going_on:
            with self._lock:
                self._duties = tuple(d for d in self._duties if d is not duty)
            duty.finished.set()


def _drain(wake: socket.socket) -> None:
    with contextlib.suppress(BlockingIOError):
        while wake.recv(4096):
            pass
