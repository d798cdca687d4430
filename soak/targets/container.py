"""A TF Serving (or the stand-in) run as a Docker container, as in production.

The container runs the image's own entrypoint (tensorflow/serving's contract:
MODEL_NAME, MODEL_BASE_PATH, extra arguments appended) with host networking,
so the REST port is on 127.0.0.1 and no bridge network is needed. The private
model base path is bind-mounted read-only at /models/NAME: versions staged on
the host appear inside at once. With --metrics, soak's monitoring config is
bind-mounted read-only too, and the metrics page is on the REST port.

Memory: on a local engine the server process is read from the host's /proc
and its cgroup, like a process target. When the engine's processes are not in
this pid namespace (DOCKER_HOST, a socket from elsewhere) only the stats API
is there, so process figures are approximated from the container's cgroup.
CPU time (`cpu_s`): a v2 cgroup's cpu.stat (the entrypoint's wrapper included, as
Kubernetes counts a container), else the server process's /proc/PID/stat; the stats
API's total usage on a remote engine.
Any engine still has to see the model's path and share 127.0.0.1 with soak:
bind mount and host networking are on the engine's machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import docker
import docker.errors
import psutil
from docker.models.containers import Container

from soak.core import interrupts
from soak.core.errors import EnvironmentFailure
from soak.core.procfs import (
    cgroup_memory,
    find_cgroup_memory_dir,
    namespace_pid,
    paths_in_maps,
    read_cgroup_cpu_s,
    read_cgroup_memory,
    read_mapped_paths,
    read_proc_cpu_s,
    read_proc_memory,
    read_smaps_rollup,
)
from soak.store.records import CGROUP_MEMORY_COLUMNS, CPU_COLUMNS, PROCESS_MEMORY_COLUMNS
from soak.targets import probe_library
from soak.targets.base import LaunchSpec, Target
from soak.targets.docker_engine import LABEL_VARIANT, is_local, owner_labels

CONTAINER_MODELS_DIR = "/models"
# soak's monitoring config (--metrics), mounted read-only beside the models.
CONTAINER_MONITORING_CONFIG = "/etc/soak/monitoring_config.txt"
STOP_TIMEOUT_S = 10
SIGTERM_REPEAT_S = 1.0
LOG_FLUSH_JOIN_S = 5.0
# How long start() waits for the server process to appear behind the entrypoint.
SERVER_PROCESS_WAIT_S = 15.0
# Executables that only start the server (tensorflow/serving's entrypoint does not
# `exec`, and `--init` puts docker-init first): the server is their only child.
WRAPPERS = {"bash", "sh", "dash", "docker-init", "tini", "dumb-init"}

# The same walk inside the container, for a remote engine: from pid 1 down
# through wrappers to the server, then its maps.
_REMOTE_MAPS_SCRIPT = r"""
p=1
while :; do
  case "$(readlink /proc/$p/exe)" in
    */bash|*/sh|*/dash|*/docker-init|*/tini|*/dumb-init) ;;
    *) break ;;
  esac
  set -- $(cat /proc/$p/task/$p/children 2>/dev/null)
  [ $# -eq 1 ] || break
  p=$1
done
cat /proc/$p/maps
"""


class ContainerTarget(Target):
    """One variant's server in a container labelled with its run, variant and owner."""

    def __init__(
        self,
        spec: LaunchSpec,
        client: docker.DockerClient,
        image: str,
        run_id: str,
        memory_limit_bytes: int | None = None,
        cpuset_cpus: str | None = None,
        *,
        local: bool | None = None,
    ):
        """`local` None: read memory from /proc when the engine is on this host."""
        self.spec = spec
        self.client = client
        self.image = image
        self.run_id = run_id
        self.memory_limit_bytes = memory_limit_bytes
        self.cpuset_cpus = cpuset_cpus
        self.local = is_local(client) if local is None else local
        self.rest_url = f"http://127.0.0.1:{spec.rest_port}"
        self.container: Container | None = None
        self._server: psutil.Process | None = None  # on the host, local engines only
        self._cgroup_dir: Path | None = None
        self._cpu_cgroup_dir: Path | None = None  # v2: CPU from its cpu.stat, else /proc
        self._log_thread: threading.Thread | None = None
        self._log_error: Exception | None = None
        self._final_state: dict | None = None
        self._stopping = False  # stop() was called: an exit from now on is ours
        self._started = False  # a container was created (it may be gone since)

    @property
    def server_pid(self) -> int | None:
        """The server's pid on the host (local engines), once start() found it."""
        return self._server.pid if self._server else None

    @property
    def container_model_path(self) -> str:
        return f"{CONTAINER_MODELS_DIR}/{self.spec.model_name}"

    def server_args(self) -> list[str]:
        """Arguments after the entrypoint's own: ports (host networking) and the user's.

        The entrypoint passes --model_name and --model_base_path from the
        environment; the ports it passes are overridden by these (last wins).
        """
        return [
            f"--port={self.spec.grpc_port}",
            f"--rest_api_port={self.spec.rest_port}",
            *self.spec.monitoring_flags(CONTAINER_MONITORING_CONFIG),
            *self.spec.server_args,
        ]

    def volumes(self) -> dict[str, dict[str, str]]:
        """The model base path at /models/NAME, and soak's monitoring config if any."""
        mounts = {
            str(Path(self.spec.base_path).resolve()): {
                "bind": self.container_model_path,
                "mode": "ro",
            }
        }
        if self.spec.monitoring_config is not None:
            config = str(Path(self.spec.monitoring_config).resolve())
            mounts[config] = {"bind": CONTAINER_MONITORING_CONFIG, "mode": "ro"}
        if self.spec.probe_socket_dir is not None:  # the probe listens in here
            sockets = str(Path(self.spec.probe_socket_dir).resolve())
            mounts[sockets] = {"bind": probe_library.CONTAINER_SOCKET_DIR, "mode": "rw"}
        return mounts

    def environment(self) -> dict[str, str]:
        return {
            "MODEL_NAME": self.spec.model_name,
            "MODEL_BASE_PATH": CONTAINER_MODELS_DIR,
            # read by newer tensorflow/serving entrypoints (and the stand-in's)
            "GRPC_PORT": str(self.spec.grpc_port),
            "PORT": str(self.spec.rest_port),
            **self.spec.env,
            **self._probe_env(),
        }

    def _probe_env(self) -> dict[str, str]:
        if self.spec.probe_socket_dir is None:
            return {}
        socket = probe_library.socket_template(probe_library.CONTAINER_SOCKET_DIR)
        return {probe_library.SOCKET_ENV: socket}

    def start(self) -> None:
        labels = {**owner_labels(self.run_id), LABEL_VARIANT: self.spec.variant}
        try:
            # Never containers.run(): it pulls a missing image, and there is no registry.
            self.client.images.get(self.image)
            with interrupts.shielded():  # a container created is a container known, to remove
                self.container = self.client.containers.create(
                    self.image,
                    command=self.server_args(),
                    name=_container_name(self.run_id, self.spec.variant),
                    network_mode="host",
                    environment=self.environment(),
                    volumes=self.volumes(),
                    labels=labels,
                    mem_limit=self.memory_limit_bytes,
                    # no swap: a container at its limit is OOM-killed, as in production
                    memswap_limit=self.memory_limit_bytes,
                    cpuset_cpus=self.cpuset_cpus,
                )
                self._started = True
                self.container.start()
        except docker.errors.ImageNotFound:
            raise EnvironmentFailure(
                f"image {self.image} not found locally (no registry reachable); "
                "build it or use --image standin"
            ) from None
        except docker.errors.APIError as exc:
            self._remove_quietly()
            raise EnvironmentFailure(
                f"cannot start a container of {self.image}: {exc.explanation or exc}"
            ) from None
        self._start_log_thread()
        if self.local:
            self._server = self._wait_for_server()
            if self._server is not None:
                self._cgroup_dir = find_cgroup_memory_dir(self._server.pid)
                if self._cgroup_dir is not None and (self._cgroup_dir / "cpu.stat").is_file():
                    self._cpu_cgroup_dir = self._cgroup_dir  # v2 (a v1 memory dir has none)

    def memory_columns(self) -> tuple[str, ...]:
        return PROCESS_MEMORY_COLUMNS + CGROUP_MEMORY_COLUMNS + CPU_COLUMNS

    @property
    def reads_memory_locally(self) -> bool:  # type: ignore[override]
        return self.local

    def read_memory(self) -> dict[str, float]:
        if not self.local:
            return self._read_memory_stats()
        pid = self.server_pid
        if pid is None:
            raise ProcessLookupError(f"no server process in container {self._name()}")
        values: dict[str, float] = {**read_proc_memory(pid)}
        if self._cgroup_dir is not None:
            values.update(read_cgroup_memory(self._cgroup_dir))
        cpu_s = None if self._cpu_cgroup_dir is None else read_cgroup_cpu_s(self._cpu_cgroup_dir)
        values["cpu_s"] = read_proc_cpu_s(pid) if cpu_s is None else cpu_s
        return values

    def mapped_paths(self) -> set[str]:
        if self.local and self.server_pid is not None:
            return read_mapped_paths(self.server_pid)
        result = self._require_container().exec_run(["sh", "-c", _REMOTE_MAPS_SCRIPT])
        if result.exit_code != 0:
            raise ProcessLookupError(f"cannot read the server's maps in {self._name()}")
        return paths_in_maps(result.output.decode(errors="replace"))

    def probe_socket(self) -> str:
        """The server's socket in the host dir mounted at CONTAINER_SOCKET_DIR, named by
        the pid the server sees (its pid namespace's)."""
        if self.spec.probe_socket_dir is None:
            raise probe_library.ProbeUnavailable("no probe preloaded")
        if not self.local or self.server_pid is None:
            raise probe_library.ProbeUnavailable(
                "the engine's processes are not on this host: its socket is out of reach"
            )
        pid = namespace_pid(self.server_pid)
        return probe_library.socket_path(Path(self.spec.probe_socket_dir).resolve(), pid)

    def read_breakdown(self) -> dict[str, int]:
        if not self.local or self.server_pid is None:
            raise probe_library.ProbeUnavailable("the server's /proc is not on this host")
        return read_smaps_rollup(self.server_pid)

    def exit_reason(self) -> str | None:
        if not self._started:
            return None
        if self._server is not None and _running(self._server):
            return None  # cheap: no API call at the samplers' rate
        state = self._state()
        if state is None:
            return "container removed from outside (docker rm?) while it ran"
        if state.get("Running"):
            return None
        return _describe_exit(state, stopped_by_us=self._stopping)

    def stop(self, graceful: bool = True) -> None:
        """Stop and remove the container, its log written to spec.log_path; idempotent.

        SIGTERM to the server (and to pid 1), up to STOP_TIMEOUT_S for it to exit
        (none when not graceful or forced), then SIGKILL, then removal. A container that
        someone else removed meanwhile is fine.
        """
        container = self.container
        if container is None:
            return
        self._stopping = True
        deadline = time.monotonic() + (STOP_TIMEOUT_S if graceful else 0)
        while not interrupts.forced() and time.monotonic() < deadline:
            # Again every second: a server still starting may not handle SIGTERM yet (as
            # pid 1 of its container, a signal without a handler is dropped, not fatal).
            self._send_sigterm(container)
            if interrupts.wait_until(
                lambda: not (self._safe_state() or {}).get("Running"),
                min(SIGTERM_REPEAT_S, max(0.0, deadline - time.monotonic())),
                poll_s=0.2,
            ):
                break
        if (self._safe_state() or {}).get("Running"):
            with contextlib.suppress(docker.errors.APIError):
                container.kill()  # SIGKILL: its output stream ends, the log thread with it
            interrupts.wait_until(lambda: not (self._safe_state() or {}).get("Running"), 2.0)
        final = self._safe_state()
        self.container = None
        self._final_state = final or self._final_state
        if self._log_thread is not None:
            self._log_thread.join(0 if interrupts.forced() else LOG_FLUSH_JOIN_S)
        if self._log_thread is None or self._log_thread.is_alive() or self._log_error:
            self._dump_logs(container)  # stopped before the log was followed, or it failed
        _remove(container)
        self._server = None

    def describe(self) -> dict:
        facts = {
            "image": self.image,
            "container_name": _container_name(self.run_id, self.spec.variant),
            "container_args": self.server_args(),
            "container_env": self.environment(),
            "model_mount": self.container_model_path,
            "memory_limit_bytes": self.memory_limit_bytes,
            "cpuset_cpus": self.cpuset_cpus,
            "memory_source": "proc+cgroup" if self.local else "docker stats API",
            "cpu_source": self._cpu_source(),
            "container_id": self.container.id if self.container is not None else None,
        }
        with contextlib.suppress(docker.errors.APIError):
            facts["image_id"] = self.client.images.get(self.image).id
            facts["engine_version"] = self.client.version().get("Version")
        return facts

    # --- internals ----------------------------------------------------------------

    def _name(self) -> str:
        return _container_name(self.run_id, self.spec.variant)

    def _require_container(self) -> Any:
        if self.container is None:
            raise ProcessLookupError(f"container {self._name()} is not running")
        return self.container

    def _state(self) -> dict | None:
        """The container's state; None once it is gone (or being removed by someone)."""
        container = self.container
        if container is None:
            return self._final_state
        try:
            container.reload()
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # removal in progress
                return None
            raise
        return container.attrs.get("State")

    def _send_sigterm(self, container: Container) -> None:
        if self._server is not None:
            # `docker stop` signals pid 1 only; tensorflow/serving's entrypoint is a bash
            # that does not pass SIGTERM on, which would cost the full timeout.
            with contextlib.suppress(psutil.NoSuchProcess):
                self._server.send_signal(signal.SIGTERM)  # psutil checks pid reuse
        with contextlib.suppress(docker.errors.APIError):
            container.kill(signal="SIGTERM")

    def _safe_state(self) -> dict | None:
        try:
            return self._state()
        except docker.errors.APIError:
            return None

    def _wait_for_server(self) -> psutil.Process | None:
        """The server behind the entrypoint, seen from the host; None if it exited first."""
        found: list[psutil.Process | None] = []

        def seen() -> bool:
            state = self._state()
            if not state or not state.get("Running"):
                found.append(None)
            elif (server := _server_process(int(state["Pid"]))) is not None:
                found.append(server)
            return bool(found)

        if interrupts.wait_until(seen, SERVER_PROCESS_WAIT_S, poll_s=0.05):
            return found[0]
        pid = int((self._state() or {}).get("Pid") or 0)  # a wrapper with no single child
        if pid:
            with contextlib.suppress(psutil.NoSuchProcess):
                return psutil.Process(pid)
        return None

    def _cpu_source(self) -> str:
        """Where `cpu_s` comes from (environment.json)."""
        if not self.local:
            return "docker stats API (the container's cgroup)"
        if self._cpu_cgroup_dir is not None:
            return "cgroup v2 cpu.stat (the container)"
        return "/proc/PID/stat (the server process)"

    def _read_memory_stats(self) -> dict[str, float]:
        """Figures from the stats API (remote engines), all from the container's cgroup."""
        stats = self._require_container().stats(stream=False, one_shot=True)
        memory = stats.get("memory_stats") or {}
        raw = memory.get("stats")
        if not raw:
            raise ProcessLookupError(f"container {self._name()} has no memory stats (exited?)")
        cgroup = cgroup_memory(raw, memory.get("usage", 0))
        values: dict[str, float] = {
            "rss_bytes": cgroup.anon_bytes + cgroup.file_mapped_bytes,
            "anon_bytes": cgroup.anon_bytes,
            **cgroup.columns(),
        }
        cpu_ns = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
        if cpu_ns is not None:  # nanoseconds, user + system
            values["cpu_s"] = cpu_ns / 1e9
        return values

    def _start_log_thread(self) -> None:
        """Follow the container's output into server.log, so a crash loses nothing."""
        container = self.container
        if self.spec.log_path is None or container is None:
            return
        log_path = Path(self.spec.log_path)

        def follow() -> None:
            try:
                with open(log_path, "ab") as log:
                    for chunk in container.logs(stream=True, follow=True):
                        log.write(chunk)
                        log.flush()
            except Exception as exc:  # the final dump in stop() takes over
                self._log_error = exc

        self._log_thread = threading.Thread(target=follow, name="soak-container-log", daemon=True)
        self._log_thread.start()

    def _remove_quietly(self) -> None:
        container, self.container = self.container, None
        self._started = False
        if container is not None:
            _remove(container)

    def _dump_logs(self, container: Container) -> None:
        if self.spec.log_path is None:
            return
        with contextlib.suppress(docker.errors.APIError):
            output = container.logs()
            Path(self.spec.log_path).write_bytes(output)


def _container_name(run_id: str, variant: str) -> str:
    """A readable, valid container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)."""
    raw = f"soak-{run_id}-{variant}"
    return "".join(c if c.isalnum() or c in "_.-" else "-" for c in raw)


def _server_process(pid: int) -> psutil.Process | None:
    """Follow wrappers down to the server; None while a wrapper has not started it yet."""
    try:
        process = psutil.Process(pid)
        while os.path.basename(process.exe()) in WRAPPERS:
            children = process.children()
            if len(children) != 1:
                return None if not children else process
            process = children[0]
        return process
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _remove(container: Container) -> None:
    """Remove with force; gone already, or being removed by someone else, is fine."""
    with contextlib.suppress(docker.errors.NotFound):
        try:
            container.remove(force=True)
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: "removal ... is already in progress"
                raise


def _describe_exit(state: dict, stopped_by_us: bool = False) -> str:
    code = state.get("ExitCode")
    if state.get("OOMKilled"):
        return f"OOMKilled (exit {code})"
    error = state.get("Error")
    if code == 137 and not stopped_by_us and not error:
        return "killed by SIGKILL from outside (exit 137: docker kill, docker rm -f?)"
    return f"exited with code {code}" + (f": {error}" if error else "")
