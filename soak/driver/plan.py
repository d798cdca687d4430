"""The run plan: everything a run needs, resolved and checked before anything starts.

`prepare(config)` turns a resolved `RunConfig` (pure: what the user asked
for) into a frozen `RunPlan` (what this machine will do): the model versions
to cycle, the server binary and CPU set or the Docker client and image, each
variant's allocator library, ports, flags and environment. Every check of the
environment happens here, so a run that starts has what it needs; the
orchestrator only executes the plan.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soak.config import node_size
from soak.config.allocators import purge_delay_s
from soak.config.settings import DEFAULT_SERVER_BINARY, RunConfig, VariantSpec
from soak.core.errors import UsageError
from soak.core.extras import standin_hint, tensorflow_installed
from soak.core.owner import Owner, kill_dead_runs_processes, kill_run_processes
from soak.core.procfs import parse_cpu_list
from soak.driver.model_versions import ModelSource, cached_demo_model, resolve_model
from soak.targets import probe_library
from soak.targets.allocators import container_library, find_library, preload_env
from soak.targets.base import LaunchSpec, Target
from soak.targets.ports import free_ports

if TYPE_CHECKING:
    import docker

Message = Callable[[str], None]


@dataclass(frozen=True)
class VariantPlan:
    """One variant as it will be started: its library, ports, flags and environment."""

    spec: VariantSpec
    library: str | None  # LD_PRELOAD path as the server sees it; None for glibc
    rest_port: int
    grpc_port: int
    server_args: tuple[str, ...]  # the run's, then the variant's
    env: Mapping[str, str]  # the variant's, plus LD_PRELOAD
    purge_delay_s: float  # memory cannot settle sooner (allocator_specs.purge_delay_s)
    split: int = 1  # parts per predict request: the variant's --split, else the run's
    cpus: str | None = None  # the CPUs of its server: the variant's --cpus, else the run's
    probe: str | None = None  # the probe's library as the server sees it (in LD_PRELOAD)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def allocator(self) -> str:
        return self.spec.allocator

    def launch_spec(
        self,
        model_name: str,
        base_path: Path,
        log_path: Path,
        monitoring_config: Path | None = None,
        probe_socket_dir: Path | None = None,
    ) -> LaunchSpec:
        return LaunchSpec(
            variant=self.name,
            model_name=model_name,
            base_path=base_path,
            rest_port=self.rest_port,
            grpc_port=self.grpc_port,
            server_args=list(self.server_args),
            env=dict(self.env),
            log_path=log_path,
            monitoring_config=monitoring_config,
            probe_socket_dir=probe_socket_dir if self.probe else None,
            cpus=self.cpus,
        )


@dataclass(frozen=True)
class ProcessBackend:
    """Servers as local processes: the binary, found (each variant's CPUs: its LaunchSpec)."""

    server_binary: str

    name = "process"

    def make_target(self, spec: LaunchSpec, run_id: str) -> Target:
        from soak.targets.process import ProcessTarget

        return ProcessTarget(
            spec,
            self.server_binary,
            set(parse_cpu_list(spec.cpus)) if spec.cpus else None,
            owner=Owner.current(run_id),
        )

    def remove_run_leftovers(self, run_id: str) -> list[str]:
        """Kill what is left of this run's servers (children that left the group)."""
        return [p.describe() for p in kill_run_processes(run_id)]

    def facts(self) -> dict[str, Any]:
        return {"server_binary": self.server_binary, "image": None}


@dataclass(frozen=True)
class DockerBackend:
    """Servers as containers: a reachable engine and an image present on it."""

    client: docker.DockerClient = field(repr=False)
    image: str  # the resolved tag (the stand-in or the allocator layer when built)
    memory_limit_bytes: int | None
    engine: Mapping[str, Any]  # engine facts for environment.json

    name = "docker"

    def make_target(self, spec: LaunchSpec, run_id: str) -> Target:
        from soak.targets.container import ContainerTarget

        return ContainerTarget(
            spec,
            self.client,
            self.image,
            run_id,
            memory_limit_bytes=self.memory_limit_bytes,
            cpuset_cpus=spec.cpus,
        )

    def facts(self) -> dict[str, Any]:
        return {"server_binary": None, "image": self.image, "docker": dict(self.engine)}

    def remove_run_leftovers(self, run_id: str) -> list[str]:
        """Remove whatever containers of this run are left (the run's own teardown)."""
        from soak.targets.docker_engine import remove_run_containers

        return [c.describe() for c in remove_run_containers(self.client, run_id)]


@dataclass(frozen=True)
class RunPlan:
    config: RunConfig
    run_id: str
    run_dir: Path
    model: ModelSource
    backend: ProcessBackend | DockerBackend
    variants: tuple[VariantPlan, ...]
    removed_leftovers: tuple[str, ...] = ()  # what dead runs left, removed by prepare()
    probe_off: str | None = None  # why no variant has the allocator probe (None: they have)


def prepare(config: RunConfig, message: Message = lambda text: None) -> RunPlan:
    """Resolve and check everything `config` needs on this machine.

    Raises UsageError (exit 2) for what the user can fix in the command
    (a server binary not found, CPUs not usable here, a missing extra), and
    EnvironmentFailure (exit 3) for the environment (allocator library not
    installed, Docker unreachable, image missing).
    """
    problems = _missing_extra(config) + _usage_problems(config)
    if problems:
        raise UsageError("; ".join(problems))
    server_binary = find_server_binary(config.server_binary) or config.server_binary
    libraries = {v.name: _library(config, v) for v in config.variants}
    if config.model is None:
        message(f"using the demo model ({config.demo_size_mb:g} MiB, generated once)")
    model = resolve_model(config.model, config.demo_size_mb)
    removed = [f"server {p.describe()}" for p in kill_dead_runs_processes()]
    backend: ProcessBackend | DockerBackend
    if config.backend == "docker":
        backend, containers = _docker_backend(config, message)
        removed += containers
    else:
        backend = ProcessBackend(server_binary)
    probe, probe_off = _probe(config, backend)
    ports = iter(free_ports(2 * len(config.variants)))
    variants = tuple(
        VariantPlan(
            spec=v,
            library=libraries[v.name],
            rest_port=next(ports),
            grpc_port=next(ports),
            server_args=(*node_size.run_server_args(config), *v.server_args),
            env={**node_size.variant_env(config, v), **preload_env(libraries[v.name], probe)},
            purge_delay_s=purge_delay_s(v.allocator, v.env),
            split=v.split or config.split,
            cpus=v.cpus or config.cpus,
            probe=probe,
        )
        for v in config.variants
    )
    return RunPlan(
        config=config,
        run_id=uuid.uuid4().hex[:12],
        run_dir=Path(config.out),
        model=model,
        backend=backend,
        variants=variants,
        removed_leftovers=tuple(removed),
        probe_off=probe_off,
    )


def find_server_binary(name: str) -> str | None:
    """A path or a name on PATH; also the venv's bin dir of this interpreter."""
    if "/" in name:
        return name if Path(name).is_file() else None
    return shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))


