"""`soak run --protocol grpc --metrics` with a split and an unsplit variant, on the process
backend: the real stand-in, its Prometheus page, gRPC predicts in parallel parts."""

from __future__ import annotations

import json

import pandas as pd
import pytest

CONFIG = """
protocol = "grpc"
metrics = true
batch = 8

[[variants]]
name = "unsplit"
allocator = "glibc"

[[variants]]
name = "split"
allocator = "glibc"
split = 4
"""


@pytest.mark.slow
def test_grpc_run_with_metrics_and_split_variants(
    small_model, tmp_path, soak_cli, assert_contract_summary
):
    config = tmp_path / "soak.toml"
    config.write_text(CONFIG)
    out = tmp_path / "run"
    args = ["--model", str(small_model), "--swaps", "2", "--rps", "10", "--steady", "2"]
    args += ["--settle-window", "2"]  # what is recorded is checked, not a verdict
    result = soak_cli("run", "--config", str(config), *args, "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert_contract_summary(summary)
    assert [v["latency"]["split"] for v in summary["variants"]] == [1, 4]
    for variant in summary["variants"]:
        assert variant["status"] == "completed" and variant["latency"]["protocol"] == "grpc"
        vdir = out / variant["name"]
        meta = json.loads((vdir / "variant.json").read_text())
        assert meta["metrics"]["scrapes"] > 5 and meta["metrics"]["failures"] == 0
        assert "--monitoring_config_file=" in " ".join(meta["target"]["server_command"])
        latency = pd.read_csv(vdir / "latency.csv")
        assert (latency.status == 200).all()
        metrics = pd.read_csv(vdir / "metrics.csv", keep_default_na=False)
        assert list(metrics.columns) == ["t", "swap", "name", "labels", "value"]
        assert set(metrics.swap) == {0, 1, 2}
        # the server counted every part: 4 gRPC requests per row of the split variant
        ok = metrics[
            (metrics.name == ":tensorflow:serving:request_count")
            & metrics.labels.str.contains('status="OK"')
        ]
        parts = 1 if variant["name"] == "unsplit" else 4
        assert ok.value.max() >= parts * len(latency) * 0.9
        # TF Serving's own load time of each swap's version: below soak's staged->AVAILABLE
        for swap in variant["swaps"]:
            assert 0 < swap["tfs_load_ms"] < swap["load_s"] * 1000
    report = soak_cli("report", str(out))
    assert report.returncode == 0, report.stderr
    assert "variant  split  steady p50  steady p99  swap p99" in report.stdout
    page = (out / "report.html").read_text()
    assert "TFS load ms" in page and "Split vs unsplit" in page
