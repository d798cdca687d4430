"""The stand-in server as a real subprocess on free 127.0.0.1 ports, driven over real HTTP.

Models are tiny TF1-builder SavedModels (two variables, so the restore op matters) whose
predictions depend on a per-version `scale`, so a test can tell versions apart by output.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from soak.samplers.clock import SwapClock  # noqa: E402
from soak.samplers.latency import LatencyProber  # noqa: E402
from soak.store.csv_log import CsvLog  # noqa: E402
from soak.store.records import LatencySample  # noqa: E402

MODEL = "m"
EMBEDDING_ROWS = 100
FEATURES = 4
START_TIMEOUT_S = 90
SERVER_BIN = Path(sys.executable).parent / "soak-model-server"


def build_model(version_dir: Path, scale: float) -> Path:
    """A SavedModel: `serving_default` (ids int64 [-1], feats float [-1,4] -> score [-1],
    score = scale * sum(feats)) and `embed` (ids -> embedding [-1,4] and norm [-1])."""
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        ids = v1.placeholder(tf.int64, [None], name="ids")
        feats = v1.placeholder(tf.float32, [None, FEATURES], name="feats")
        table = v1.get_variable(
            "embedding", initializer=np.full((EMBEDDING_ROWS, FEATURES), scale, np.float32)
        )
        weights = v1.get_variable("weights", initializer=np.ones((FEATURES,), np.float32))
        rows = tf.gather(table, tf.math.floormod(ids, EMBEDDING_ROWS))
        score = tf.reduce_sum(rows * feats * weights, axis=1, name="score")
        norm = tf.norm(rows, axis=1, name="norm")
        signatures = {
            "serving_default": v1.saved_model.predict_signature_def(
                {"ids": ids, "feats": feats}, {"score": score}
            ),
            "embed": v1.saved_model.predict_signature_def(
                {"ids": ids}, {"embedding": rows, "norm": norm}
            ),
        }
    return _save(graph, version_dir, signatures)


def _save(graph: tf.Graph, version_dir: Path, signatures: dict) -> Path:
    """A TF1 SavedModel of `graph` (variables initialised) with these signatures, as "serve"."""
    v1 = tf.compat.v1
    with graph.as_default(), v1.Session(graph=graph) as session:
        session.run(v1.global_variables_initializer())
        builder = v1.saved_model.Builder(str(version_dir))
        builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map=signatures)
        builder.save()
    return version_dir


def build_half_plus_two(version_dir: Path, b: float = 2.0) -> Path:
    """TF Serving's test model saved_model_half_plus_two (its TF1 builder,
    tensorflow_serving/servables/tensorflow/testdata/saved_model_half_plus_two.py), reduced to
    the signatures the REST and gRPC tests use: y = 0.5 * x + b, where x (float [None, 1]) is
    parsed from serialized tf.Examples with a float feature "x" of length 1.
      serving_default  predict   {x} -> {y}
      regress_x_to_y   regress   tf_example -> y
      classify_x_to_y  classify  tf_example -> scores y (no classes)
    """
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        serialized = v1.placeholder(tf.string, [None], name="tf_example")
        features = v1.io.parse_example(serialized, {"x": v1.io.FixedLenFeature([1], tf.float32)})
        x = tf.identity(features["x"], name="x")
        a_var = v1.get_variable("a", initializer=0.5)
        b_var = v1.get_variable("b", initializer=b)
        y = tf.identity(a_var * x + b_var, name="y")
        signatures = {
            "serving_default": v1.saved_model.predict_signature_def({"x": x}, {"y": y}),
            "regress_x_to_y": v1.saved_model.regression_signature_def(serialized, y),
            "classify_x_to_y": v1.saved_model.classification_signature_def(serialized, None, y),
        }
    return _save(graph, version_dir, signatures)


@pytest.fixture(scope="session")
def half_plus_two(tmp_path_factory):
    """half_plus_two(base_path, version, b=2.0): stage TF Serving's test model atomically."""
    root = tmp_path_factory.mktemp("half-plus-two-cache")
    built: dict[float, Path] = {}

    def _stage(base_path: Path, version: int, b: float = 2.0) -> Path:
        if b not in built:
            built[b] = build_half_plus_two(root / f"b-{b}", b)
        temp = base_path / f".staging-{version}"
        shutil.copytree(built[b], temp)
        final = base_path / str(version)
        temp.rename(final)
        return final

    return _stage


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    """Built versions by scale, copied into each test's base path (building costs ~0.3 s)."""
    root = tmp_path_factory.mktemp("model-cache")
    built: dict[float, Path] = {}

    def get(scale: float) -> Path:
        if scale not in built:
            built[scale] = build_model(root / f"scale-{scale}", scale)
        return built[scale]

    return get


