"""The swap driver: a baseline, then N swaps, each complete when memory settled.

A swap stages version k+1; TF Serving loads it, then unloads k (availability
preserving). The swap is complete when k+1 is AVAILABLE, k is END and memory
has settled. The status poller writes the server's transitions to events.csv;
the driver writes what it did (staged) and what it saw (settled).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from soak.core import interrupts
from soak.core.errors import EnvironmentFailure
from soak.driver.settle import SettleRule
from soak.driver.staging import VersionStager
from soak.samplers.clock import SwapClock
from soak.samplers.memory import MemorySampler
from soak.samplers.server_log import ServerLogWatcher
from soak.samplers.status import StatusPoller, VersionStatus, WaitAborted
from soak.store.csv_log import CsvLog
from soak.store.records import MIB, Event, EventKind
from soak.targets.base import Target

# How often the driver looks at settling memory (judged over seconds), and at the server
# while traffic holds (a server that dies is noticed within HOLD_POLL_S): few wake-ups.
POLL_S = 0.5
HOLD_POLL_S = 1.0
WARM_TRAFFIC_S = 2.0  # requests before the baseline counts, so lazy allocations are made


class ServerDied(Exception):
    """The target stopped while the driver waited on it."""


class FirstLoadFailed(ServerDied):
    """The first version did not load: the model (or the server's build) is at fault,
    so later variants of the same model would fail the same way."""


class NoVersionLoads(ServerDied):
    """Every version staged in a row failed to load: nothing left to swap to."""


class SamplerFailed(EnvironmentFailure):
    """The memory sampler gave up while the target still ran: no data, no verdict."""


@dataclass
class SwapOutcome:
    index: int
    version: int
    loaded: bool
    settled_bytes: float  # the level memory settled at (0 if no samples)
    detail: str = ""


class SwapDriver:
    def __init__(
        self,
        target: Target,
        stager: VersionStager,
        poller: StatusPoller,
        memory: MemorySampler,
        events: CsvLog,
        clock: SwapClock,
        *,
        metric: str = "anon_bytes",
        settle_rule: SettleRule | None = None,
        settle_timeout_s: float = 30.0,
        load_timeout_s: float = 300.0,
        purge_delay_s: float = 0.0,
        server_log: ServerLogWatcher | None = None,
    ):
        self.target = target
        self.stager = stager
        self.poller = poller
        self.memory = memory
        self.events = events
        self.clock = clock
        self.metric = metric
        self.settle_rule = settle_rule or SettleRule()
        self.settle_timeout_s = settle_timeout_s
        self.load_timeout_s = load_timeout_s
        self.purge_delay_s = purge_delay_s  # the allocator's, see allocators.purge_delay_s
        self.server_log = server_log  # failed loads as soon as the server logs them
        self.serving_version = 1  # staged before the server started
        self.last_staged = 1  # version numbers only grow, even past a failed load
        self.failed_in_a_row = 0  # swaps whose version failed to load, since the last load
        # called right after each old version has unloaded (a variant with
        # release_after_unload: the probe's release), returning what it called
        self.after_unload: Callable[[], str | None] | None = None
        # the probe's decay, returning what it called: jemalloc notices freed pages and purges
        # those past its decay time only when allocator activity ticks it, which a soak's
        # traffic, spread over the server's threads, may not do for long. Called as a settle
        # wait begins (the pages the swap freed start their decay time) and once the decay
        # time has passed (they go), as ticks would.
        self.decay: Callable[[], str | None] | None = None

    def event(self, kind: str, version: int | None = None, detail: str = "") -> None:
        self.events.append(Event(time.time(), self.clock.swap, kind, version, detail))

    def wait_first_version(self) -> None:
        """Version 1 (staged before the server started) becomes AVAILABLE.

        A failed load is known from the server's log line at once (TF Serving
        retries it for minutes before the status API or the exit says so).
        """
        try:
            self._wait(
                lambda vs: _state(vs, 1) in ("AVAILABLE", "END") or bool(self._log_failure(1)),
                "version 1 to load",
            )
        except ServerDied as exc:
            logged = self._log_failure(1)
            if logged:
                raise FirstLoadFailed(f"version 1 failed to load: {logged}") from None
            raise exc from None
        status = self.poller.versions().get(1)
        if status is not None and status.state == "AVAILABLE":
            return
        message = self._log_failure(1) or (status.error_message if status else "")
        self.event(EventKind.LOAD_FAILED, 1, message)
        raise FirstLoadFailed(f"version 1 failed to load: {message}")

    def _log_failure(self, version: int) -> str | None:
        """The server's log line about a failed load of `version` (or a failed start)."""
        if self.server_log is None:
            return None
        return self.server_log.load_failure(version) or (
            self.server_log.start_failure if version == 1 else None
        )

    def baseline(self) -> float:
        """Warm traffic is on; wait for memory to settle: the baseline (swap 0), bytes."""
        time.sleep(WARM_TRAFFIC_S)
        return self.wait_settled(time.time())

    def swap(self, index: int) -> SwapOutcome:
        """Stage the next version, wait for the swap and for memory to settle."""
        old, new = self.serving_version, self.last_staged + 1
        self.last_staged = new
        self.clock.swap = index
        self.stager.stage(new)
        self.event(EventKind.STAGED, new, self.stager.source_for(new).name)
        self._wait(
            lambda vs: (
                _state(vs, new) == "END"
                or (_state(vs, new) == "AVAILABLE" and _state(vs, old) in ("END", None))
                or (_state(vs, new) != "AVAILABLE" and self._log_failure(new) is not None)
            ),
            f"version {new} to replace {old}",
        )
        status = self.poller.versions().get(new)
        if status is None or status.state != "AVAILABLE":
            # failed load: the old version keeps serving; unstaging the new one also stops
            # the server's retries (it is no longer aspired)
            message = self._log_failure(new) or (status.error_message if status else "")
            if status is None or not status.failed:
                self.event(EventKind.LOAD_FAILED, new, message)
            self.stager.remove(new)
            self.failed_in_a_row += 1
            if self.failed_in_a_row >= max(2, len(self.stager.sources)):
                raise NoVersionLoads(
                    f"{self.failed_in_a_row} versions in a row failed to load, the last: "
                    f"version {new}: {message}"
                )
            settled = self.wait_settled(time.time())
            return SwapOutcome(index, new, False, settled, message)
        self.failed_in_a_row = 0
        self.serving_version = new
        self.stager.remove(old)
        if self.after_unload is not None:
            called = self.after_unload()
            if called is None:
                self._check_alive()
                raise ServerDied(f"the probe did not answer the release after version {old}")
            self.event(EventKind.TRIMMED, old, called)
        return SwapOutcome(index, new, True, self.wait_settled(time.time()))

    def hold(self, seconds: float) -> None:
        """Steady traffic between swaps: the latency a swap is compared against (the server
        checked at every poll: ServerDied as soon as it is gone)."""
        interrupts.wait_until(self._never_but_alive, seconds, HOLD_POLL_S)

    def release(self, release: Callable[[], str | None]) -> float | None:
        """The trim experiment: `release()` (the probe's, returning what it called), then
        wait for memory to settle; returns the settled bytes (None: no release answered).

        Only after the verdict's own measurements: it changes the process.
        """
        called = release()
        if called is None:
            return None
        self.event(EventKind.RELEASE, self.serving_version, called)
        # the release returns pages at once: no purge delay to wait for
        return self.wait_settled(time.time(), EventKind.RELEASED, purge_delay_s=0.0)

    def wait_settled(
        self, since: float, event: str = EventKind.SETTLED, purge_delay_s: float | None = None
    ) -> float:
        """Wait until the metric stops falling (or the bound); returns settled bytes.

        `event` is written with the settled level (MiB); `purge_delay_s` overrides the
        allocator's.
        """
        purge_delay_s = self.purge_delay_s if purge_delay_s is None else purge_delay_s
        deadline = since + self.settle_timeout_s
        decay = self.decay if purge_delay_s > 0 else None
        if decay is not None:
            decay()
        while True:
            self._check_alive()
            now = time.time()
            if decay is not None and now >= since + purge_delay_s:
                called = decay()
                if called is not None:
                    self.event(EventKind.DECAYED, self.serving_version, called)
                # settled from here on: the level the decayed pages left
                since, purge_delay_s, decay = time.time(), 0.0, None
                continue
            samples = [
                (s.t, getattr(s, self.metric))
                for s in self.memory.since(since - self.settle_rule.level_s)
                if getattr(s, self.metric) is not None
            ]
            settled = self.settle_rule.has_settled(samples, since, now, purge_delay_s)
            if settled or now >= deadline:
                level = self.settle_rule.current_level(samples, now)
                if not settled:
                    self.event(
                        EventKind.SETTLE_TIMEOUT,
                        self.serving_version,
                        f"still falling after {self.settle_timeout_s:g} s",
                    )
                self.event(event, self.serving_version, f"{level / MIB:.1f}" if level else "")
                return level or 0.0
            time.sleep(POLL_S)

    def _wait(self, predicate: Callable[[dict[int, VersionStatus]], bool], what: str) -> None:
        try:
            ok = self.poller.wait_for(predicate, self.load_timeout_s, abort=self._stop_reason)
        except WaitAborted as exc:
            self._check_alive()
            raise ServerDied(f"server {exc.reason}") from None
        if not ok:
            seen = self.poller.versions()
            states = ", ".join(f"version {v} {seen[v].state}" for v in sorted(seen))
            last = f"; last status poll: {self.poller.last_error}" if self.poller.last_error else ""
            raise ServerDied(
                f"timed out after {self.load_timeout_s:g} s waiting for {what} (the server "
                f"reported {states or 'no version'}{last})"
            )

    def _stop_reason(self) -> str | None:
        """Why waiting on the server is pointless: it exited, or memory is not measured."""
        return self.target.exit_reason() or self.memory.failure

    def _never_but_alive(self) -> bool:
        """A wait's condition that never holds: it only raises when the server is gone."""
        self._check_alive()
        return False

    def _check_alive(self) -> None:
        reason = self.target.exit_reason()
        if reason:
            raise ServerDied(f"server {reason}")
        if self.memory.failure:
            raise SamplerFailed(f"the memory sampler gave up: {self.memory.failure}")


def _state(versions: dict[int, VersionStatus], version: int) -> str | None:
    status = versions.get(version)
    return status.state if status else None
