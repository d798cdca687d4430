"""--metrics: soak's monitoring config, or the user's own among the server flags."""

from __future__ import annotations

from pathlib import Path

from soak.targets import monitoring
from soak.targets.base import LaunchSpec


def test_given_config_is_the_last_flag_in_either_spelling():
    assert monitoring.given_config(["--num_load_threads=2"]) is None
    args = ["--monitoring_config_file=/a.txt", "--monitoring_config_file", "/b.txt"]
    assert monitoring.given_config(args) == "/b.txt"


def test_the_scraped_path_is_the_users_when_readable(tmp_path):
    own = tmp_path / "mine.txt"
    own.write_text('prometheus_config {\n  enable: true,\n  path: "/my/metrics"\n}\n')
    assert monitoring.prometheus_path(str(own)) == "/my/metrics"
    # inside a container (not readable here), or no path given: the standard path
    assert monitoring.prometheus_path("/no/such/file") == monitoring.PROMETHEUS_PATH
    bare = tmp_path / "bare.txt"
    bare.write_text("prometheus_config { enable: true }\n")
    assert monitoring.prometheus_path(str(bare)) == monitoring.PROMETHEUS_PATH
    assert monitoring.prometheus_path(None) == monitoring.PROMETHEUS_PATH


def test_soaks_config_enables_prometheus_at_the_standard_path_for_the_stand_in(tmp_path):
    from soak_model_server.metrics import prometheus_path_from_config

    config = monitoring.write_config(tmp_path / "monitoring_config.txt")
    assert prometheus_path_from_config(str(config)) == monitoring.PROMETHEUS_PATH
    spec = LaunchSpec("v", "m", Path("/models"), 1, 2, ["--x=1"], monitoring_config=config)
    flags = spec.tf_serving_flags("/models")
    assert flags[-2:] == [f"--monitoring_config_file={config}", "--x=1"]  # before the user's
    assert LaunchSpec("v", "m", Path("/models"), 1, 2).monitoring_flags("/c") == []