@pytest.fixture(scope="session")
def stage(model_cache):
    """stage(base_path, version, scale): copy a version in atomically, as soak's swaps do."""

    def _stage(base_path: Path, version: int, scale: float = 1.0) -> Path:
        temp = base_path / f".staging-{version}"
        shutil.copytree(model_cache(scale), temp)
        final = base_path / str(version)
        temp.rename(final)
        return final

    return _stage


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    """One running soak-model-server; stop() is safe to call twice."""

    base_path: Path
    log_path: Path
    process: subprocess.Popen
    rest_port: int
    grpc_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}/v1/models/{MODEL}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def status(self) -> dict[str, dict]:
        """version -> its model_version_status entry."""
        reply = requests.get(self.url, timeout=10)
        reply.raise_for_status()
        return {entry["version"]: entry for entry in reply.json()["model_version_status"]}

    def predict(self, body: dict, version: int | None = None) -> requests.Response:
        url = self.url if version is None else f"{self.url}/versions/{version}"
        return requests.post(f"{url}:predict", json=body, timeout=30)

    def wait_for(self, condition, timeout: float = 60, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited ({self.process.returncode}):\n{self.log()}")
            try:
                if condition():
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}:\n{self.log()}")

    def wait_states(self, expected: dict[str, str], timeout: float = 60) -> dict[str, dict]:
        """Wait until each version has the expected state; return the status."""

        def reached() -> bool:
            current = self.status()
            return all(current.get(v, {}).get("state") == s for v, s in expected.items())

        self.wait_for(reached, timeout, f"states {expected}")
        return self.status()

    def rss_anon_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no RssAnon line")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def launch(base_path: Path, log_path: Path, *extra: str, rest_port: int | None = None) -> Server:
    """Start the server (do not wait for it)."""
    rest_port = rest_port or free_port()
    grpc_port = free_port()
    while grpc_port == rest_port:
        grpc_port = free_port()
    args = [
        f"--port={grpc_port}",
        f"--rest_api_port={rest_port}",
        f"--model_name={MODEL}",
        f"--model_base_path={base_path}",
        *extra,
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "1"}
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [str(SERVER_BIN), *args], stdout=log_file, stderr=subprocess.STDOUT, env=env
        )
    return Server(base_path, log_path, process, rest_port, grpc_port)


def start_server(base_path: Path, log_path: Path, *extra: str) -> Server:
    """Start the server and wait until its REST API answers (a version is AVAILABLE)."""
    server = launch(base_path, log_path, *extra)
    try:
        server.wait_for(
            lambda: requests.get(server.url, timeout=2).ok, START_TIMEOUT_S, "the REST API"
        )
    except BaseException:
        server.stop()
        raise
    return server


def _server_factory(log_dir: Path):
    started: list[Server] = []

    def factory(base_path: Path, *extra: str, wait: bool = True) -> Server:
        log_path = log_dir / f"server-{len(started)}.log"
        server = (start_server if wait else launch)(base_path, log_path, *extra)
        started.append(server)
        return server

    return factory, started


@pytest.fixture
def server_factory(tmp_path):
    """Start servers in a test; every one is stopped at teardown."""
    factory, started = _server_factory(tmp_path)
    yield factory
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def module_server_factory(tmp_path_factory):
    """Start servers shared by a test module; every one is stopped at its teardown."""
    factory, started = _server_factory(tmp_path_factory.mktemp("servers"))
    yield factory
    for server in started:
        server.stop()


MONITORING_CONFIG = (
    'prometheus_config {\n  enable: true,\n  path: "/monitoring/prometheus/metrics"\n}\n'
)


@pytest.fixture(scope="session")
def hp2_server(tmp_path_factory, half_plus_two):
    """One server for the whole session: TF Serving's half_plus_two as version 123 (as in
    http_rest_api_handler_test.cc), gRPC and REST, Prometheus metrics enabled. Tests must not
    change its model directory."""
    root = tmp_path_factory.mktemp("hp2")
    base_path = root / "models"
    base_path.mkdir()
    half_plus_two(base_path, 123)
    config = root / "monitoring_config.txt"
    config.write_text(MONITORING_CONFIG)
    factory, started = _server_factory(root)
    yield factory(base_path, f"--monitoring_config_file={config}")
    for server in started:
        server.stop()


@pytest.fixture
def probe(tmp_path):
    """probe(call, rps, duration_s): a LatencyProber sending `call` until it has sent
    rps * duration_s requests; the prober and its latency.csv rows."""

    def _probe(call, rps: float = 40, duration_s: float = 0.5):
        path = tmp_path / "latency.csv"
        log = CsvLog(path, LatencySample)
        prober = LatencyProber("", {}, rps, log, SwapClock(), max_duration_s=duration_s, call=call)
        prober.start()
        deadline = time.monotonic() + 30
        while prober.sent < rps * duration_s and time.monotonic() < deadline:
            time.sleep(0.01)
        prober.stop()  # waits for the answers
        log.close()
        with path.open() as f:
            return prober, list(csv.DictReader(f))

    return _probe
