"""soak's metrics scraper and split requests against the stand-in (real REST, gRPC, metrics)."""

from __future__ import annotations

import csv
import time

import numpy as np

from soak.samplers.clock import SwapClock
from soak.samplers.latency import GrpcPredict, RestPredict
from soak.samplers.metrics import MetricsScraper, parse_prometheus_text
from soak.samplers.split import SplitPredict, split_body
from soak.store.csv_log import CsvLog
from soak.store.records import MetricSample
from soak.targets.monitoring import PROMETHEUS_PATH

MODEL = "m"
REQUEST_COUNT = ":tensorflow:serving:request_count"


def ok_requests(server) -> float:
    """The server's own count of successful requests (its Prometheus page)."""
    import requests

    page = requests.get(f"http://127.0.0.1:{server.rest_port}{PROMETHEUS_PATH}", timeout=5).text
    return sum(
        value
        for name, labels, value in parse_prometheus_text(page)
        if name == REQUEST_COUNT and 'status="OK"' in labels
    )


def rows(path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_scraper_writes_changed_series_stamped_with_the_swap(tmp_path, hp2_server):
    clock = SwapClock()
    log = CsvLog(tmp_path / "metrics.csv", MetricSample)
    scraper = MetricsScraper(hp2_server.rest_port, PROMETHEUS_PATH, log, clock, interval_s=0.2)
    scraper.start()
    time.sleep(0.5)
    clock.swap = 1
    for _ in range(3):
        assert hp2_server.predict({"instances": [1.0, 2.0]}).status_code == 200
    time.sleep(0.5)
    scraper.stop()
    log.close()
    written = rows(tmp_path / "metrics.csv")
    assert scraper.scrapes >= 4 and scraper.failures == 0
    assert scraper.facts()["url"].endswith(PROMETHEUS_PATH)
    first = [r for r in written if r["swap"] == "0"]
    names = {r["name"] for r in first}
    assert {REQUEST_COUNT, ":tensorflow:cc:saved_model:load_latency"} <= names
    assert not any(r["name"].endswith("_bucket") for r in written)
    # swap 1: only what the predicts changed, e.g. the OK count, grown by 3 at least
    later = [r for r in written if r["swap"] == "1"]
    assert later and len(later) < len(first)
    ok = [r for r in written if r["name"] == REQUEST_COUNT and 'status="OK"' in r["labels"]]
    assert float(ok[-1]["value"]) - float(ok[0]["value"]) >= 3
    assert all(r["name"] != ":tensorflow:cc:saved_model:load_latency" for r in later)


def test_a_missing_page_counts_as_failed_scrapes(tmp_path, hp2_server):
    log = CsvLog(tmp_path / "metrics.csv", MetricSample)
    scraper = MetricsScraper(hp2_server.rest_port, "/nope", log, SwapClock(), interval_s=0.1)
    scraper.start()
    time.sleep(0.35)
    scraper.stop()
    log.close()
    assert scraper.scrapes == 0 and scraper.failures >= 2
    assert scraper.last_error is not None and "HTTP 404" in scraper.last_error
    assert rows(tmp_path / "metrics.csv") == []


def test_split_rest_request_is_n_server_requests_and_one_row(probe, hp2_server):
    body = {"instances": [[float(i)] for i in range(10)]}
    parts = [RestPredict(f"{hp2_server.url}:predict", part) for part in split_body(body, 4)]
    before = ok_requests(hp2_server)
    prober, written = probe(SplitPredict(parts))
    assert prober.sent == len(written) >= 8  # one row per whole request
    assert {r["status"] for r in written} == {"200"}
    assert ok_requests(hp2_server) - before == 4 * prober.sent  # the server saw every part


def test_split_grpc_request_is_n_server_requests(tmp_path, hp2_server):
    batch = np.arange(6, dtype=np.float32).reshape(6, 1)
    parts = [
        GrpcPredict(hp2_server.grpc_port, MODEL, {"x": part}) for part in np.array_split(batch, 3)
    ]
    call = SplitPredict(parts)
    before = ok_requests(hp2_server)
    assert call() == (200, None)
    assert ok_requests(hp2_server) - before == 3
    assert call.protocol == "grpc"
    call.close()


def test_a_failing_part_fails_the_whole_request(tmp_path, hp2_server):
    url = f"{hp2_server.url}:predict"
    call = SplitPredict([RestPredict(url, {"instances": [1.0]}), RestPredict(url, {"x": 1})])
    status, error = call()
    assert status == 400 and error is not None and error.startswith("part 2/2: HTTP 400")
    call.close()
