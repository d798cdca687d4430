"""The kernel's view of a process: /proc and its cgroup, read as plain files.

The readers are pure functions over the kernel's files (a read or two, no
subprocess) so that targets can call them about 10 times a second. They sit
below targets and samplers: targets read their server with them, nothing here
knows about either.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
KIB = 1024

_STATUS_FIELDS = {b"VmRSS:": "rss_bytes", b"RssAnon:": "anon_bytes"}


# --- processes ----------------------------------------------------------------------


def read_proc_memory(pid: int) -> dict[str, int]:
    """{"rss_bytes", "anon_bytes"} of a process: VmRSS and RssAnon of /proc/PID/status.

    Raises ProcessLookupError when the process is gone or is a zombie (no memory lines).
    Read with one open and read and found by search, not by splitting every line: it
    runs 10 times a second for hours (benchmarks/sampler_cost.py).
    """
    return _memory_figures(_read_once(f"{PROC}/{pid}/status", pid, 16384), pid)


def read_proc_cpu_s(pid: int) -> float:
    """CPU seconds a process has used so far (user + system, all its threads).

    Fields 14 and 15 (utime, stime) of /proc/PID/stat, in clock ticks (SC_CLK_TCK, 100
    a second on Linux: a 10 ms resolution). Raises ProcessLookupError when the process is
    gone. One read, one split of the short tail: it runs 10 times a second for hours.
    """
    return _cpu_seconds(_read_once(f"{PROC}/{pid}/stat", pid, 4096))


class ProcFiles:
    """A process's /proc status and stat, opened once and read again in place.

    A read at offset 0 (pread) makes the kernel write the file anew, so each reading
    is two system calls, without a path lookup and an open and close per file: the
    memory sampler reads 10 times a second for hours, on the thread that also sends
    the prober's requests. Thread-safe: close() may come while the sampler reads.
    """

    def __init__(self, pid: int):
        self.pid = pid
        self._lock = threading.Lock()
        try:
            self._status = os.open(f"{PROC}/{pid}/status", os.O_RDONLY)
        except FileNotFoundError:
            raise ProcessLookupError(f"process {pid} is gone") from None
        try:
            self._stat: int | None = os.open(f"{PROC}/{pid}/stat", os.O_RDONLY)
        except FileNotFoundError:
            os.close(self._status)
            raise ProcessLookupError(f"process {pid} is gone") from None

    def read(self) -> dict[str, float]:
        """`read_proc_memory`'s figures and `read_proc_cpu_s` as "cpu_s"."""
        with self._lock:
            if self._stat is None:
                raise ProcessLookupError(f"process {self.pid} is no longer read (closed)")
            try:
                status = os.pread(self._status, 16384, 0)
                stat = os.pread(self._stat, 4096, 0)
            except ProcessLookupError:  # reaped (ESRCH)
                raise ProcessLookupError(f"process {self.pid} is gone") from None
        return {**_memory_figures(status, self.pid), "cpu_s": _cpu_seconds(stat)}

    def close(self) -> None:
        with self._lock:
            if self._stat is not None:
                os.close(self._status)
                os.close(self._stat)
                self._stat = None


def _read_once(path: str, pid: int, size: int) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise ProcessLookupError(f"process {pid} is gone") from None
    try:
        return os.read(fd, size)
    except ProcessLookupError:  # the read of a process reaped meanwhile (ESRCH)
        raise ProcessLookupError(f"process {pid} is gone") from None
    finally:
        os.close(fd)


def _memory_figures(status: bytes, pid: int) -> dict[str, int]:
    found: dict[str, int] = {}
    for label, name in _STATUS_FIELDS.items():
        start = status.find(label)
        if start < 0:
            raise ProcessLookupError(f"process {pid} has no memory figures (exited?)")
        start += len(label)
        found[name] = int(status[start : status.index(b"kB", start)]) * KIB  # the kernel's kB
    return found


_CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(stat: bytes) -> float:
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    # The tail starts at field 3 (state): utime and stime are its 12th and 13th.
    tail = stat[stat.rindex(b")") + 2 :].split(maxsplit=13)
    return (int(tail[11]) + int(tail[12])) / _CLOCK_TICKS_PER_S


_ROLLUP_FIELDS = {"Rss:": "rss", "Anonymous:": "anon", "LazyFree:": "lazyfree"}


def read_smaps_rollup(pid: int) -> dict[str, int]:
    """What a process's resident memory is made of, from /proc/PID/smaps_rollup.

    {"anon_bytes", "rss_bytes", "lazyfree_bytes" (freed with MADV_FREE, reclaimable),
    "file_rss_bytes" (resident and not anonymous: the libraries, the model files)}.
    Slower than `read_proc_memory` (the kernel walks every mapping): read it once per
    settled point, not ten times a second.
    """
    try:
        text = (PROC / str(pid) / "smaps_rollup").read_text()
    except FileNotFoundError:
        raise ProcessLookupError(f"process {pid} is gone") from None
    found: dict[str, int] = {}
    for line in text.splitlines():
        label, _, rest = line.partition(" ")
        if label in _ROLLUP_FIELDS:
            found[_ROLLUP_FIELDS[label]] = int(rest.split()[0]) * KIB
    if "rss" not in found or "anon" not in found:
        raise ProcessLookupError(f"process {pid} has no memory figures (exited?)")
    return {
        "anon_bytes": found["anon"],
        "rss_bytes": found["rss"],
        "lazyfree_bytes": found.get("lazyfree", 0),
        "file_rss_bytes": found["rss"] - found["anon"],
    }


def namespace_pid(pid: int) -> int:
    """A process's pid as it sees itself (its innermost pid namespace: NSpid's last)."""
    for line in (PROC / str(pid) / "status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    return pid  # kernels before 4.1 have no NSpid: no namespaces to tell apart


def read_mapped_paths(pid: int) -> set[str]:
    """File paths mapped into a process (its /proc/PID/maps)."""
    return paths_in_maps((PROC / str(pid) / "maps").read_text(errors="replace"))


def paths_in_maps(maps: str) -> set[str]:
    """File paths in the text of a /proc/PID/maps."""
    paths = set()
    for line in maps.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5].startswith("/"):
            paths.add(parts[5].strip())
    return paths


