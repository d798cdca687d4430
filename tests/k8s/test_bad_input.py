"""Bad input to `soak k8s` is one line and exit 2, with nothing printed for kubectl: what
would otherwise fail at `kubectl apply`, or in the pod at night."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from soak.k8s.schedule import check_schedule

GOOD = ["--model-pvc", "models", "--memory", "4g"]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "soak.toml"
    path.write_text('model = "/models/ranker"\n')
    return path


def test_a_missing_config_file(k8s, tmp_path):
    err = k8s.fails("job", "--config", tmp_path / "nope.toml", *GOOD)
    assert f"config file not found: {tmp_path / 'nope.toml'}" in err


def test_a_config_that_is_not_toml_or_not_soaks(k8s, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("swaps = [\n")
    assert "is not valid TOML" in k8s.fails("job", "--config", bad, *GOOD)
    bad.write_text('model = "/models/m"\nswaps = 0\nrsp = 3\n')
    err = k8s.fails("job", "--config", bad, *GOOD)
    assert "swaps must be a whole number >= 1" in err and "unknown setting 'rsp'" in err


@pytest.mark.parametrize(
    ("schedule", "says"),
    [
        ("0 3 * *", "has 4 fields, a cron schedule has 5"),
        ("0 3 * * * *", "has 6 fields, a cron schedule has 5"),
        ("", "has 0 fields"),
        ("61 3 * * *", "minute '61': '61' is not within 0-59"),
        ("0 24 * * *", "hour '24'"),
        ("0 3 0 * *", "day of month '0'"),
        ("0 3 * 13 *", "month '13'"),
        ("0 3 * * 8", "day of week '8'"),
        ("0 3 * * FRI-MON", "runs backwards"),
        ("*/0 3 * * *", "a step of 0"),
        ("0 3 * * weekdays", "'weekdays' is not within 0-6 or SUN-SAT"),
        ("TZ=UTC 0 3 * * *", "spec.timeZone"),
        ("@nightly", "not one of @yearly"),
    ],
)
def test_a_bad_schedule(k8s, config, schedule, says):
    err = k8s.fails("cronjob", "--config", config, "--schedule", schedule, *GOOD)
    assert err.startswith("soak: --schedule: ") and says in err, err


@pytest.mark.parametrize(
    "schedule", ["0 3 * * *", "*/15 2-4 1,15 JAN-MAR mon-fri", "5/10 * ? * *", "@weekly"]
)
def test_schedules_kubernetes_takes(schedule):
    assert check_schedule(schedule) == schedule


def test_a_cronjob_without_a_schedule(k8s, config):
    assert "a CronJob needs a schedule" in k8s.fails("cronjob", "--config", config, *GOOD)


def test_a_run_dir_without_a_pod_memory_figure(k8s, config, analysed_run, tmp_path):
    """A run dir of a soak from before the figure: its summary.json does not hold it."""
    old = tmp_path / "old-run"
    shutil.copytree(analysed_run, old)
    summary = json.loads((old / "summary.json").read_text())
    for variant in summary["variants"]:
        del variant["pod_memory_mb"], variant["pod_memory"]
    (old / "summary.json").write_text(json.dumps(summary))
    err = k8s.fails("job", "--config", config, "--model-pvc", "m", "--from-run", old)
    assert f"--from-run: run dir {old} has no pod memory figure" in err
    assert "give --memory SIZE" in err


def test_a_run_dir_that_is_none(k8s, config, tmp_path):
    err = k8s.fails("job", "--config", config, "--model-pvc", "m", "--from-run", tmp_path)
    assert "--from-run: not a soak run directory" in err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ([], "give the container's memory: --memory SIZE or --from-run RUN_DIR"),
        (["--memory", "4g", "--from-run", "runs/x"], "give --memory or --from-run, not both"),
        (["--memory", "lots"], "--memory: not a size: 'lots'"),
        (["--memory", "4g", "--cpu", "two"], "--cpu: 'two' is not a CPU count"),
        (["--memory", "4g", "--deadline", "soon"], "--deadline: 'soon' is not a duration"),
        (["--memory", "4g", "--against", "0"], "--against must be a whole number >= 1"),
        (["--memory", "4g", "--name", "Soak_Ranker"], "name: 'Soak_Ranker' is not a Kubernetes"),
        (["--memory", "4g", "--history-secret", ""], "give --runs-pvc CLAIM to keep it"),
        (["--memory", "4g", "--runs-pvc", "Runs"], "--runs-pvc: 'Runs' is not a Kubernetes"),
        (["--memory", "4g", "--model-host-path", "/srv/m"], "give --model-pvc or --model-host"),
    ],
)
def test_bad_options(k8s, config, args, says):
    err = k8s.fails("job", "--config", config, "--model-pvc", "models", *args)
    assert says in err, err


def test_a_host_path_that_is_not_absolute(k8s, config):
    err = k8s.fails("job", "--config", config, "--memory", "4g", "--model-host-path", "srv/m")
    assert "--model-host-path: 'srv/m' is not an absolute path" in err


def test_a_name_too_long_for_a_cronjob(k8s, config):
    name = "soak-" + "x" * 48  # 53: a CronJob's Jobs add 11 characters to 63
    assert "at most 52 characters" in k8s.fails(
        "cronjob", "--config", config, "--schedule", "@daily", "--name", name, *GOOD
    )
    code, _, err = k8s("job", "--config", config, "--name", name, *GOOD)
    assert code == 0, err


@pytest.mark.parametrize(
    ("text", "args", "says"),
    [
        ('model = "/models/m"', [], "is on no volume of the pod: give --model-pvc"),
        ('model = "/data/m"', GOOD, "is not under the model volume's mount '/models'"),
        ('model = "models/m"', GOOD, "is not under the model volume's mount"),
        ("swaps = 4", GOOD, "the config names no model"),
        ('model = "/models/m"\nbackend = "docker"', GOOD, "a pod has none"),
        ('model = "/models/m"\nout = "runs/x"', GOOD, "each scheduled soak needs a new run dir"),
        ('model = "/models/m"\nhistory = "h.sqlite"', GOOD, "history Secret 'soak-history'"),
        ('model = "/models/m"\nrequest_file = "/etc/r.json"', GOOD, "request_file '/etc/r.json'"),
    ],
)
def test_a_config_that_would_fail_in_the_pod(k8s, tmp_path, text, args, says):
    config = tmp_path / "soak.toml"
    config.write_text(text + "\n")
    extra = [] if args else ["--memory", "4g"]
    err = k8s.fails("job", "--config", config, *args, *extra)
    assert says in err, err


def test_a_fleet_file_with_bad_model_entries(k8s, tmp_path):
    (tmp_path / "soak.toml").write_text('model = "/models/m"\n')
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(
        """
