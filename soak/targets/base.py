"""What every target offers the swap driver and the samplers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from soak.targets.monitoring import FLAG as MONITORING_FLAG
from soak.targets.probe_library import ProbeUnavailable


@dataclass(frozen=True)
class LaunchSpec:
    """Everything needed to start one variant's server, backend-neutral."""

    variant: str
    model_name: str
    base_path: Path  # host path of the private model base path
    rest_port: int
    grpc_port: int
    server_args: list[str] = field(default_factory=list)  # verbatim, after soak's own flags
    env: dict[str, str] = field(default_factory=dict)  # includes LD_PRELOAD for the allocator
    log_path: Path | None = None
    monitoring_config: Path | None = None  # host path of soak's config for --metrics
    probe_socket_dir: Path | None = None  # host dir of the probe's sockets (None: no probe)
    cpus: str | None = None  # pin the server to these CPUs (cpuset syntax; None: any)

    def tf_serving_flags(self, model_base_path: str) -> list[str]:
        """The flags TF Serving is driven with; `model_base_path` as the server sees it."""
        return [
            f"--port={self.grpc_port}",
            f"--rest_api_port={self.rest_port}",
            f"--model_name={self.model_name}",
            f"--model_base_path={model_base_path}",
            *self.monitoring_flags(str(self.monitoring_config)),
            *self.server_args,
        ]

    def monitoring_flags(self, config_path: str) -> list[str]:
        """--monitoring_config_file when soak gives one; `config_path` as the server sees it."""
        if self.monitoring_config is None:
            return []
        return [f"{MONITORING_FLAG}={config_path}"]


class Target(ABC):
    """A running TF Serving, seen from outside: REST URL, memory, maps, exit."""

    rest_url: str
    # Whether read_memory() reads files on this host (microseconds; else an API call of
    # milliseconds, which must not share the prober's thread).
    reads_memory_locally = True

    @abstractmethod
    def start(self) -> None:
        """Start the server; raise EnvironmentFailure if it cannot start."""

    @abstractmethod
    def memory_columns(self) -> tuple[str, ...]:
        """The MemorySample fields this target fills."""

    @abstractmethod
    def read_memory(self) -> Mapping[str, float]:
        """One cheap reading: {column: value} for `memory_columns()`.

        The memory columns in bytes (ints); "cpu_s" the server's cumulative CPU seconds
        (user + system) so far, a float, left out when the target cannot tell.
        """

    @abstractmethod
    def mapped_paths(self) -> set[str]:
        """File paths mapped into the server process (for allocator verification)."""

    @abstractmethod
    def exit_reason(self) -> str | None:
        """None while the server runs; else why it stopped (exit code, OOMKilled...)."""

    @abstractmethod
    def stop(self, graceful: bool = True) -> None:
        """Stop the server and remove what was started; safe to call twice.

        `graceful`: SIGTERM and a grace period first; False (a server that never
        served, or a forced stop) kills it at once.
        """

    def __enter__(self) -> Self:
        """`with target:` starts it, and stops it (removing what it started) in any case,
        also when starting fails halfway."""
        try:
            self.start()
        except BaseException:
            self.stop(graceful=False)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def describe(self) -> dict:
        """Facts for environment.json (binary, image, flags)."""
        return {}

    def probe_socket(self) -> str:
        """The host path of the server's probe socket; ProbeUnavailable when it has none."""
        raise ProbeUnavailable("this target cannot reach the probe")

    def read_breakdown(self) -> dict[str, int]:
        """The server's /proc/PID/smaps_rollup figures (`procfs.read_smaps_rollup`)."""
        raise ProbeUnavailable("this target cannot read the server's smaps_rollup")
