"""Model status, polled fast while a change is awaited and slowly otherwise, as events.

Versions change only around a swap, and the swap driver then waits for them
(`StatusPoller.wait_for`): while anyone waits, the poller polls every
`interval_s` (0.1 s by default) and at once when a wait begins; otherwise once a
second, which still notices an unexpected change (a version failing) within a second
at a tenth of the cost.

The status comes from TF Serving's REST API (`RestStatus`: GET /v1/models/NAME) or its
gRPC API (`GrpcStatus`: ModelService/GetModelStatus); both give the same versions, so
the same events.

Every state change of a version that the poller sees becomes a row of
events.csv (`loading`, `available`, `unloading`, `end`, or `load_failed` when a
version ends with an error). A change that happens between two polls and is
undone before the next one (a very fast LOADING) is not seen, so not logged.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from soak.samplers import http1
from soak.samplers.background import BackgroundLoop
from soak.samplers.clock import SwapClock
from soak.samplers.grpc_client import GrpcCallError, GrpcClient
from soak.store.csv_log import CsvLog
from soak.store.records import Event, EventKind

# Loopback only: connecting is instant unless the server is not listening yet; a status
# answer takes milliseconds unless the server is stuck.
TIMEOUT_S = 2.0
# How often a waiter re-checks its abort condition even when no poll completes.
ABORT_CHECK_S = 0.5
# The poll interval while nobody waits for a change.
SLOW_INTERVAL_S = 1.0

_STATE_EVENTS = {
    "LOADING": EventKind.LOADING,
    "AVAILABLE": EventKind.AVAILABLE,
    "UNLOADING": EventKind.UNLOADING,
    "END": EventKind.END,
}


@dataclass(frozen=True)
class VersionStatus:
    """One entry of TF Serving's model_version_status."""

    version: int
    state: str  # START, LOADING, AVAILABLE, UNLOADING, END
    error_code: str  # "OK" unless the version failed
    error_message: str

    @property
    def failed(self) -> bool:
        return self.state == "END" and self.error_code != "OK"


