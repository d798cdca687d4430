"""The Prometheus text parser of the metrics scraper (TF Serving's exporter's output)."""

from __future__ import annotations

import math

from soak.samplers.metrics import parse_prometheus_text

# As util/prometheus_exporter.cc writes it: ':' for '/', no HELP, counters without _total.
PAGE = r"""# TYPE :tensorflow:cc:saved_model:load_latency counter
:tensorflow:cc:saved_model:load_latency{model_path="/models/m/1"} 62677
:tensorflow:cc:saved_model:load_latency{model_path="/models/m/2"} 58001
# TYPE :tensorflow:core:graph_runs counter
:tensorflow:core:graph_runs 12
# TYPE :tensorflow:serving:request_latency histogram
:tensorflow:serving:request_latency_bucket{model_name="m",API="predict",le="10"} 0
:tensorflow:serving:request_latency_bucket{model_name="m",API="predict",le="+Inf"} 3
:tensorflow:serving:request_latency_sum{model_name="m",API="predict"} 4.5e+03
odd{path="a \"quoted\" } brace, comma",x="y"} NaN 1700000000000
not a sample line
"""


def test_samples_keep_names_and_label_text_as_written():
    samples = list(parse_prometheus_text(PAGE))
    assert samples[:3] == [
        (":tensorflow:cc:saved_model:load_latency", 'model_path="/models/m/1"', 62677.0),
        (":tensorflow:cc:saved_model:load_latency", 'model_path="/models/m/2"', 58001.0),
        (":tensorflow:core:graph_runs", "", 12.0),
    ]
    by_name = {(n, labels): v for n, labels, v in samples}
    inf_bucket = 'model_name="m",API="predict",le="+Inf"'
    assert by_name[(":tensorflow:serving:request_latency_bucket", inf_bucket)] == 3.0
    assert samples[5][2] == 4500.0
    name, labels, value = samples[6]  # quotes, braces and commas inside a label value
    assert (name, labels) == ("odd", r'path="a \"quoted\" } brace, comma",x="y"')
    assert math.isnan(value)
    assert len(samples) == 7  # comments and the broken line are skipped


def test_skipped_suffixes_are_left_out():
    samples = list(parse_prometheus_text(PAGE, skip_suffixes=("_bucket",)))
    assert [n for n, _, _ in samples if n.endswith("_bucket")] == []
    assert len(samples) == 5
