"""A soak as Kubernetes objects: the ConfigMap of its soak.toml and the Job (or CronJob)
that runs the Job image on it.

The container runs the image's entrypoint, the nightly sequence (scripts/soak-nightly):
`soak run --quiet --config CONFIG`, then `soak check` on the verdicts and against the last
N runs of the history; the pod's exit code is its. Nothing is retried (`backoffLimit: 0`:
a failed soak is a finding), two soaks of one CronJob never overlap (`concurrencyPolicy:
Forbid`: they would measure the same node), and the deadline stops a soak with SIGTERM,
which soak answers by keeping and recording its partial results (exit 143).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from soak import __version__
from soak.config.settings import HISTORY_ENV
from soak.k8s.options import JobOptions
from soak.k8s.sizing import Sized, quantity

CONFIG_DIR = "/config"
CONFIG_FILE = "soak.toml"
WORK_DIR = "/work"  # the working dir: soak-runs/ (run dirs, an SQLite history) goes here
CONTAINER = "soak"
LONGEST_NAME = {"Job": 63, "CronJob": 52}  # a CronJob's Jobs add 11 characters


@dataclass(frozen=True)
class SoakJob:
    """One soak to run on Kubernetes, every figure decided."""

    name: str
    config_text: str  # the ConfigMap's soak.toml
    options: JobOptions
    memory: Sized  # bytes
    deadline: Sized  # seconds

    @property
    def config_map_name(self) -> str:
        return f"{self.name}-config"


def labels(name: str) -> dict[str, str]:
    version = re.sub(r"[^A-Za-z0-9_.-]", "-", __version__)[:63].strip("-_.")
    return {
        "app.kubernetes.io/name": "soak",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/version": version,
    }


def _metadata(job: SoakJob, name: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if job.options.namespace:
        meta["namespace"] = job.options.namespace
    meta["labels"] = labels(job.name)
    return meta


def config_map(job: SoakJob) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(job, job.config_map_name),
        "data": {CONFIG_FILE: job.config_text},
    }


def _model_volume(o: JobOptions) -> dict[str, Any] | None:
    if o.model_pvc:
        return {"name": "model", "persistentVolumeClaim": {"claimName": o.model_pvc}}
    if o.model_host_path:
        return {"name": "model", "hostPath": {"path": o.model_host_path, "type": "Directory"}}
    return None


def pod_template(job: SoakJob) -> dict[str, Any]:
    o = job.options
    memory = quantity(job.memory.value)
    mounts: list[dict[str, Any]] = [
        {"name": "work", "mountPath": WORK_DIR},
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "work", "persistentVolumeClaim": {"claimName": o.runs_pvc}}
        if o.runs_pvc
        else {"name": "work", "emptyDir": {}},
        {"name": "config", "configMap": {"name": job.config_map_name}},
    ]
    model = _model_volume(o)
    if model is not None:
        mounts.append({"name": "model", "mountPath": o.model_mount, "readOnly": True})
        volumes.append(model)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": o.image,
        "args": [f"{CONFIG_DIR}/{CONFIG_FILE}", str(o.against)],
        "workingDir": WORK_DIR,
    }
    if o.history_secret:
        container["env"] = [
            {
                "name": HISTORY_ENV,
                "valueFrom": {"secretKeyRef": {"name": o.history_secret, "key": o.history_key}},
            }
        ]
    container |= {
        "resources": {
            "requests": {"cpu": o.cpu, "memory": memory},
            "limits": {"memory": memory},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
    }
    return {
        "metadata": {"labels": labels(job.name)},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": o.run_as_user,
                "runAsGroup": o.run_as_user,
                "fsGroup": o.run_as_user,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            "volumes": volumes,
        },
    }


def job_spec(job: SoakJob) -> dict[str, Any]:
    return {
        "backoffLimit": 0,
        "activeDeadlineSeconds": job.deadline.value,
        "template": pod_template(job),
    }


def job_manifest(job: SoakJob) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(job, job.name),
        "spec": job_spec(job),
    }


def cronjob_manifest(job: SoakJob, schedule: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _metadata(job, job.name),
        "spec": {
            "schedule": schedule,
            "concurrencyPolicy": "Forbid",
            "jobTemplate": {"metadata": {"labels": labels(job.name)}, "spec": job_spec(job)},
        },
    }


def documents(job: SoakJob, kind: str) -> list[tuple[list[str], dict[str, Any]]]:
    """The ConfigMap and the Job or CronJob, each with comment lines that say why."""
    o = job.options
    history = (
        f"{HISTORY_ENV} from Secret {o.history_secret}, key {o.history_key}"
        if o.history_secret
        else f"{WORK_DIR}/soak-runs/history.sqlite on PVC {o.runs_pvc}"
    )
    about = [
        f"{kind} {job.name}: the image's nightly sequence on {CONFIG_DIR}/{CONFIG_FILE}: "
        f"soak run, soak check, soak check --against-history {o.against}",
        f"memory {quantity(job.memory.value)}: {job.memory.why}",
        f"activeDeadlineSeconds {job.deadline.value}: {job.deadline.why}",
        f"history: {history}",
    ]
    main = job_manifest(job) if kind == "Job" else cronjob_manifest(job, str(o.schedule))
    return [([f"the soak.toml of {kind} {job.name}"], config_map(job)), (about, main)]