class WaitAborted(Exception):
    """`StatusPoller.wait_for` gave up because its abort check returned a reason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def parse_model_status(body: dict) -> dict[int, VersionStatus]:
    """Versions of a GET /v1/models/NAME response (version numbers are strings there)."""
    versions: dict[int, VersionStatus] = {}
    for entry in body.get("model_version_status", []):
        status = entry.get("status") or {}
        version = int(entry["version"])
        versions[version] = VersionStatus(
            version=version,
            state=entry["state"],
            error_code=status.get("error_code", "OK"),
            error_message=status.get("error_message", ""),
        )
    return versions


class StatusUnknown(Exception):
    """A poll that got no status (server unreachable, or an unexpected answer)."""


class StatusFetch(Protocol):
    """One way to read a model's versions; used from the poller's thread only."""

    def __call__(self) -> dict[int, VersionStatus]:
        """The versions now ({} when none is loaded yet); StatusUnknown if it cannot tell."""
        ...

    def close(self) -> None: ...


class RestStatus:
    """GET {rest_url}/v1/models/{model_name}; 404 (nothing loaded yet) is no versions.

    One keep-alive connection and the request's bytes built once (`http1`): a poll
    costs a fraction of what an HTTP library's would (benchmarks/monitor_overhead.py).
    """

    def __init__(self, rest_url: str, model_name: str):
        self.url = f"{rest_url.rstrip('/')}/v1/models/{model_name}"
        address, self._request = http1.request("GET", self.url)
        self._connection = http1.Connection(*address, timeout_s=TIMEOUT_S)

    def __call__(self) -> dict[int, VersionStatus]:
        try:
            status, body = self._connection.exchange(self._request)
            if status == 404:
                return {}
            if status != 200:
                raise StatusUnknown(f"HTTP {status}: {body[:200].decode(errors='replace')}")
            return parse_model_status(json.loads(body))
        except (OSError, http1.HttpError, ValueError, KeyError, TypeError) as exc:
            raise StatusUnknown(f"{type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        self._connection.close()


class GrpcStatus:
    """ModelService/GetModelStatus on the gRPC port; NOT_FOUND (nothing loaded yet) is no
    versions."""

    def __init__(self, port: int, model_name: str, host: str = "127.0.0.1"):
        self.client = GrpcClient(port, host=host, timeout_s=TIMEOUT_S)
        self.url = f"grpc://{self.client.target}/{model_name}"
        self.model_name = model_name

    def __call__(self) -> dict[int, VersionStatus]:
        try:
            entries = self.client.model_version_status(self.model_name)
        except GrpcCallError as error:
            if error.code == "NOT_FOUND":
                return {}
            raise StatusUnknown(f"gRPC {error.code}: {error.details[:200]}") from None
        return {
            e.version: VersionStatus(e.version, e.state, e.error_code, e.error_message)
            for e in entries
        }

    def close(self) -> None:
        self.client.close()


class StatusPoller(BackgroundLoop):
    """A daemon thread that polls GET {rest_url}/v1/models/{model_name}, or `fetch`:
    every `interval_s` while a `wait_for` is in progress, every SLOW_INTERVAL_S otherwise.

    No model yet (REST 404, gRPC NOT_FOUND) reads as no versions; while the server is
    unreachable (starting, or dead) the last known versions stay and the failure is
    kept in `last_error`.
    """

    thread_name = "soak-status"

    def __init__(
        self,
        rest_url: str,
        model_name: str,
        events: CsvLog,
        clock: SwapClock,
        interval_s: float = 0.1,
        fetch: Callable[[], StatusFetch] | None = None,
    ):
        super().__init__()
        self.url = f"{rest_url.rstrip('/')}/v1/models/{model_name}"
        # Made in the poller's thread, which alone uses it.
        self._new_fetch = fetch or partial(RestStatus, rest_url, model_name)
        self.events = events
        self.clock = clock
        self.interval_s = interval_s
        self.last_error: str | None = None
        self._versions: dict[int, VersionStatus] = {}
        self._states: dict[int, str] = {}  # last state seen per version, never forgotten
        self._polls = 0
        self._waiters = 0
        self._cond = threading.Condition()
        self._hurry = threading.Event()  # a wait began (or stop): poll now

    def versions(self) -> dict[int, VersionStatus]:
        """The latest known status of each version."""
        with self._cond:
            return dict(self._versions)

    def wait_for(
        self,
        predicate: Callable[[dict[int, VersionStatus]], bool],
        timeout_s: float,
        abort: Callable[[], str | None] | None = None,
    ) -> bool:
        """Wait until `predicate(versions)` holds: True; False after `timeout_s`.

        `abort` (e.g. the target's exit_reason) is checked after every poll;
        when it returns a reason the wait raises WaitAborted(reason), so a dead
        server is not mistaken for a slow one.
        """
        with self._cond:
            self._waiters += 1
        self._hurry.set()
        try:
            return self._wait_for(predicate, time.monotonic() + timeout_s, abort)
        finally:
            with self._cond:
                self._waiters -= 1

    def _wait_for(
        self,
        predicate: Callable[[dict[int, VersionStatus]], bool],
        deadline: float,
        abort: Callable[[], str | None] | None,
    ) -> bool:
        while True:
            with self._cond:
                snapshot = dict(self._versions)
                seen = self._polls
            if predicate(snapshot):
                return True
            if abort is not None and (reason := abort()) is not None:
                raise WaitAborted(reason)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._cond:
                self._cond.wait_for(
                    partial(self._polled_since, seen), min(remaining, ABORT_CHECK_S)
                )

    def _polled_since(self, polls: int) -> bool:
        return self._polls != polls

    def stop(self) -> None:
        self._stop.set()
        self._hurry.set()
        super().stop()

    def _run(self) -> None:
        fetch = self._new_fetch()
        try:
            due = time.monotonic()
            while not self._stop.is_set():
                self._poll(fetch)
                self._hurry.clear()
                with self._cond:
                    fast = self._waiters > 0
                due = max(due + (self.interval_s if fast else SLOW_INTERVAL_S), time.monotonic())
                if self._hurry.wait(due - time.monotonic()):
                    due = time.monotonic()  # a wait began: poll at once
        finally:
            fetch.close()

    def _poll(self, fetch: StatusFetch) -> None:
        versions = None
        try:
            versions = fetch()
        except StatusUnknown as exc:
            self.last_error = str(exc)
        t = time.time()
        with self._cond:
            if versions is not None:
                self._versions = versions
                self.last_error = None
                self._log_transitions(t, versions)
            self._polls += 1
            self._cond.notify_all()

    def _log_transitions(self, t: float, versions: dict[int, VersionStatus]) -> None:
        swap = self.clock.swap
        for version in sorted(versions):
            status = versions[version]
            if self._states.get(version) == status.state:
                continue
            self._states[version] = status.state
            if status.failed:
                event = Event(t, swap, EventKind.LOAD_FAILED, version, status.error_message)
            elif status.state in _STATE_EVENTS:
                event = Event(t, swap, _STATE_EVENTS[status.state], version)
            else:
                continue  # START: nothing has happened yet
            self.events.append(event)
