"""Hot swaps through the version directory, as soak drives TF Serving."""

from __future__ import annotations

import shutil
import threading
import time

import numpy as np
import pytest

from soak_model_server.warmup import WarmupRequest, write_warmup_requests

ROW = {"instances": [{"ids": 1, "feats": [1.0, 2.0, 3.0, 4.0]}]}  # score = 10 * scale
NO_RETRY = "--max_num_load_retries=0"


def _score(server) -> float:
    reply = server.predict(ROW)
    assert reply.status_code == 200, reply.text
    return reply.json()["predictions"][0]


def test_new_version_replaces_the_old_without_an_outage(tmp_path, stage, server_factory):
    base_path = tmp_path / "base"
    base_path.mkdir()
    stage(base_path, 1, scale=1.0)
    server = server_factory(base_path)
    assert _score(server) == 10.0

    failures: list[str] = []
    stop = threading.Event()

    def keep_predicting() -> None:
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            reply = server.predict(ROW)
            if reply.status_code != 200:
                failures.append(reply.text)

    prober = threading.Thread(target=keep_predicting)
    prober.start()
    try:
        stage(base_path, 2, scale=2.0)
        status = server.wait_states({"2": "AVAILABLE", "1": "END"})
    finally:
        stop.set()
        prober.join()

    assert failures == []
    assert status["1"]["status"] == {"error_code": "OK", "error_message": ""}
    assert _score(server) == 20.0
    log = server.log()
    loaded = log.index("Successfully loaded servable version {name: m version: 2}")
    unloading = log.index("Unloading servable version {name: m version: 1}")
    assert loaded < unloading < log.index("Done unloading servable version {name: m version: 1}")
    assert log.index("Approving load for servable version {name: m version: 2}") < loaded


def test_staging_dirs_with_non_numeric_names_are_ignored(tmp_path, stage, server_factory):
    base_path = tmp_path / "base"
    base_path.mkdir()
    stage(base_path, 1)
    shutil.copytree(base_path / "1", base_path / ".tmp-9")
    shutil.copytree(base_path / "1", base_path / "v10")
    server = server_factory(base_path)
    time.sleep(2.5)  # a couple of polls
    assert set(server.status()) == {"1"}


def _garbage_graph(version_dir):
    (version_dir / "saved_model.pb").write_bytes(np.random.default_rng(0).bytes(2000))


def _missing_variable_data(version_dir):
    for data in (version_dir / "variables").glob("variables.data-*"):
        data.unlink()


def _stage_modified_copy(base_path, modify) -> None:
    """Version 2 = version 1 changed by `modify`, staged atomically as soak does."""
    staging = base_path / ".staging-2"
    shutil.copytree(base_path / "1", staging)
    modify(staging)
    staging.rename(base_path / "2")


@pytest.mark.parametrize(
    "corrupt, error_code",
    [(_garbage_graph, "DATA_LOSS"), (_missing_variable_data, "NOT_FOUND")],
)
def test_corrupt_version_ends_in_error_and_the_old_keeps_serving(
    tmp_path, stage, server_factory, corrupt, error_code
):
    base_path = tmp_path / "base"
    base_path.mkdir()
    stage(base_path, 1, scale=1.0)
    server = server_factory(base_path, NO_RETRY)

    _stage_modified_copy(base_path, corrupt)

    status = server.wait_states({"2": "END", "1": "AVAILABLE"})
    assert status["2"]["status"]["error_code"] == error_code
    assert status["2"]["status"]["error_message"]
    assert _score(server) == 10.0

    time.sleep(2.5)  # more polls still aspire version 2: it must not be loaded again
    assert server.log().count("Loading servable version {name: m version: 2}") == 1
    assert server.status()["1"]["state"] == "AVAILABLE"

    stage(base_path, 3, scale=3.0)  # a good version after the bad one is served
    server.wait_states({"3": "AVAILABLE", "1": "END"})
    assert _score(server) == 30.0


def test_failed_load_is_retried_as_the_flags_say(tmp_path, stage, server_factory):
    base_path = tmp_path / "base"
    base_path.mkdir()
    stage(base_path, 1)
    server = server_factory(
        base_path, "--max_num_load_retries=2", "--load_retry_interval_micros=100000"
    )
    _stage_modified_copy(base_path, _garbage_graph)

    server.wait_states({"2": "END", "1": "AVAILABLE"})
    log = server.log()
    assert "Retrying of Loading servable: {name: m version: 2} retry: 1" in log
    assert "Retrying of Loading servable: {name: m version: 2} retry: 2" in log
    assert "retry: 3" not in log
    assert log.count("Loading servable: {name: m version: 2} failed: DATA_LOSS") == 3


def test_a_failing_warmup_record_fails_the_load(tmp_path, stage, server_factory):
    """Warmup really runs through the new session: a bad record makes the load fail."""
    base_path = tmp_path / "base"
    base_path.mkdir()
    stage(base_path, 1, scale=1.0)
    server = server_factory(base_path, NO_RETRY)

    bad = WarmupRequest("serving_default", {"ids": np.array([1], np.int64)})  # no feats
    _stage_modified_copy(base_path, lambda staging: write_warmup_requests(staging, "m", [bad]))

    status = server.wait_states({"2": "END", "1": "AVAILABLE"})
    assert status["2"]["status"]["error_code"] == "INVALID_ARGUMENT"
    assert "Missing but required: {feats}" in status["2"]["status"]["error_message"]
    assert _score(server) == 10.0
