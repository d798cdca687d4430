"""StatusPoller against a real HTTP server that plays a scripted sequence of model states."""

from __future__ import annotations

import csv
import json
import time

import pytest

from soak.samplers.clock import SwapClock
from soak.samplers.status import StatusPoller, VersionStatus, WaitAborted
from soak.store.csv_log import CsvLog
from soak.store.records import Event


def model_status(*versions: tuple[int, str] | tuple[int, str, str, str]) -> dict:
    """A TF Serving GetModelStatus body: (version, state[, error_code, error_message])."""
    entries = []
    for version, state, *error in versions:
        code, message = error or ("OK", "")
        entries.append(
            {
                "version": str(version),
                "state": state,
                "status": {"error_code": code, "error_message": message},
            }
        )
    return {"model_version_status": entries}


class ScriptedModelServer:
    """GET /v1/models/ranker answers the current `status` (None: 404, nothing loaded yet)."""

    def __init__(self):
        self.status: dict | None = None

    def __call__(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        if method != "GET" or path != "/v1/models/ranker" or self.status is None:
            return 404, b'{"error": "Could not find any versions of model ranker"}'
        return 200, json.dumps(self.status).encode()


def states(versions: dict[int, VersionStatus]) -> dict[int, str]:
    return {v: s.state for v, s in versions.items()}


def test_transitions_become_events_in_order(tmp_path, serve, closed_port):
    path = tmp_path / "events.csv"
    events = CsvLog(path, Event)
    clock = SwapClock()
    poller = StatusPoller(f"http://127.0.0.1:{closed_port}", "ranker", events, clock, 0.02)
    poller.start()
    try:
        # Nothing listens yet (a server still starting): no versions, the failure is kept.
        assert not poller.wait_for(lambda v: bool(v), timeout_s=0.2)
        assert "ConnectionRefusedError" in poller.last_error

        script_server = ScriptedModelServer()
        serve(script_server, port=closed_port)
        assert poller.wait_for(lambda v: poller.last_error is None, timeout_s=5)
        assert poller.versions() == {}

        script = [
            (0, model_status((1, "START"))),
            (0, model_status((1, "LOADING"))),
            (0, model_status((1, "AVAILABLE"))),
            (1, model_status((1, "AVAILABLE"), (2, "LOADING"))),
            (1, model_status((1, "AVAILABLE"), (2, "AVAILABLE"))),
            (1, model_status((1, "UNLOADING"), (2, "AVAILABLE"))),
            (1, model_status((1, "END"), (2, "AVAILABLE"))),
            (
                2,
                model_status(
                    (1, "END"),
                    (2, "AVAILABLE"),
                    (3, "END", "INVALID_ARGUMENT", "Could not load: bad graph"),
                ),
            ),
        ]
        for swap, status in script:
            clock.swap = swap
            script_server.status = status
            wanted = {int(e["version"]): e["state"] for e in status["model_version_status"]}
            assert poller.wait_for(lambda v, wanted=wanted: states(v) == wanted, timeout_s=5)
    finally:
        poller.stop()
        events.close()

    failed = poller.versions()[3]
    assert failed.failed and failed.error_code == "INVALID_ARGUMENT"
    with path.open() as f:
        rows = [(r["swap"], r["event"], r["version"], r["detail"]) for r in csv.DictReader(f)]
    assert rows == [
        ("0", "loading", "1", ""),
        ("0", "available", "1", ""),
        ("1", "loading", "2", ""),
        ("1", "available", "2", ""),
        ("1", "unloading", "1", ""),
        ("1", "end", "1", ""),
        ("2", "load_failed", "3", "Could not load: bad graph"),
    ]


def start_poller(tmp_path, server, interval_s: float) -> tuple[StatusPoller, CsvLog]:
    """A started poller of model "ranker" on `server`, and its events log."""
    events = CsvLog(tmp_path / "events.csv", Event)
    poller = StatusPoller(
        f"http://127.0.0.1:{server.server_port}", "ranker", events, SwapClock(), interval_s
    )
    poller.start()
    return poller, events


def test_wait_for_times_out_and_aborts(tmp_path, serve):
    script_server = ScriptedModelServer()
    script_server.status = model_status((1, "AVAILABLE"))
    poller, events = start_poller(tmp_path, serve(script_server), 0.02)
    try:
        assert poller.wait_for(lambda v: states(v) == {1: "AVAILABLE"}, timeout_s=5)
        assert not poller.wait_for(lambda v: 2 in v, timeout_s=0.2)

        checks = []

        def server_died() -> str | None:
            checks.append(1)
            return "exit code 1" if len(checks) >= 3 else None

        with pytest.raises(WaitAborted) as aborted:
            poller.wait_for(lambda v: 2 in v, timeout_s=30, abort=server_died)
        assert aborted.value.reason == "exit code 1"
    finally:
        poller.stop()
        events.close()


class CountingModelServer(ScriptedModelServer):
    """Also counts the status requests."""

    def __init__(self):
        super().__init__()
        self.polls = 0

    def __call__(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        self.polls += 1
        return super().__call__(method, path, body)


def test_polls_fast_only_while_a_change_is_awaited(tmp_path, serve):
    script_server = CountingModelServer()
    script_server.status = model_status((1, "AVAILABLE"))
    poller, events = start_poller(tmp_path, serve(script_server), 0.05)
    try:
        time.sleep(2.5)  # nobody waits: about once a second
        assert 2 <= script_server.polls <= 4

        # A wait begins: a change is seen at once, not after the slow interval.
        script_server.status = model_status((1, "AVAILABLE"), (2, "LOADING"))
        started = time.monotonic()
        assert poller.wait_for(lambda v: 2 in v, timeout_s=5)
        assert time.monotonic() - started < 0.5

        # While someone waits: every 0.05 s.
        before = script_server.polls
        assert not poller.wait_for(lambda v: 3 in v, timeout_s=1.0)
        assert script_server.polls - before >= 10

        before = script_server.polls
        time.sleep(2.5)
        assert script_server.polls - before <= 4
    finally:
        poller.stop()
        events.close()
