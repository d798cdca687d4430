"""Memory readers against this process, child processes and cgroup files; the sampler thread."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from soak.core.procfs import (
    ProcFiles,
    find_cgroup_memory_dir,
    read_cgroup_memory,
    read_proc_memory,
)
from soak.samplers.clock import SwapClock
from soak.samplers.memory import MAX_CONSECUTIVE_FAILURES, MemorySampler
from soak.store.csv_log import CsvLog
from soak.store.records import MIB, PROCESS_MEMORY_COLUMNS, Event, EventKind, MemorySample
from soak.targets.base import Target

# Waits for a child process to hold 64 MiB of written heap, then for it to be freed.
ALLOCATOR_CHILD = """
import sys
print("ready", flush=True)
sys.stdin.readline()
buf = b"\\x01" * (64 << 20)
print("allocated", flush=True)
sys.stdin.readline()
"""


def wait_until(condition, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_proc_memory_of_this_process_matches_psutil():
    figures = read_proc_memory(os.getpid())
    info = psutil.Process().memory_info()
    assert abs(figures["rss_bytes"] - info.rss) < 4 * MIB
    # psutil's "shared" is the file-backed and shmem part of RSS; the rest is anonymous.
    assert abs(figures["anon_bytes"] - (info.rss - info.shared)) < 4 * MIB
    assert 0 < figures["anon_bytes"] < figures["rss_bytes"]


def test_written_allocation_shows_as_anon_growth_and_release():
    before = read_proc_memory(os.getpid())["anon_bytes"]
    block = b"\x01" * (64 * MIB)  # filled, so every page is touched
    grown = read_proc_memory(os.getpid())["anon_bytes"]
    del block  # 64 MiB is above glibc's mmap threshold: freeing unmaps it
    after = read_proc_memory(os.getpid())["anon_bytes"]
    assert 60 * MIB < grown - before < 70 * MIB
    assert grown - after > 60 * MIB


def test_proc_files_read_again_in_place_give_the_figures_of_now():
    files = ProcFiles(os.getpid())
    try:
        before = files.read()
        block = b"\x01" * (64 * MIB)
        grown = files.read()
        del block
        after = files.read()
        assert 60 * MIB < grown["anon_bytes"] - before["anon_bytes"] < 70 * MIB
        assert grown["anon_bytes"] - after["anon_bytes"] > 60 * MIB
        busy_until = time.process_time() + 0.2
        while time.process_time() < busy_until:
            pass
        assert files.read()["cpu_s"] - before["cpu_s"] >= 0.15
        assert after["rss_bytes"] == pytest.approx(
            read_proc_memory(os.getpid())["rss_bytes"], abs=MIB
        )
    finally:
        files.close()
    with pytest.raises(ProcessLookupError):
        files.read()


def test_proc_files_of_a_process_reaped_since_raise_process_lookup_error():
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.readline()"], stdin=subprocess.PIPE
    )
    files = ProcFiles(child.pid)
    try:
        assert files.read()["rss_bytes"] > 0
        child.communicate(b"\n")  # exits and is reaped
        with pytest.raises(ProcessLookupError):
            files.read()
    finally:
        files.close()


def test_exited_and_zombie_processes_raise_process_lookup_error():
    reaped = subprocess.Popen([sys.executable, "-c", "pass"])
    reaped.wait()
    with pytest.raises(ProcessLookupError):
        read_proc_memory(reaped.pid)

    zombie = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        zombie.kill()
        # Not reaped yet: /proc/PID/status exists but has no memory lines.
        assert wait_until(lambda: psutil.Process(zombie.pid).status() == psutil.STATUS_ZOMBIE)
        with pytest.raises(ProcessLookupError):
            read_proc_memory(zombie.pid)
    finally:
        zombie.wait()


def write_cgroup(path: Path, files: dict[str, str]) -> Path:
    path.mkdir()
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def test_cgroup_v1_reads_total_rss_and_usage_minus_total_inactive_file(tmp_path):
    cgroup = write_cgroup(
        tmp_path / "v1",
        {
            "memory.stat": "cache 4096\nrss 1000\ninactive_file 50\n"
            "total_cache 8192\ntotal_rss 3000\ntotal_inactive_file 700\n",
            "memory.usage_in_bytes": "10000\n",
        },
    )
    assert read_cgroup_memory(cgroup) == {
        "cgroup_anon_bytes": 3000,
        "cgroup_working_set_bytes": 10000 - 700,
    }


def test_cgroup_v1_without_totals_falls_back_to_local_figures(tmp_path):
    cgroup = write_cgroup(
        tmp_path / "v1",
        {"memory.stat": "rss 1000\ninactive_file 9000\n", "memory.usage_in_bytes": "5000\n"},
    )
    # More inactive file pages than usage (racy counters): the working set floors at 0.
    assert read_cgroup_memory(cgroup) == {"cgroup_anon_bytes": 1000, "cgroup_working_set_bytes": 0}


def test_cgroup_v2_reads_anon_and_current_minus_inactive_file(tmp_path):
    cgroup = write_cgroup(
        tmp_path / "v2",
        {
            "memory.stat": "anon 123456\nfile 900000\nkernel 4096\n"
            "active_anon 100000\ninactive_anon 23456\nactive_file 600000\n"
            "inactive_file 300000\n",
            "memory.current": "1100000\n",
        },
    )
    assert read_cgroup_memory(cgroup) == {
        "cgroup_anon_bytes": 123456,
        "cgroup_working_set_bytes": 800000,
    }


def test_find_cgroup_memory_dir_of_this_process():
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    memory_lines = [line for line in lines if "memory" in line.split(":")[1].split(",")]
    if not memory_lines:
        pytest.skip("this host has no cgroup v1 memory controller")
    expected = Path("/sys/fs/cgroup/memory") / memory_lines[0].split(":", 2)[2].lstrip("/")

    found = find_cgroup_memory_dir(os.getpid())

    assert found == expected
    figures = read_cgroup_memory(found)
    assert figures["cgroup_anon_bytes"] > 0
    assert figures["cgroup_working_set_bytes"] > 0


def test_find_cgroup_memory_dir_of_a_missing_process_is_none():
    reaped = subprocess.Popen([sys.executable, "-c", "pass"])
    reaped.wait()
    assert find_cgroup_memory_dir(reaped.pid) is None


class ChildProcessTarget(Target):
    """A real child process read through read_proc_memory, as the process target reads."""

    rest_url = ""

    def __init__(self, process: subprocess.Popen):
        self.process = process

    def start(self) -> None:
        pass

    def memory_columns(self) -> tuple[str, ...]:
        return PROCESS_MEMORY_COLUMNS

    def read_memory(self) -> dict[str, int]:
        return read_proc_memory(self.process.pid)

    def mapped_paths(self) -> set[str]:
        return set()

    def exit_reason(self) -> str | None:
        code = self.process.poll()
        return None if code is None else f"exit code {code}"

    def stop(self, graceful: bool = True) -> None:
        self.process.kill()
        self.process.wait()


def test_sampler_follows_a_child_process_until_it_dies(tmp_path):
    child = subprocess.Popen(
        [sys.executable, "-c", ALLOCATOR_CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    target = ChildProcessTarget(child)
    path = tmp_path / "memory.csv"
    log = CsvLog(path, MemorySample, ["t", *PROCESS_MEMORY_COLUMNS, "swap"])
    clock = SwapClock()
    sampler = MemorySampler(target, log, clock, interval_s=0.05, keep_s=1.0)
    try:
        assert child.stdout.readline() == "ready\n"
        sampler.start()
        assert wait_until(lambda: len(sampler.since(0)) >= 3)
        first = sampler.since(0)[0]
        baseline = sampler.latest().anon_bytes

        clock.swap = 1
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline() == "allocated\n"
        t_allocated = time.time()
        assert wait_until(lambda: sampler.latest().anon_bytes > baseline + 60 * MIB)
        assert all(s.swap == 1 for s in sampler.since(t_allocated))
        assert wait_until(lambda: sampler.latest().t > first.t + 1.5)

        child.kill()
        # The target's exit is the driver's to report: the sampler just stops.
        assert wait_until(lambda: not sampler.running)
        assert sampler.failure is None
        # The ring keeps about keep_s seconds of samples, the CSV keeps them all.
        kept = sampler.since(0)
        assert kept[0].t > first.t
        assert kept[-1].t - kept[0].t <= 1.0
    finally:
        sampler.stop()
        target.stop()
        log.close()

    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["t", "rss_bytes", "anon_bytes", "swap"]
    assert len(rows) > len(kept)
    times = [float(r["t"]) for r in rows]
    assert times == sorted(times)
    swaps = [int(r["swap"]) for r in rows]
    assert swaps[0] == 0 and swaps[-1] == 1 and swaps == sorted(swaps)
    assert max(int(r["anon_bytes"]) for r in rows) > baseline + 60 * MIB


class UnreadableTarget(ChildProcessTarget):
    """A target that runs but whose memory cannot be read (e.g. /proc hidden from soak)."""

    def read_memory(self) -> dict[str, int]:
        raise PermissionError("/proc/1234/status: permission denied")


def test_a_sampler_that_gives_up_says_so_in_events_csv(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    target = UnreadableTarget(child)
    log = CsvLog(tmp_path / "memory.csv", MemorySample, ["t", *PROCESS_MEMORY_COLUMNS, "swap"])
    events = CsvLog(tmp_path / "events.csv", Event)
    clock = SwapClock()
    clock.swap = 3
    sampler = MemorySampler(target, log, clock, events, interval_s=0.01)
    try:
        sampler.start()
        assert wait_until(lambda: not sampler.running)
        assert target.exit_reason() is None  # it gave up while the target still ran
    finally:
        sampler.stop()
        target.stop()
        log.close()
        events.close()
    assert sampler.failure == (
        "memory readings failed: PermissionError: /proc/1234/status: permission denied"
    )
    with (tmp_path / "events.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert row["event"] == EventKind.SAMPLER_FAILED and row["swap"] == "3"
    assert row["detail"] == sampler.failure
    assert MAX_CONSECUTIVE_FAILURES > 1  # a single failed reading is not enough
