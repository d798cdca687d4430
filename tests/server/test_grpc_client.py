"""soak's own gRPC client (soak/samplers/grpc_client.py) against the stand-in."""

from __future__ import annotations

import socket
import subprocess
import sys

import numpy as np
import pytest

from soak.samplers.grpc_client import GrpcCallError, GrpcClient, VersionState

MODEL = "m"


@pytest.fixture(scope="module")
def client(hp2_server):
    with GrpcClient(hp2_server.grpc_port) as opened:
        yield opened


def test_predict_from_lists_and_arrays(client):
    assert client.predict(MODEL, {"x": [[1.0], [2.0]]})["y"].tolist() == [[2.5], [3.0]]
    outputs = client.predict(MODEL, {"x": np.array([5.0], np.float32)}, version=123)
    assert outputs["y"].dtype == np.float32 and outputs["y"].tolist() == [4.5]


def test_predict_with_a_signature(client):
    # Feeds the classify signature's serialized tf.Example input directly.
    outputs = client.predict(MODEL, {"inputs": np.array([], dtype=object)}, "classify_x_to_y")
    assert outputs["scores"].shape == (0, 1)


def test_model_status(client):
    assert client.model_status(MODEL) == [(123, "AVAILABLE")]
    assert client.model_version_status(MODEL, 123) == [VersionState(123, "AVAILABLE", "OK", "")]


def test_errors_carry_the_grpc_code(client):
    with pytest.raises(GrpcCallError) as caught:
        client.predict("nope", {"x": [[1.0]]})
    assert caught.value.code == "NOT_FOUND"
    assert caught.value.details == "Servable not found for request: Latest(nope)"
    with pytest.raises(GrpcCallError) as caught:
        client.model_status(MODEL, version=9)
    assert caught.value.code == "NOT_FOUND"


def test_a_closed_port_is_unavailable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with GrpcClient(port, timeout_s=2) as client, pytest.raises(GrpcCallError) as caught:
        client.model_status(MODEL)
    assert caught.value.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED")


def test_soak_imports_without_grpc():
    """grpc is imported only when a client is made: soak's samplers import without it."""
    code = (
        "import sys; sys.modules['grpc'] = None\n"
        "import soak.samplers.grpc_client as c\n"
        "try:\n    c.GrpcClient(1)\nexcept ImportError:\n    print('lazy')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "lazy", result.stderr
