"""--monitoring_config_file: TF Serving's metrics on its Prometheus path of the REST port.

Names, labels and types as TF Serving registers them (servables/tensorflow/util.cc,
saved_model_warmup_util.cc, tensorflow/cc/saved_model/loader.cc, tensorflow/core metrics),
page format as util/prometheus_exporter.cc writes it (prometheus_exporter_test.cc).
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from soak_model_server import metrics

MODEL = "m"
PATH = "/monitoring/prometheus/metrics"


def scrape(server) -> str:
    reply = requests.get(f"http://127.0.0.1:{server.rest_port}{PATH}", timeout=10)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == "text/plain"
    return reply.text


def value(page: str, sample: str) -> float:
    """The value of one exact sample line `name{labels}`, 0 if absent."""
    match = re.search(rf"^{re.escape(sample)} (\S+)$", page, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_page_is_prometheus_text_with_tf_serving_names(hp2_server):
    families = {f.name: f.type for f in text_string_to_metric_families(scrape(hp2_server))}
    assert families[":tensorflow:serving:request_count"] == "counter"
    assert families[":tensorflow:serving:request_latency"] == "histogram"
    assert families[":tensorflow:serving:runtime_latency"] == "histogram"
    assert families[":tensorflow:cc:saved_model:load_attempt_count"] == "counter"
    assert families[":tensorflow:cc:saved_model:load_latency"] == "counter"
    assert families[":tensorflow:cc:saved_model:load_latency_by_stage"] == "histogram"
    assert families[":tensorflow:core:graph_runs"] == "counter"


def test_requests_are_counted_and_timed_per_entrypoint(hp2_server):
    from soak.samplers.grpc_client import GrpcClient

    count_ok = f':tensorflow:serving:request_count{{model_name="{MODEL}",status="OK"}}'
    count_missing = ':tensorflow:serving:request_count{model_name="nope",status="NOT_FOUND"}'
    rest = f':tensorflow:serving:request_latency_count{{model_name="{MODEL}",API="predict",entrypoint="REST"}}'  # noqa: E501
    grpc = f':tensorflow:serving:request_latency_count{{model_name="{MODEL}",API="Predict",entrypoint="GRPC"}}'  # noqa: E501
    before = scrape(hp2_server)
    body = {"instances": [1.0]}
    assert requests.post(f"{hp2_server.url}:predict", json=body, timeout=10).ok
    missing = f"http://127.0.0.1:{hp2_server.rest_port}/v1/models/nope:predict"
    assert requests.post(missing, json=body, timeout=10).status_code == 404
    with GrpcClient(hp2_server.grpc_port) as client:
        client.predict(MODEL, {"x": [1.0]})
    after = scrape(hp2_server)
    assert value(after, count_ok) - value(before, count_ok) == 2
    assert value(after, count_missing) - value(before, count_missing) == 1
    assert value(after, rest) - value(before, rest) == 1
    assert value(after, grpc) - value(before, grpc) == 1
    runtime = f':tensorflow:serving:runtime_latency_count{{model_name="{MODEL}",API="Predict",runtime="TF1"}}'  # noqa: E501
    assert value(after, runtime) - value(before, runtime) == 2


def test_the_load_is_recorded_with_its_model_path(hp2_server):
    page = scrape(hp2_server)
    path = str(hp2_server.base_path / "123")
    attempt = (
        f':tensorflow:cc:saved_model:load_attempt_count{{model_path="{path}",status="success"}}'
    )
    assert value(page, attempt) == 1
    assert value(page, f':tensorflow:cc:saved_model:load_latency{{model_path="{path}"}}') > 0
    for stage in ("restore_graph", "init_graph"):
        sample = (
            f':tensorflow:cc:saved_model:load_latency_by_stage_count{{model_path="{path}",'
            f'stage="{stage}"}}'
        )
        assert value(page, sample) == 1


def test_histogram_buckets_as_tf_serving_prints_them(hp2_server):
    page = scrape(hp2_server)
    labels = f'model_name="{MODEL}",API="",entrypoint="REST"'  # the status GETs
    buckets = re.findall(
        rf'^:tensorflow:serving:request_latency_bucket\{{{re.escape(labels)},le="([^"]+)"\}} ',
        page,
        re.MULTILINE,
    )
    # monitoring::Buckets::Exponential(10, 1.8, 33), six significant digits, then +Inf
    assert buckets[:6] == ["10", "18", "32.4", "58.32", "104.976", "188.957"]
    assert buckets[-2:] == ["1.47476e+09", "+Inf"] and len(buckets) == 34


def test_warmup_is_recorded(tmp_path, stage, server_factory):
    import numpy as np

    from soak_model_server.warmup import WarmupRequest, write_warmup_requests

    base_path = tmp_path / "models"
    base_path.mkdir()
    version_dir = stage(base_path, 1)
    inputs = {"ids": np.array([1], np.int64), "feats": np.ones((1, 4), np.float32)}
    write_warmup_requests(version_dir, MODEL, [WarmupRequest("serving_default", inputs)] * 2)
    config = tmp_path / "monitoring.txt"
    config.write_text("prometheus_config { enable: true }\n")  # default path
    server = server_factory(base_path, f"--monitoring_config_file={config}")
    page = scrape(server)
    sample = (
        f':tensorflow:serving:model_warmup_records_read{{model_path="{version_dir}",status="OK"}}'
    )
    assert value(page, sample) == 2


def test_no_metrics_without_the_config(tmp_path, stage, server_factory):
    base_path = tmp_path / "models"
    base_path.mkdir()
    stage(base_path, 1)
    server = server_factory(base_path)
    assert requests.get(f"http://127.0.0.1:{server.rest_port}{PATH}", timeout=10).status_code == 404


def test_a_config_that_disables_prometheus(tmp_path, stage, server_factory):
    base_path = tmp_path / "models"
    base_path.mkdir()
    stage(base_path, 1)
    config = tmp_path / "monitoring.txt"
    config.write_text('prometheus_config { enable: false, path: "/metrics" }\n')
    server = server_factory(base_path, f"--monitoring_config_file={config}")
    assert (
        requests.get(f"http://127.0.0.1:{server.rest_port}/metrics", timeout=10).status_code == 404
    )


def test_a_config_that_does_not_parse_stops_the_start(tmp_path):
    config = tmp_path / "monitoring.txt"
    config.write_text("prometheus_config { enable: maybe }\n")
    server_bin = Path(sys.executable).parent / "soak-model-server"
    result = subprocess.run(
        [
            str(server_bin),
            f"--model_base_path={tmp_path}",
            f"--port={_free_port()}",
            f"--rest_api_port={_free_port()}",
            f"--monitoring_config_file={config}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Failed to start server. Error: INVALID_ARGUMENT: Invalid protobuf file" in result.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    "text, path",
    [
        (
            'prometheus_config {\n  enable: true,\n  path: "/monitoring/prometheus/metrics"\n}\n',
            PATH,
        ),
        ("prometheus_config { enable: true }", metrics.DEFAULT_PATH),
        ('prometheus_config { path: "/x" }', None),
        ("", None),
    ],
)
def test_config_file_parsing(tmp_path, text, path):  # MonitoringConfig, text format
    config = tmp_path / "monitoring.txt"
    config.write_text(text)
    assert metrics.prometheus_path_from_config(str(config)) == path


def test_label_values_are_escaped_as_tf_serving():  # prometheus_exporter.cc SanitizeLabelValue
    metrics.request_count.labels('we"ird\\name', "OK").inc()
    page = metrics.prometheus_page()
    assert ':tensorflow:serving:request_count{model_name="we\\"ird\\\\name",status="OK"} 1' in page
