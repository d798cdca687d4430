"""Model status, polled from the REST API about 10 times a second, as events.

Every state change of a version that the poller sees becomes a row of
events.csv (`loading`, `available`, `unloading`, `end`, or `load_failed` when a
version ends with an error). A change that happens between two polls and is
undone before the next one (a very fast LOADING) is not seen, so not logged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import requests

from soak.samplers.background import BackgroundLoop
from soak.samplers.clock import SwapClock
from soak.samplers.schedule import Ticker
from soak.store.csv_log import CsvLog
from soak.store.records import Event, EventKind

# Loopback only: connecting is instant unless the server is not listening yet.
CONNECT_TIMEOUT_S = 0.5
READ_TIMEOUT_S = 2.0
# How often a waiter re-checks its abort condition even when no poll completes.
ABORT_CHECK_S = 0.5

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


class StatusPoller(BackgroundLoop):
    """A daemon thread that polls GET {rest_url}/v1/models/{model_name}.

    404 (nothing loaded yet) reads as no versions; while the server is
    unreachable (starting, or dead) the last known versions stay and the
    failure is kept in `last_error`.
    """

    thread_name = "soak-status"

    def __init__(
        self,
        rest_url: str,
        model_name: str,
        events: CsvLog,
        clock: SwapClock,
        interval_s: float = 0.1,
    ):
        super().__init__()
        self.url = f"{rest_url.rstrip('/')}/v1/models/{model_name}"
        self.events = events
        self.clock = clock
        self.interval_s = interval_s
        self.last_error: str | None = None
        self._versions: dict[int, VersionStatus] = {}
        self._states: dict[int, str] = {}  # last state seen per version, never forgotten
        self._polls = 0
        self._cond = threading.Condition()

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
        deadline = time.monotonic() + timeout_s
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

    def _run(self) -> None:
        ticker = Ticker(self.interval_s, self._stop)
        with requests.Session() as session:
            session.trust_env = False  # never through a proxy: the server is on loopback
            while True:
                self._poll(session)
                if not ticker.wait():
                    return

    def _poll(self, session: requests.Session) -> None:
        versions = None
        try:
            response = session.get(self.url, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
            if response.status_code == 404:
                versions = {}
            elif response.status_code == 200:
                versions = parse_model_status(response.json())
            else:
                self.last_error = f"HTTP {response.status_code}: {response.text[:200]}"
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
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
