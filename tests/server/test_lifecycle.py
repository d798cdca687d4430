"""Startup, shutdown and an empty base path, as tensorflow_model_server behaves."""

from __future__ import annotations

import shutil
import signal

import pytest
import requests

ROW = {"instances": [{"ids": 1, "feats": [1.0, 2.0, 3.0, 4.0]}]}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_server_cleanly(tmp_path, stage, server_factory, signum):
    base_path = tmp_path / "base"
    base_path.mkdir()
    stage(base_path, 1)
    server = server_factory(base_path)
    server.process.send_signal(signum)
    assert server.process.wait(20) == 0
    assert "Server stopped" in server.log()


def test_rest_opens_only_once_the_first_version_is_loaded(tmp_path, stage, server_factory):
    base_path = tmp_path / "base"
    base_path.mkdir()
    server = server_factory(base_path, wait=False)
    server.wait_for(
        lambda: "No versions of servable m found under base path" in server.log(),
        what="the no-versions warning",
    )
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url, timeout=2)

    stage(base_path, 1)
    server.wait_for(lambda: requests.get(server.url, timeout=2).ok, what="the REST API")
    assert server.predict(ROW).json() == {"predictions": [10.0]}
    log = server.log()
    assert log.index("Successfully loaded servable version") < log.index(
        "Exporting HTTP/REST API at:localhost:"
    )


def test_a_first_version_that_fails_to_load_stops_the_server(tmp_path, stage, server_factory):
    base_path = tmp_path / "base"
    base_path.mkdir()
    (stage(base_path, 1) / "saved_model.pb").write_bytes(b"not a graph")
    server = server_factory(base_path, "--max_num_load_retries=0", wait=False)
    assert server.process.wait(60) == 1
    failure = [line for line in server.log().splitlines() if "Failed to start server" in line]
    assert len(failure) == 1
    assert "{name: m version: 1} due to error: DATA_LOSS" in failure[0]


def test_removing_every_version_unloads_the_model(tmp_path, stage, server_factory):
    base_path = tmp_path / "base"
    base_path.mkdir()
    stage(base_path, 1)
    server = server_factory(base_path)
    shutil.rmtree(base_path / "1")
    server.wait_states({"1": "END"})
    reply = server.predict(ROW)
    assert reply.status_code == 404
    assert reply.json() == {"error": "Servable not found for request: Latest(m)"}


def test_warmup_can_be_disabled(tmp_path, stage, server_factory):
    from soak_model_server.warmup import WarmupRequest, write_warmup_requests

    base_path = tmp_path / "base"
    base_path.mkdir()
    version_dir = stage(base_path, 1)
    # A record without inputs: replaying it would fail the load.
    write_warmup_requests(version_dir, "m", [WarmupRequest("serving_default", {})])
    server = server_factory(base_path, "--enable_model_warmup=false", "--max_num_load_retries=0")
    assert server.status()["1"]["state"] == "AVAILABLE"
    assert "warmup data" not in server.log()
