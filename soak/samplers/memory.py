"""Memory of the server, sampled about 10 times a second into memory.csv.

`MemorySampler` asks the target for a reading (the target reads /proc and its cgroup
with `soak.core.procfs`) and appends it to memory.csv: the memory figures and the
server's cumulative CPU seconds (`cpu_s`). Its readings are a duty of a
`monitor_loop.MonitorLoop`, in a run the one the prober sends from (a loop of its own
when none is given): at the loop's grid points start + k * interval, so at the default
rates every second request's wake-up takes a reading too; no drift, and readings missed
while the loop was busy are skipped rather than taken in a burst.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping

from soak.samplers.clock import SwapClock
from soak.samplers.monitor_loop import MonitorLoop
from soak.store.csv_log import CsvLog
from soak.store.records import Event, EventKind, MemorySample
from soak.targets.base import Target

# Consecutive failed readings of a target that still runs before the sampler gives up (~1 s).
MAX_CONSECUTIVE_FAILURES = 10


class MemorySampler:
    """Appends the target's memory to memory.csv about 10 times a second, from `loop`.

    It also keeps the last `keep_s` seconds of samples in memory, for settle
    detection (`since`, `latest`: from any thread). When the target exits it stops
    (the driver reports the exit).
    When readings keep failing while the target runs (~1 s), it gives up:
    it writes a `sampler_failed` event and keeps the reason in `failure`,
    which the swap driver turns into the variant's failure.
    """

    def __init__(
        self,
        target: Target,
        log: CsvLog,
        clock: SwapClock,
        events: CsvLog | None = None,
        interval_s: float = 0.1,
        keep_s: float = 120.0,
        loop: MonitorLoop | None = None,
    ):
        if interval_s <= 0:
            raise ValueError(f"interval must be positive, got {interval_s}")
        self.target = target
        self.log = log
        self.clock = clock
        self.events = events
        self.interval_s = interval_s
        self.keep_s = keep_s
        self.failure: str | None = None  # why it gave up while the target still ran
        self._recent: deque[MemorySample] = deque(maxlen=int(keep_s / interval_s) + 16)
        self._lock = threading.Lock()
        self.loop = loop or MonitorLoop("soak-memory")
        self.finished = threading.Event()
        self.finished.set()  # not started
        self._next = 0.0  # monotonic time of the next reading
        self._failures = 0  # consecutive failed readings
        self._stopping = False

    def start(self) -> None:
        self.finished.clear()
        self._stopping, self._failures = False, 0
        self._next = self.loop.grid(self.interval_s)
        self.loop.add(self)

    def stop(self) -> None:
        self._stopping = True
        self.loop.wake()
        self.loop.wait_finished(self)

    @property
    def running(self) -> bool:
        """Started and not finished (it may end on its own: the target gone, or giving up)."""
        return not self.finished.is_set()

    def latest(self) -> MemorySample | None:
        with self._lock:
            return self._recent[-1] if self._recent else None

    def since(self, t: float) -> list[MemorySample]:
        """Samples taken at epoch time t or later, oldest first (within the last keep_s)."""
        with self._lock:
            return [s for s in self._recent if s.t >= t]

    # The loop thread's:

    def next_due(self) -> float:
        return 0.0 if self._stopping else self._next

    def watched(self) -> tuple[()]:
        return ()

    def run(self, now: float) -> bool:
        if self._stopping:
            return False
        try:
            self._record(self.target.read_memory())
            self._failures = 0
        except Exception as exc:  # any failed reading counts
            self._failures += 1
            if self.target.exit_reason() is not None:
                return False
            if self._failures >= MAX_CONSECUTIVE_FAILURES:
                self._give_up(f"memory readings failed: {type(exc).__name__}: {exc}")
                return False
        self._next += self.interval_s
        if self._next <= now:  # readings missed while the loop was busy: skipped
            self._next += (int((now - self._next) / self.interval_s) + 1) * self.interval_s
        return True

    def _give_up(self, reason: str) -> None:
        self.failure = reason
        if self.events is not None:
            self.events.append(
                Event(time.time(), self.clock.swap, EventKind.SAMPLER_FAILED, None, reason)
            )

    def _record(self, values: Mapping[str, float]) -> None:
        sample = MemorySample(
            t=time.time(),
            rss_bytes=int(values["rss_bytes"]),
            anon_bytes=int(values["anon_bytes"]),
            cgroup_anon_bytes=_bytes(values.get("cgroup_anon_bytes")),
            cgroup_working_set_bytes=_bytes(values.get("cgroup_working_set_bytes")),
            swap=self.clock.swap,
            cpu_s=values.get("cpu_s"),
        )
        self.log.append(sample)
        with self._lock:
            self._recent.append(sample)
            horizon = sample.t - self.keep_s
            while self._recent[0].t < horizon:
                self._recent.popleft()


def _bytes(value: float | None) -> int | None:
    return None if value is None else int(value)