[defaults]
config = "soak.toml"
memory = "4g"
model_pvc = "models"

[[models]]
name = "soak-ranker"
memroy = "3g"

[[models]]
settings = {model = "/models/x"}

[[models]]
name = "soak-x"
settings = "swaps = 3"

[[models]]
name = "soak-x"
"""
    )
    err = k8s.fails("job", "--fleet", fleet)
    assert err.startswith(f"soak: fleet file {fleet}: ")
    assert "models #1 (soak-ranker): unknown keys ['memroy']" in err
    assert "models #2 has no name" in err
    assert "models #3 (soak-x): settings must be a table" in err
    assert "models #4 (soak-x): the name is taken by an earlier model" in err


def test_a_fleet_model_whose_soak_is_wrong(k8s, tmp_path):
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(
        """
[defaults]
model_pvc = "models"

[[models]]
name = "soak-ok"
settings = {model = "/models/ok"}
memory = "2g"

[[models]]
name = "soak-bad"
settings = {model = "/models/bad", swaps = 0}
from_run = "no-such-run"
memory = "lots"
"""
    )
    err = k8s.fails("job", "--fleet", fleet)
    assert "soak-ok" not in err
    assert "models #2 (soak-bad): give memory or from_run, not both" in err
    assert "swaps must be a whole number >= 1" in err


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "no [[models]] tables"),
        ("models = 3", "no [[models]] tables"),
        ('[[models]]\nname = "soak-m"', "models #1 (soak-m): give a config (a soak.toml)"),
        ('fleet = "x"\n[[models]]\nname = "soak-m"', "unknown keys ['fleet']"),
        ('[defaults]\nconfg = "x"\n[[models]]\nname = "m"', "[defaults]: unknown keys"),
    ],
)
def test_a_fleet_file_without_models(k8s, tmp_path, text, says):
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(text + "\n")
    err = k8s.fails("job", "--fleet", fleet)
    assert says in err, err


def test_a_missing_fleet_file_and_a_name_for_a_fleet(k8s, tmp_path):
    assert "fleet file not found" in k8s.fails("job", "--fleet", tmp_path / "nope.toml")
    (tmp_path / "f.toml").write_text("")
    assert "--name names the soak of --config" in k8s.fails(
        "job", "--fleet", tmp_path / "f.toml", "--name", "x"
    )


def test_config_or_fleet_is_needed(k8s, config):
    assert "one of the arguments --config --fleet is required" in k8s.fails("job")
    assert "not allowed with argument" in k8s.fails("job", "--config", config, "--fleet", config)
