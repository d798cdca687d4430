"""The Docker engine: connecting, what it is, and removing what dead runs left behind.

Every container soak starts carries labels naming its run and the orchestrator
process that owns it (pid and that process's start time, so a recycled pid is
not mistaken for the owner, and the host, so a shared engine does not judge
another machine's pids). A new run removes the containers whose owner is gone.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterable

import docker
import docker.errors

from soak.errors import EnvironmentFailure
from soak.procfs import process_start_ticks

LABEL_RUN = "soak.run"
LABEL_VARIANT = "soak.variant"
LABEL_PID = "soak.pid"
LABEL_PID_START = "soak.pid_start"
LABEL_HOST = "soak.host"

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
CONNECT_TIMEOUT_S = 30


def connect() -> docker.DockerClient:
    """A client for the engine of the environment (DOCKER_HOST or the local socket)."""
    where = os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET
    try:
        client = docker.from_env(timeout=CONNECT_TIMEOUT_S)
        client.ping()
    except (docker.errors.DockerException, OSError):
        raise EnvironmentFailure(
            f"Docker engine unreachable at {where}: start one with scripts/ensure-docker "
            "(or set DOCKER_HOST)"
        ) from None
    return client


def is_local(client: docker.DockerClient) -> bool:
    """Do the engine's containers run on this host, in this pid namespace?

    Only then can their processes be read from /proc. A unix socket is local
    unless it is another machine's engine (same socket mounted in a container),
    which the engine's host name tells.
    """
    if not client.api.base_url.startswith(("http+docker://", "unix://")):
        return False
    try:
        return client.info().get("Name") == socket.gethostname()
    except docker.errors.APIError:
        return False


def owner_labels(run_id: str) -> dict[str, str]:
    """The labels that tie a container to this run and this orchestrator process."""
    pid = os.getpid()
    return {
        LABEL_RUN: run_id,
        LABEL_PID: str(pid),
        LABEL_PID_START: str(process_start_ticks(pid)),
        LABEL_HOST: socket.gethostname(),
    }


def remove_dead_run_containers(
    client: docker.DockerClient, alive_run_ids: Iterable[str] = ()
) -> list[str]:
    """Remove this host's soak containers whose orchestrator has died; their names.

    Containers of `alive_run_ids`, of live orchestrators and of other hosts are kept.
    """
    keep_runs = set(alive_run_ids)
    host = socket.gethostname()
    removed = []
    for container in client.containers.list(all=True, filters={"label": LABEL_RUN}):
        labels = container.labels
        if labels.get(LABEL_RUN) in keep_runs or labels.get(LABEL_HOST, host) != host:
            continue
        if _owner_alive(labels.get(LABEL_PID), labels.get(LABEL_PID_START)):
            continue
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
            removed.append(container.name)
    return removed


def engine_facts(client: docker.DockerClient) -> dict:
    """What environment.json records about the engine."""
    info = client.info()
    version = client.version()
    return {
        "engine_version": version.get("Version"),
        "engine_api_version": version.get("ApiVersion"),
        "engine_url": client.api.base_url,
        "engine_local": is_local(client),
        "os": info.get("OperatingSystem"),
        "kernel": info.get("KernelVersion"),
        "cgroup_version": info.get("CgroupVersion"),
        "cgroup_driver": info.get("CgroupDriver"),
        "storage_driver": info.get("Driver"),
        "cpus": info.get("NCPU"),
        "memory_bytes": info.get("MemTotal"),
    }


def _owner_alive(pid_label: str | None, start_label: str | None) -> bool:
    try:
        pid = int(pid_label or "")
    except ValueError:
        return False  # no owner recorded: nothing will ever clean it up but us
    start = process_start_ticks(pid)
    if start is None:
        return False
    return start_label in (None, "None", str(start))