def _missing_extra(config: RunConfig) -> list[str]:
    """What of the `standin` extra this run needs and does not have."""
    if tensorflow_installed():
        return []
    needs = []
    if config.model is None and cached_demo_model(config.demo_size_mb) is None:
        needs.append("the demo model (no --model given)")
    if config.backend == "process" and config.server_binary == DEFAULT_SERVER_BINARY:
        needs.append("the stand-in server (process backend, no --server-binary)")
    if not needs:
        return []
    verb = "needs" if len(needs) == 1 else "need"
    return [f"run needs {' and '.join(needs)}, which {verb} TensorFlow: {standin_hint()}"]


def _usage_problems(config: RunConfig) -> list[str]:
    problems = []
    if config.backend == "process":
        if find_server_binary(config.server_binary) is None:
            problems.append(f"server binary not found: {config.server_binary}")
        for name, cpus in (
            ("cpus", config.cpus),
            ("neighbour_cpus", config.neighbour_cpus),
            *((f"cpus of variant {v.name}", v.cpus) for v in config.variants),
        ):
            unusable = sorted(parse_cpu_list(cpus) - os.sched_getaffinity(0)) if cpus else []
            if unusable:
                problems.append(f"{name} {unusable} are not usable here")
    return problems


def _probe(
    config: RunConfig, backend: ProcessBackend | DockerBackend
) -> tuple[str | None, str | None]:
    """(the probe's library as the servers see it, None) or (None, why it is off).

    Never an error: without the probe the run measures the same, it only cannot
    tell live data from memory the allocator holds.
    """
    if not config.probe:
        return None, "--no-probe"
    if isinstance(backend, DockerBackend):
        from soak.targets.images import holds_probe

        if not holds_probe(backend.client, backend.image):
            return None, (
                f"{backend.image} has no {probe_library.LIBRARY_NAME} (soak builds it into "
                "the stand-in and into its allocator layer, used when a variant needs an "
                "allocator other than glibc)"
            )
        return probe_library.CONTAINER_LIBRARY, None
    try:
        return str(probe_library.host_library()), None
    except probe_library.ProbeUnavailable as exc:
        return None, str(exc)


def _library(config: RunConfig, variant: VariantSpec) -> str | None:
    """The allocator's library as the server sees it (a missing one: EnvironmentFailure)."""
    if variant.library:
        return variant.library
    if variant.allocator == "glibc":
        return None
    if config.backend == "docker":
        return container_library(variant.allocator)
    return str(find_library(variant.allocator))


def _docker_backend(config: RunConfig, message: Message) -> tuple[DockerBackend, list[str]]:
    """Connect, clear leftovers of dead runs (their descriptions), resolve (or build) the image."""
    from soak.targets.docker_engine import connect, engine_facts, remove_dead_run_containers
    from soak.targets.images import image_for_allocators

    client = connect()
    removed = [c.describe() for c in remove_dead_run_containers(client)]
    allocators = [v.allocator for v in config.variants if not v.library]
    image = image_for_allocators(client, config.image, allocators, progress=message)
    backend = DockerBackend(
        client=client,
        image=image,
        memory_limit_bytes=config.memory_limit_bytes,
        engine=engine_facts(client),
    )
    return backend, removed
