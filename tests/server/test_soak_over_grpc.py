"""soak's prober and status poller over gRPC (--protocol grpc) against the stand-in."""

from __future__ import annotations

import csv
import socket
from functools import partial

import numpy as np
import pytest

from soak.samplers.clock import SwapClock
from soak.samplers.grpc_client import GrpcCallError
from soak.samplers.latency import GrpcPredict, grpc_status
from soak.samplers.payload import build_predict_payload, fetch_metadata, grpc_inputs
from soak.samplers.status import GrpcStatus, StatusPoller
from soak.store.csv_log import CsvLog
from soak.store.records import Event

MODEL = "m"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_prober_over_grpc_gets_200s(probe, hp2_server):
    call = GrpcPredict(hp2_server.grpc_port, MODEL, {"x": np.array([[1.0]], np.float32)})
    prober, rows = probe(call)
    assert prober.protocol == "grpc" and prober.url.startswith("grpc://127.0.0.1:")
    assert len(rows) == prober.sent >= 15
    assert {r["status"] for r in rows} == {"200"} and prober.errors == 0


def test_grpc_errors_are_recorded_as_tf_servings_http_statuses(probe, hp2_server):
    port = hp2_server.grpc_port
    missing_model = GrpcPredict(port, "nope", {"x": np.array([[1.0]], np.float32)})
    assert missing_model()[0] == 404
    wrong_input = GrpcPredict(port, MODEL, {"not_x": np.array([[1.0]], np.float32)})
    status, error = wrong_input()
    assert status == 400 and error is not None and error.startswith("gRPC INVALID_ARGUMENT")
    nobody = GrpcPredict(closed_port(), MODEL, {"x": [[1.0]]}, timeout_s=2)
    assert nobody()[0] == 0  # no server answered, as REST's connection errors
    prober, rows = probe(missing_model, rps=20, duration_s=0.2)
    assert rows and {r["status"] for r in rows} == {"404"}
    assert prober.errors == len(rows) and "NOT_FOUND" in (prober.last_error or "")


@pytest.mark.parametrize(
    ("code", "details", "status"),
    [
        ("UNAVAILABLE", "failed to connect to all addresses; last error: Connection refused", 0),
        ("UNAVAILABLE", "Socket closed", 0),
        ("UNAVAILABLE", "Servable is unavailable", 503),
        ("DEADLINE_EXCEEDED", "Deadline Exceeded", 0),
        ("FAILED_PRECONDITION", "x", 400),
        ("RESOURCE_EXHAUSTED", "x", 429),
        ("INTERNAL", "x", 500),
        ("UNIMPLEMENTED", "x", 501),
    ],
)
def test_grpc_status_mapping(code, details, status):
    assert grpc_status(GrpcCallError(code, details)) == status


def test_the_metadata_payload_goes_over_grpc_as_tensors(stage, server_factory, tmp_path):
    """The generated body (ids int64, feats float [-1, 4]) predicts over gRPC as over REST."""
    base_path = tmp_path / "base"
    base_path.mkdir()
    stage(base_path, 1, scale=1.0)
    server = server_factory(base_path)
    metadata = fetch_metadata(f"http://127.0.0.1:{server.rest_port}", MODEL)
    body = build_predict_payload(metadata, batch=4)
    signature, inputs = grpc_inputs(body, metadata)
    assert inputs["ids"].dtype == np.int64 and inputs["feats"].shape == (4, 4)
    call = GrpcPredict(server.grpc_port, MODEL, inputs, signature)
    try:
        assert call() == (200, None)
        assert server.predict(body).status_code == 200  # and the same body over REST
    finally:
        call.close()


def test_status_poller_over_grpc_sees_a_hot_swap(stage, server_factory, tmp_path):
    base_path = tmp_path / "base"
    base_path.mkdir()
    stage(base_path, 1, scale=1.0)
    server = server_factory(base_path)
    path = tmp_path / "events.csv"
    events = CsvLog(path, Event)
    poller = StatusPoller(
        "http://127.0.0.1:1",  # unused: the status comes over gRPC
        MODEL,
        events,
        SwapClock(),
        interval_s=0.05,
        fetch=partial(GrpcStatus, server.grpc_port, MODEL),
    )
    poller.start()
    try:
        assert poller.wait_for(lambda v: v.get(1) and v[1].state == "AVAILABLE", timeout_s=30)
        stage(base_path, 2, scale=2.0)
        swapped = poller.wait_for(
            lambda v: 2 in v and v[2].state == "AVAILABLE" and v[1].state == "END",
            timeout_s=60,
        )
        assert swapped, poller.last_error
    finally:
        poller.stop()
        events.close()
    with path.open() as f:
        seen = [(r["event"], r["version"]) for r in csv.DictReader(f)]
    # 2 AVAILABLE and 1 END may show in the same poll (logged by version then)
    assert seen[0] == ("available", "1"), seen
    assert {("available", "2"), ("end", "1")} <= set(seen[1:]), seen
    assert not any(event == "load_failed" for event, _ in seen)
    assert poller.last_error is None
