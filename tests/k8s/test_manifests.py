"""`soak k8s job|cronjob` prints what a scheduled soak needs, and the Kubernetes schema of
every version accepts it: the image and its arguments, the soak.toml as a ConfigMap, the
model's volume, memory from a real run's pod memory figure, the deadline from the config's
timeouts, the history URL from a Secret, no retry, no overlap, a non-root pod."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import yaml

from soak import __version__
from soak.config.resolve import resolve
from soak.k8s.options import DEFAULT_IMAGE

MIB = 1 << 20
CONFIG = """# the nightly soak of the ranker
model = "/models/ranker"
model_name = "ranker"
allocators = ["jemalloc"]
swaps = 4
load_timeout = 100
settle_timeout = 20
steady_s = 5
"""


def _by_kind(docs: list[dict]) -> dict[str, dict]:
    kinds = [d["kind"] for d in docs]
    assert len(kinds) == len(set(kinds)), kinds
    return {d["kind"]: d for d in docs}


def _pod(job_spec: dict) -> dict:
    return job_spec["template"]["spec"]


def test_cronjob_from_a_run_dir(k8s, assert_valid, analysed_run, tmp_path):
    config = tmp_path / "soak.toml"
    config.write_text(CONFIG)
    code, docs, err = k8s(
        "cronjob", "--config", config, "--schedule", "0 2 * * *", "--from-run", analysed_run,
        "--model-pvc", "models",
    )  # fmt: skip
    assert code == 0 and err == ""
    for document in docs:
        assert_valid(document)
    objects = _by_kind(docs)
    assert set(objects) == {"ConfigMap", "CronJob"}
    config_map, cronjob = objects["ConfigMap"], objects["CronJob"]

    assert config_map["data"] == {"soak.toml": CONFIG}  # the file as written, comments kept
    assert cronjob["metadata"]["name"] == "soak-nightly"
    spec = cronjob["spec"]
    assert spec["schedule"] == "0 2 * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0
    # 1 variant x (4 swaps + the baseline) x (100 + 20 + 5 + 60 s) + 15 min
    assert job["activeDeadlineSeconds"] == 1 * 5 * 185 + 900
    pod = _pod(job)
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    [container] = pod["containers"]
    assert container["image"] == DEFAULT_IMAGE
    assert container["args"] == ["/config/soak.toml", "5"]
    assert "command" not in container  # the image's entrypoint: the nightly sequence
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["env"] == [
        {
            "name": "SOAK_HISTORY",
            "valueFrom": {"secretKeyRef": {"name": "soak-history", "key": "url"}},
        }
    ]

    # memory: the run's pod memory figure of the variant the config runs, plus soak's own
    summary = json.loads((analysed_run / "summary.json").read_text())
    pod_mb = {v["name"]: v["pod_memory_mb"] for v in summary["variants"]}
    assert pod_mb["glibc"] > pod_mb["jemalloc"]  # so the figure below is jemalloc's
    memory = f"{math.ceil(pod_mb['jemalloc'] + 512)}Mi"
    assert container["resources"] == {
        "requests": {"cpu": "2", "memory": memory},
        "limits": {"memory": memory},  # no CPU limit: throttling would show as latency
    }

    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["config"] == {"name": "config", "mountPath": "/config", "readOnly": True}
    assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]
    assert mounts["model"] == {"name": "model", "mountPath": "/models", "readOnly": True}
    assert volumes["model"]["persistentVolumeClaim"] == {"claimName": "models"}
    assert mounts["work"]["mountPath"] == container["workingDir"]
    assert volumes["work"] == {"name": "work", "emptyDir": {}}

    for meta in (
        config_map["metadata"],
        cronjob["metadata"],
        spec["jobTemplate"]["metadata"],
        job["template"]["metadata"],
    ):
        assert meta["labels"] == {
            "app.kubernetes.io/name": "soak",
            "app.kubernetes.io/instance": "soak-nightly",
            "app.kubernetes.io/version": __version__,
        }


def test_a_run_dir_sizes_for_the_largest_variant_the_config_runs(k8s, analysed_run, tmp_path):
    summary = json.loads((analysed_run / "summary.json").read_text())
    largest = max(v["pod_memory_mb"] for v in summary["variants"])
    config = tmp_path / "soak.toml"
    config.write_text('model = "/models/ranker"\n')  # glibc and jemalloc, the default
    code, docs, err = k8s(
        "job", "--config", config, "--from-run", analysed_run, "--soak-memory", "256m",
        "--model-pvc", "models",
    )  # fmt: skip
    assert code == 0, err
    [container] = _pod(_by_kind(docs)["Job"]["spec"])["containers"]
    assert container["resources"]["limits"]["memory"] == f"{math.ceil(largest + 256)}Mi"


def test_job_on_a_host_path_with_its_history_on_a_claim(k8s, assert_valid, tmp_path):
    config = tmp_path / "soak.toml"
    config.write_text('model = "/data/models/ranker/"\nallocators = "glibc,jemalloc"\n')
    code, docs, err = k8s(
        "job", "--config", config, "--name", "soak-ranker", "--memory", "3g", "--cpu", "1.5",
        "--deadline", "1h30m", "--against", "7", "--model-host-path", "/srv/models",
        "--model-mount", "/data/models", "--runs-pvc", "soak-runs", "--history-secret", "",
        "--image", "registry.example.com/soak-job:2.19", "--namespace", "ml-soak",
        "--run-as-user", "65532",
    )  # fmt: skip
    assert code == 0, err
    for document in docs:
        assert_valid(document)
    objects = _by_kind(docs)
    assert set(objects) == {"ConfigMap", "Job"}
    job = objects["Job"]
    assert {d["metadata"]["namespace"] for d in docs} == {"ml-soak"}
    assert job["metadata"]["name"] == "soak-ranker"
    assert job["spec"]["activeDeadlineSeconds"] == 5400
    assert job["spec"]["backoffLimit"] == 0
    pod = _pod(job["spec"])
    assert pod["securityContext"]["runAsUser"] == pod["securityContext"]["fsGroup"] == 65532
    [container] = pod["containers"]
    assert container["image"] == "registry.example.com/soak-job:2.19"
    assert container["args"] == ["/config/soak.toml", "7"]
    assert "env" not in container  # the history: soak-runs/history.sqlite on the claim
    assert container["resources"]["requests"] == {"cpu": "1.5", "memory": "3Gi"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["model"]["hostPath"] == {"path": "/srv/models", "type": "Directory"}
    assert volumes["work"]["persistentVolumeClaim"] == {"claimName": "soak-runs"}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["model"] == "/data/models"


def test_the_deadline_covers_every_variant(k8s, tmp_path):
    """auto swaps: up to max_swaps; each variant in turn."""
    config = tmp_path / "soak.toml"
    config.write_text(
        'model = "/models/m"\nallocators = "glibc,jemalloc,tcmalloc"\nmax_swaps = 9\n'
        "load_timeout = 60\nsettle_timeout = 30\nsteady_s = 10\n"
    )
    code, docs, err = k8s("job", "--config", config, "--memory", "2g", "--model-pvc", "m")
    assert code == 0, err
    # 3 variants x (9 swaps + the baseline) x (60 + 30 + 10 + 60 s) + 15 min
    assert _by_kind(docs)["Job"]["spec"]["activeDeadlineSeconds"] == 3 * 10 * 160 + 900


def test_the_printed_config_is_the_one_soak_resolves(k8s, tmp_path):
    config = tmp_path / "soak.toml"
    config.write_text(CONFIG)
    code, docs, _ = k8s("job", "--config", config, "--memory", "2g", "--model-pvc", "m")
    assert code == 0
    printed = tomllib.loads(_by_kind(docs)["ConfigMap"]["data"]["soak.toml"])
    assert resolve(printed, {}, here=False) == resolve(tomllib.loads(CONFIG), {}, here=False)


def test_fleet_one_configmap_and_cronjob_per_model(k8s, assert_valid, analysed_run, tmp_path):
    (tmp_path / "soak.toml").write_text('swaps = 6\nallocators = ["jemalloc"]\n')
    (tmp_path / "tagger.toml").write_text('model = "/models/tagger"\nswaps = 3\n')
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(
        f"""
