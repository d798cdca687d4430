"""The Docker engine: connecting, what it is, and removing what dead runs left behind.

Every container soak starts carries labels naming its run and the orchestrator
process that owns it (`soak.core.owner.Owner`: pid and start time, host, machine,
boot, pid namespace, session). A new run removes the containers whose owner
is provably dead, and a run removes its own; nothing else is touched.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

import docker
import docker.errors

from soak.core.errors import EnvironmentFailure
from soak.core.owner import LABEL_RUN, Owner

LABEL_VARIANT = "soak.variant"

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
    return Owner.current(run_id).labels()


@dataclass(frozen=True)
class RemovedContainer:
    name: str
    owner: Owner | None

    def describe(self) -> str:
        return f"container {self.name}" + (f" of {self.owner.describe()}" if self.owner else "")


def remove_dead_run_containers(client: docker.DockerClient) -> list[RemovedContainer]:
    """Remove soak containers whose orchestrator is provably dead (soak.core.owner); those removed.

    Containers of live orchestrators, of other hosts or pid namespaces, and
    containers with no owner recorded are kept.
    """
    return _remove_where(client, {"label": LABEL_RUN}, lambda owner: owner.is_dead())


def remove_run_containers(client: docker.DockerClient, run_id: str) -> list[RemovedContainer]:
    """Remove whatever is left of one run's containers (the run's own teardown)."""
    return _remove_where(
        client, {"label": f"{LABEL_RUN}={run_id}"}, lambda owner: owner.run_id == run_id
    )


def _remove_where(
    client: docker.DockerClient, filters: dict, predicate: Callable[[Owner], bool]
) -> list[RemovedContainer]:
    removed = []
    try:
        containers = client.containers.list(all=True, filters=filters)
    except docker.errors.APIError:
        return []
    for container in containers:
        owner = Owner.from_labels(container.labels)
        if owner is None or not predicate(owner):
            continue
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            continue  # gone meanwhile
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # "removal already in progress": someone else's doing
                continue
            raise
        removed.append(RemovedContainer(container.name, owner))
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
