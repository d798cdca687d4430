"""A TF Serving (or the stand-in) started as a local process."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
from typing import BinaryIO

from soak.core import interrupts
from soak.core.errors import EnvironmentFailure
from soak.core.owner import OWNER_ENV, Owner
from soak.core.procfs import ProcFiles, read_mapped_paths, read_smaps_rollup
from soak.store.records import CPU_COLUMNS, PROCESS_MEMORY_COLUMNS
from soak.targets import probe_library
from soak.targets.base import LaunchSpec, Target

STOP_TIMEOUT_S = 10.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class ProcessTarget(Target):
    """`--server-binary` with TF Serving's flags, in its own process group."""

    def __init__(
        self,
        spec: LaunchSpec,
        binary: str,
        cpus: set[int] | None = None,
        owner: Owner | None = None,
    ):
        self.spec = spec
        self.binary = binary
        self.cpus = cpus  # pin the server (and its threads) to these CPUs
        self.owner = owner  # marked in the server's environment (soak.core.owner)
        self.rest_url = f"http://127.0.0.1:{spec.rest_port}"
        self._proc: subprocess.Popen | None = None
        self._files: ProcFiles | None = None  # the server's /proc files, open while it runs
        self._log: BinaryIO | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def command(self) -> list[str]:
        return [self.binary, *self.spec.tf_serving_flags(str(self.spec.base_path))]

    def start(self) -> None:
        env = {**os.environ, **self.spec.env}
        if self.spec.probe_socket_dir is not None:
            env[probe_library.SOCKET_ENV] = probe_library.socket_template(
                self.spec.probe_socket_dir
            )
        if self.owner is not None:
            env[OWNER_ENV] = self.owner.marker()
        parent = os.getpid()
        with interrupts.shielded():  # a server started is a server known, to be stopped
            log = open(self.spec.log_path or os.devnull, "ab")  # noqa: SIM115 (closed in stop)
            self._log = log
            try:
                self._proc = subprocess.Popen(
                    self.command(),
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    preexec_fn=lambda: self._in_child(parent),
                )
            except OSError as exc:
                log.close()
                raise EnvironmentFailure(f"cannot start {self.binary}: {exc.strerror}") from None

    def _in_child(self, parent: int) -> None:
        _die_with_parent(parent)
        if self.cpus:
            os.sched_setaffinity(0, self.cpus)

    def memory_columns(self) -> tuple[str, ...]:
        return PROCESS_MEMORY_COLUMNS + CPU_COLUMNS

    def read_memory(self) -> dict[str, float]:
        if self._files is None:
            self._files = ProcFiles(self._started_pid())
        return self._files.read()

    def mapped_paths(self) -> set[str]:
        return read_mapped_paths(self._started_pid())

    def probe_socket(self) -> str:
        if self.spec.probe_socket_dir is None:
            raise probe_library.ProbeUnavailable("no probe preloaded")
        return probe_library.socket_path(self.spec.probe_socket_dir, self._started_pid())

    def read_breakdown(self) -> dict[str, int]:
        return read_smaps_rollup(self._started_pid())

    def _started_pid(self) -> int:
        if self._proc is None:
            raise ProcessLookupError(f"{self.binary} is not started")
        return self._proc.pid

    def exit_reason(self) -> str | None:
        code = self._proc.poll() if self._proc else None
        if code is None:
            return None
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def stop(self, graceful: bool = True) -> None:
        """SIGTERM the process group, SIGKILL after a grace period (at once when forced)."""
        proc = self._proc
        if proc and proc.poll() is None:
            if graceful and not interrupts.forced():
                _signal_group(proc.pid, signal.SIGTERM)
                interrupts.wait_until(lambda: proc.poll() is not None, STOP_TIMEOUT_S)
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._proc:
            # children the server may have left in its group
            _signal_group(self._proc.pid, signal.SIGKILL)
        if self._log and not self._log.closed:
            self._log.close()
        if self._files is not None:
            self._files.close()

    def describe(self) -> dict:
        return {
            "pid": self.pid,
            "cpus": sorted(self.cpus) if self.cpus else None,
            "server_binary": self.binary,
            "server_command": self.command(),
            "server_env": self.spec.env,
        }


def _die_with_parent(parent: int) -> None:
    """In the child: SIGKILL it if soak itself is killed, so no server outlives a run.

    If soak died between fork and prctl, the child was already reparented: exit.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
