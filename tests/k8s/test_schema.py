"""The schema check is a real one: a manifest soak printed passes it, and the same manifest
with a misspelt field, a missing required field or a value of the wrong type fails it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import kubernetes_validate
import pytest


@pytest.fixture
def printed(k8s, tmp_path: Path) -> dict[str, dict]:
    """The ConfigMap and the CronJob soak prints for a plain config, by kind."""
    config = tmp_path / "soak.toml"
    config.write_text('model = "/models/ranker"\nallocators = ["glibc", "jemalloc"]\n')
    code, docs, err = k8s(
        "cronjob", "--config", config, "--schedule", "0 3 * * *", "--memory", "4g",
        "--model-pvc", "models",
    )  # fmt: skip
    assert code == 0, err
    return {d["kind"]: d for d in docs}


def _container(cronjob: dict) -> dict:
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]


BROKEN: dict[str, tuple[str, Callable[[dict], None]]] = {
    # misspelt fields, at the top and deep in the pod
    "backoffLimit misspelt": ("CronJob", lambda d: d["spec"]["jobTemplate"]["spec"].update(
        backofLimit=d["spec"]["jobTemplate"]["spec"].pop("backoffLimit"))),
    "concurrencyPolicy misspelt": ("CronJob", lambda d: d["spec"].update(
        concurencyPolicy=d["spec"].pop("concurrencyPolicy"))),
    "mountPath misspelt": ("CronJob", lambda d: _container(d)["volumeMounts"][0].update(
        mountpath=_container(d)["volumeMounts"][0].pop("mountPath"))),
    "ConfigMap data misspelt": ("ConfigMap", lambda d: d.update(date=d.pop("data"))),
    # required fields missing
    "no schedule": ("CronJob", lambda d: d["spec"].pop("schedule")),
    "no container name": ("CronJob", lambda d: _container(d).pop("name")),
    "no secret key": ("CronJob", lambda d: _container(d)["env"][0]["valueFrom"]["secretKeyRef"]
                      .pop("key")),
    # values of the wrong type
    "deadline as text": ("CronJob", lambda d: d["spec"]["jobTemplate"]["spec"].update(
        activeDeadlineSeconds="5400")),
    "runAsNonRoot as text": ("CronJob", lambda d: d["spec"]["jobTemplate"]["spec"]["template"]
                             ["spec"]["securityContext"].update(runAsNonRoot="yes")),
    "args as one string": ("CronJob", lambda d: _container(d).update(args="/config/soak.toml 5")),
    "memory as a list": ("CronJob", lambda d: _container(d)["resources"]["limits"].update(
        memory=["4Gi"])),
}  # fmt: skip


def test_what_soak_prints_passes(printed, assert_valid):
    assert set(printed) == {"ConfigMap", "CronJob"}
    for document in printed.values():
        assert_valid(document)


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_manifest_fails(printed, assert_valid, name):
    kind, breaks = BROKEN[name]
    broken = copy.deepcopy(printed[kind])
    breaks(broken)
    assert broken != printed[kind]
    with pytest.raises(kubernetes_validate.ValidationError):
        assert_valid(broken)
