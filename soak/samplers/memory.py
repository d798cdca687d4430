"""Memory of the server, read from /proc and the cgroup, sampled about 10 times a second.

The readers are pure functions over the kernel's files (a read or two, no
subprocess) so that targets can call them at 10 Hz; `MemorySampler` is the
thread that asks the target for a reading and appends it to memory.csv.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path

from soak.samplers.background import BackgroundLoop
from soak.samplers.clock import SwapClock
from soak.samplers.schedule import Ticker
from soak.store.csv_log import CsvLog
from soak.store.records import MemorySample
from soak.targets.base import Target

PROC = Path("/proc")
KIB = 1024
# Consecutive failed readings of a target that still runs before the sampler gives up (~1 s).
MAX_CONSECUTIVE_FAILURES = 10

_STATUS_FIELDS = {b"VmRSS:": "rss_bytes", b"RssAnon:": "anon_bytes"}


def read_proc_memory(pid: int) -> dict[str, int]:
    """{"rss_bytes", "anon_bytes"} of a process: VmRSS and RssAnon of /proc/PID/status.

    Raises ProcessLookupError when the process is gone or is a zombie (no memory lines).
    """
    try:
        text = (PROC / str(pid) / "status").read_bytes()
    except FileNotFoundError:
        raise ProcessLookupError(f"process {pid} is gone") from None
    found: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] in _STATUS_FIELDS:
            found[_STATUS_FIELDS[parts[0]]] = int(parts[1]) * KIB  # the kernel reports kB
    if len(found) != len(_STATUS_FIELDS):
        raise ProcessLookupError(f"process {pid} has no memory figures (exited?)")
    return found


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


def _read_stat(path: Path) -> dict[str, int]:
    stat: dict[str, int] = {}
    for line in path.read_text().splitlines():
        name, _, value = line.partition(" ")
        if value:
            stat[name] = int(value)
    return stat


def read_cgroup_memory(cgroup_dir: Path) -> dict[str, int]:
    """{"cgroup_anon_bytes", "cgroup_working_set_bytes"} of a cgroup (v1 or v2).

    Anonymous memory is v2 `anon`, v1 `total_rss` (hierarchical, as cAdvisor
    reads it; `rss` where the kernel has no total). The working set is what
    Kubernetes evicts on: usage minus inactive file pages, floored at 0.
    """
    stat = _read_stat(cgroup_dir / "memory.stat")
    current = cgroup_dir / "memory.current"
    if current.exists():  # v2
        anon = stat["anon"]
        usage = _read_int(current)
        inactive_file = stat["inactive_file"]
    else:  # v1
        anon = stat.get("total_rss", stat.get("rss"))
        if anon is None:
            raise KeyError(f"{cgroup_dir / 'memory.stat'} has neither total_rss nor rss")
        usage = _read_int(cgroup_dir / "memory.usage_in_bytes")
        inactive_file = stat.get("total_inactive_file", stat.get("inactive_file", 0))
    return {
        "cgroup_anon_bytes": anon,
        "cgroup_working_set_bytes": max(0, usage - inactive_file),
    }


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


class MemorySampler(BackgroundLoop):
    """A daemon thread that appends the target's memory to memory.csv about 10 times a second.

    It also keeps the last `keep_s` seconds of samples in memory, for settle
    detection. When a reading fails because the target died (or keeps failing
    for ~1 s), it records why in `error` and stops quietly; the driver checks
    `error` and the target's exit reason.
    """

    thread_name = "soak-memory"

    def __init__(
        self,
        target: Target,
        log: CsvLog,
        clock: SwapClock,
        interval_s: float = 0.1,
        keep_s: float = 120.0,
    ):
        super().__init__()
        self.target = target
        self.log = log
        self.clock = clock
        self.interval_s = interval_s
        self.keep_s = keep_s
        self.error: str | None = None
        self._recent: deque[MemorySample] = deque(maxlen=int(keep_s / interval_s) + 16)
        self._lock = threading.Lock()

    def latest(self) -> MemorySample | None:
        with self._lock:
            return self._recent[-1] if self._recent else None

    def since(self, t: float) -> list[MemorySample]:
        """Samples taken at epoch time t or later, oldest first (within the last keep_s)."""
        with self._lock:
            return [s for s in self._recent if s.t >= t]

    def _run(self) -> None:
        ticker = Ticker(self.interval_s, self._stop)
        failures = 0
        while True:
            try:
                self._record(self.target.read_memory())
                failures = 0
            except Exception as exc:  # any failed reading ends up in `error`
                failures += 1
                reason = self.target.exit_reason()
                if reason is not None:
                    self.error = f"target exited: {reason}"
                    return
                if failures >= MAX_CONSECUTIVE_FAILURES:
                    self.error = f"memory reading failed: {type(exc).__name__}: {exc}"
                    return
            if not ticker.wait():
                return

    def _record(self, values: dict[str, int]) -> None:
        sample = MemorySample(
            t=time.time(),
            rss_bytes=values["rss_bytes"],
            anon_bytes=values["anon_bytes"],
            cgroup_anon_bytes=values.get("cgroup_anon_bytes"),
            cgroup_working_set_bytes=values.get("cgroup_working_set_bytes"),
            swap=self.clock.swap,
        )
        self.log.append(sample)
        with self._lock:
            self._recent.append(sample)
            horizon = sample.t - self.keep_s
            while self._recent[0].t < horizon:
                self._recent.popleft()
