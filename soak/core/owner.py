"""Who owns a server process or a container, and whether that owner is provably dead.

Every server soak starts carries its owner: the run (a random id), the soak
process (pid and that process's start time in clock ticks, so a recycled pid is
not mistaken for it), the machine, the boot and the pid namespace (so pids are
only ever judged where they mean something), and the session (`SOAK_SESSION`,
e.g. a test session or a CI job, inherited by every soak it starts).
Containers carry it as labels, processes as the `SOAK_OWNER` environment
variable (inherited by whatever the server forks).

Cleanup only ever removes what belongs to the current run, or what an owner
that is provably dead left behind: same machine and boot, same pid namespace,
and the pid gone or running another process (a different start time). Anything
else (another host, another namespace, a live owner, no owner recorded) is kept.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from soak.core.procfs import PROC, process_start_ticks

SESSION_ENV = "SOAK_SESSION"  # set by a test session or CI job: tags everything it starts
OWNER_ENV = "SOAK_OWNER"  # in each server process's environment

LABEL_RUN = "soak.run"
LABEL_PID = "soak.pid"
LABEL_PID_START = "soak.pid_start"
LABEL_HOST = "soak.host"
LABEL_MACHINE = "soak.machine"
LABEL_BOOT = "soak.boot"
LABEL_PIDNS = "soak.pidns"
LABEL_SESSION = "soak.session"

_MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")
_BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def machine_id() -> str:
    return next((m for m in map(_read_text, _MACHINE_ID_FILES) if m), "")


def boot_id() -> str:
    return _read_text(_BOOT_ID_FILE)


def pid_namespace() -> str:
    try:
        return os.readlink(f"{PROC}/self/ns/pid")
    except OSError:
        return ""


@dataclass(frozen=True)
class Owner:
    """The run and the soak process that started a server."""

    run_id: str
    pid: int | None
    pid_start: str = ""  # clock ticks since boot, as text; "" if not recorded
    host: str = ""
    machine: str = ""
    boot: str = ""
    pidns: str = ""
    session: str = ""

    @classmethod
    def current(cls, run_id: str) -> Owner:
        """This process, owning run `run_id`."""
        pid = os.getpid()
        return cls(
            run_id=run_id,
            pid=pid,
            pid_start=str(process_start_ticks(pid) or ""),
            host=socket.gethostname(),
            machine=machine_id(),
            boot=boot_id(),
            pidns=pid_namespace(),
            session=os.environ.get(SESSION_ENV, ""),
        )

    def labels(self) -> dict[str, str]:
        """Container labels (empty values left out)."""
        values = {
            LABEL_RUN: self.run_id,
            LABEL_PID: str(self.pid or ""),
            LABEL_PID_START: self.pid_start,
            LABEL_HOST: self.host,
            LABEL_MACHINE: self.machine,
            LABEL_BOOT: self.boot,
            LABEL_PIDNS: self.pidns,
            LABEL_SESSION: self.session,
        }
        return {k: v for k, v in values.items() if v}

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> Owner | None:
        """The owner recorded in labels (or the marker); None if no run is named."""
        run_id = labels.get(LABEL_RUN, "")
        if not run_id:
            return None
        try:
            pid: int | None = int(labels.get(LABEL_PID, ""))
        except ValueError:
            pid = None
        start = labels.get(LABEL_PID_START, "")
        return cls(
            run_id=run_id,
            pid=pid,
            pid_start="" if start == "None" else start,
            host=labels.get(LABEL_HOST, ""),
            machine=labels.get(LABEL_MACHINE, ""),
            boot=labels.get(LABEL_BOOT, ""),
            pidns=labels.get(LABEL_PIDNS, ""),
            session=labels.get(LABEL_SESSION, ""),
        )

    def marker(self) -> str:
        """The value of SOAK_OWNER in a server's environment."""
        return ";".join(f"{k}={v}" for k, v in self.labels().items())

    @classmethod
    def from_marker(cls, text: str) -> Owner | None:
        pairs = (item.partition("=") for item in text.split(";"))
        return cls.from_labels({k: v for k, _, v in pairs})

    def is_dead(self) -> bool:
        """True only if this owner provably no longer runs (see the module's doc)."""
        me = _here()
        if self.host and self.host != me.host:
            return False  # another machine's pids mean nothing here
        if self.machine and me.machine and self.machine != me.machine:
            return False
        if self.boot and me.boot and self.boot != me.boot:
            return True  # this machine rebooted since: every process of then is gone
        if self.pidns and me.pidns and self.pidns != me.pidns:
            return False  # a pid of another namespace: cannot be judged from here
        if self.pid is None:
            return False  # nobody recorded: not ours to judge
        start = process_start_ticks(self.pid)
        if start is None:
            return True  # no such process
        return bool(self.pid_start) and self.pid_start != str(start)  # the pid was reused

    def describe(self) -> str:
        return f"run {self.run_id}, soak pid {self.pid}"


@cache
def _here() -> Owner:
    """Where this process runs (host, machine, boot, pid namespace): fixed for its life."""
    return Owner.current("")


@dataclass(frozen=True)
class OrphanProcess:
    pid: int
    command: str
    owner: Owner

    def describe(self) -> str:
        return f"pid {self.pid} ({self.command}) of {self.owner.describe()}"


def owned_processes() -> list[OrphanProcess]:
    """This user's processes that carry a SOAK_OWNER marker (others' are not readable)."""
    found = []
    for entry in Path(PROC).iterdir():
        if entry.name.isdigit():
            marked = marked_process(int(entry.name))
            if marked is not None:
                found.append(marked)
    return found


def marked_process(pid: int) -> OrphanProcess | None:
    """The process `pid` with its SOAK_OWNER marker; None if it has none (or is gone)."""
    entry = Path(PROC) / str(pid)
    try:
        environ = (entry / "environ").read_bytes()
        command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    prefix = OWNER_ENV.encode() + b"="
    for item in environ.split(b"\0"):
        if item.startswith(prefix):
            owner = Owner.from_marker(item[len(prefix) :].decode(errors="replace"))
            return OrphanProcess(pid, command.strip()[:120], owner) if owner else None
    return None


def kill_processes(predicate: Callable[[Owner], bool]) -> list[OrphanProcess]:
    """SIGKILL the marked processes for which `predicate(owner)` holds; those killed.

    Race-free against pid reuse: the process is pinned with a pidfd, its marker
    is read again, and the signal goes through the pidfd.
    """
    killed = []
    for process in owned_processes():
        if process.pid == os.getpid() or not predicate(process.owner):
            continue
        try:
            fd = os.pidfd_open(process.pid)
        except OSError:
            continue  # gone already
        try:
            again = marked_process(process.pid)
            if again is None or again.owner != process.owner:
                continue
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
                killed.append(process)
        finally:
            os.close(fd)
    return killed


def kill_dead_runs_processes() -> list[OrphanProcess]:
    """Kill server processes (and what they forked) whose soak is provably dead."""
    return kill_processes(lambda owner: owner.is_dead())


def kill_run_processes(run_id: str) -> list[OrphanProcess]:
    """Kill what is left of this run's servers (e.g. a child that left its process group)."""
    return kill_processes(lambda owner: owner.run_id == run_id)