[defaults]
config = "soak.toml"
model_pvc = "models"
memory = "4g"
image = "registry.example.com/soak-job:1"
schedule = "0 1 * * *"

[[models]]
name = "soak-ranker"
settings = {{model = "/models/ranker", model_name = "ranker"}}

[[models]]
name = "soak-tagger"
config = "tagger.toml"
from_run = "{analysed_run}"
schedule = "30 2 * * 1-5"
image = "registry.example.com/soak-job:2"
"""
    )
    code, docs, err = k8s(
        "cronjob", "--fleet", fleet, "--schedule", "0 3 * * *", "--image", "flag:1"
    )
    assert code == 0, err
    for document in docs:
        assert_valid(document)
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("ConfigMap", "soak-ranker-config"),
        ("CronJob", "soak-ranker"),
        ("ConfigMap", "soak-tagger-config"),
        ("CronJob", "soak-tagger"),
    ]
    ranker, tagger = docs[1], docs[3]
    # [defaults] < flags < the model's own table
    assert ranker["spec"]["schedule"] == "0 3 * * *"
    assert tagger["spec"]["schedule"] == "30 2 * * 1-5"
    assert _pod(ranker["spec"]["jobTemplate"]["spec"])["containers"][0]["image"] == "flag:1"
    tagger_container = _pod(tagger["spec"]["jobTemplate"]["spec"])["containers"][0]
    assert tagger_container["image"] == "registry.example.com/soak-job:2"
    ranker_container = _pod(ranker["spec"]["jobTemplate"]["spec"])["containers"][0]
    assert ranker_container["resources"]["limits"]["memory"] == "4Gi"
    # the model's from_run replaces the defaults' memory
    summary = json.loads((analysed_run / "summary.json").read_text())
    largest = max(v["pod_memory_mb"] for v in summary["variants"])
    assert tagger_container["resources"]["limits"]["memory"] == f"{math.ceil(largest + 512)}Mi"
    # the ranker's soak.toml: the shared config with its settings over it; the tagger's own
    assert tomllib.loads(docs[0]["data"]["soak.toml"]) == {
        "swaps": 6,
        "allocators": ["jemalloc"],
        "model": "/models/ranker",
        "model_name": "ranker",
    }
    assert docs[2]["data"]["soak.toml"] == (tmp_path / "tagger.toml").read_text()


def test_the_command_as_a_pipeline_runs_it(soak_cli, tmp_path):
    """A separate process, its stdout one YAML stream for `kubectl apply -f -`."""
    config = tmp_path / "soak.toml"
    config.write_text('model = "/models/ranker"\n')
    done = soak_cli(
        "k8s", "cronjob", "--config", config, "--schedule", "@daily", "--memory", "2g",
        "--model-pvc", "models",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    docs = list(yaml.safe_load_all(done.stdout))
    assert [d["kind"] for d in docs] == ["ConfigMap", "CronJob"]
    assert docs[1]["spec"]["schedule"] == "@daily"
    # each document says where its figures came from
    assert "# memory 2Gi: as given" in done.stdout
    assert "# activeDeadlineSeconds " in done.stdout


def test_a_path_given_in_the_fleet_file_is_beside_it(k8s, tmp_path, monkeypatch):
    fleet_dir = tmp_path / "fleet"
    fleet_dir.mkdir()
    (fleet_dir / "soak.toml").write_text('model = "/models/m"\n')
    (fleet_dir / "fleet.toml").write_text(
        '[[models]]\nname = "soak-m"\nconfig = "soak.toml"\nmemory = "1g"\nmodel_pvc = "m"\n'
    )
    monkeypatch.chdir(tmp_path)
    code, docs, err = k8s("job", "--fleet", Path("fleet") / "fleet.toml")
    assert code == 0, err
    assert docs[0]["data"]["soak.toml"] == 'model = "/models/m"\n'