def process_start_ticks(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def parse_cpu_list(text: str) -> frozenset[int]:
    """'0-2,5' -> {0, 1, 2, 5}: the kernel's cpuset list format (as in /proc/PID/status).

    Raises ValueError for anything else.
    """
    cpus: set[int] = set()
    for part in str(text).split(","):
        first, dash, last = part.partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ValueError(f"not a CPU list like 0-1 or 0,2: {text!r}")
        cpus.update(range(int(first), int(last or first) + 1))
    return frozenset(cpus)


# --- memory cgroup ------------------------------------------------------------------


@dataclass(frozen=True)
class CgroupMemory:
    """A memory cgroup's figures, from `memory.stat` (v1 or v2) and its usage."""

    anon_bytes: int
    file_mapped_bytes: int
    working_set_bytes: int

    def columns(self) -> dict[str, int]:
        """The memory.csv columns of a cgroup."""
        return {
            "cgroup_anon_bytes": self.anon_bytes,
            "cgroup_working_set_bytes": self.working_set_bytes,
        }


def cgroup_memory(stat: Mapping[str, int], usage: int) -> CgroupMemory:
    """Figures of a cgroup from its `memory.stat` keys and its usage in bytes.

    Anonymous memory is v2 `anon`, v1 `total_rss` (hierarchical, as cAdvisor
    reads it; `rss` where the kernel has no total). The working set is what
    Kubernetes evicts on: usage minus inactive file pages, floored at 0. The
    same keys come from the file and from Docker's stats API.
    """
    if "anon" in stat:  # v2
        anon: int | None = stat["anon"]
        inactive_file = stat["inactive_file"]
        mapped = stat.get("file_mapped", 0)
    else:  # v1
        anon = _first(stat, "total_rss", "rss")
        inactive_file = _first(stat, "total_inactive_file", "inactive_file") or 0
        mapped = _first(stat, "total_mapped_file", "mapped_file") or 0
    if anon is None:
        raise KeyError("memory.stat has neither anon (v2) nor total_rss or rss (v1)")
    return CgroupMemory(anon, mapped, max(0, usage - inactive_file))


def read_cgroup_memory(cgroup_dir: Path) -> dict[str, int]:
    """{"cgroup_anon_bytes", "cgroup_working_set_bytes"} of a cgroup directory (v1 or v2)."""
    stat = _read_stat(cgroup_dir / "memory.stat")
    current = cgroup_dir / "memory.current"  # v2; v1 has memory.usage_in_bytes
    usage = _read_int(current if current.exists() else cgroup_dir / "memory.usage_in_bytes")
    return cgroup_memory(stat, usage).columns()


def read_cgroup_cpu_s(cgroup_dir: Path) -> float | None:
    """CPU seconds the processes of a cgroup have used so far (user + system).

    cgroup v2 `cpu.stat` `usage_usec`; None when the directory has no cpu.stat (a v1
    memory cgroup: its CPU figures are in another hierarchy). Raises ProcessLookupError
    when the cgroup is gone (its container was removed).
    """
    try:
        fd = os.open(f"{cgroup_dir}/cpu.stat", os.O_RDONLY)
    except FileNotFoundError:
        if cgroup_dir.is_dir():
            return None
        raise ProcessLookupError(f"cgroup {cgroup_dir} is gone") from None
    try:
        text = os.read(fd, 4096)
    finally:
        os.close(fd)
    start = text.find(b"usage_usec ")
    if start < 0:
        return None
    start += len(b"usage_usec ")
    end = text.find(b"\n", start)
    return int(text[start : end if end >= 0 else None]) / 1e6


def find_cgroup_memory_dir(pid: int) -> Path | None:
    """The memory cgroup directory of a process, or None when there is none to read.

    From /proc/PID/cgroup: the v1 line naming the `memory` controller wins
    (hybrid hosts also list an empty v2 `0::/` line); else the v2 `0::/path`
    line. The controller's mount point comes from /proc/self/mounts
    (normally /sys/fs/cgroup/memory for v1, /sys/fs/cgroup for v2).
    """
    try:
        lines = (PROC / str(pid) / "cgroup").read_text().splitlines()
    except FileNotFoundError:
        return None
    v1_mount, v2_mount = _cgroup_mounts((PROC / "self" / "mounts").read_text())
    v1_path = v2_path = None
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if "memory" in controllers.split(","):
            v1_path = path
        elif hierarchy == "0" and controllers == "":
            v2_path = path
    if v1_path is not None and v1_mount is not None:
        candidate = v1_mount / v1_path.lstrip("/")
    elif v2_path is not None and v2_mount is not None:
        candidate = v2_mount / v2_path.lstrip("/")
    else:
        return None
    # The v2 root cgroup has no memory.stat; a cgroup of another namespace is not visible here.
    return candidate if (candidate / "memory.stat").is_file() else None


def _cgroup_mounts(mounts_text: str) -> tuple[Path | None, Path | None]:
    """(v1 memory controller mount, v2 unified mount) from /proc/self/mounts."""
    v1_memory = unified = None
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        mount_point, fs_type, options = fields[1], fields[2], fields[3].split(",")
        if fs_type == "cgroup" and "memory" in options:
            v1_memory = Path(mount_point)
        elif fs_type == "cgroup2":
            unified = Path(mount_point)
    return v1_memory, unified


def _first(stat: Mapping[str, int], *names: str) -> int | None:
    return next((stat[n] for n in names if n in stat), None)


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


def _read_stat(path: Path) -> dict[str, int]:
    stat: dict[str, int] = {}
    for line in path.read_text().splitlines():
        name, _, value = line.partition(" ")
        if value:
            stat[name] = int(value)
    return stat
