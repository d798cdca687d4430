"""The server's CPU time: /proc/PID/stat and cgroup cpu.stat readers, and `cpu_s` in
memory.csv written by the sampler reading a real process target."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time

import pytest

from soak.core.procfs import find_cgroup_memory_dir, read_cgroup_cpu_s, read_proc_cpu_s
from soak.samplers.clock import SwapClock
from soak.samplers.memory import MemorySampler
from soak.store.csv_log import CsvLog
from soak.store.records import MemorySample
from soak.targets.base import LaunchSpec
from soak.targets.process import ProcessTarget

TICK_S = 1 / os.sysconf("SC_CLK_TCK")  # /proc's CPU times count whole ticks (10 ms)
BURN_S = 0.5

# Burns BURN_S of its own thread's CPU each time it reads a line, then says so.
BURNER_CHILD = """
import sys, time
print("ready", flush=True)
for line in sys.stdin:
    end = time.thread_time() + float(line)
    while time.thread_time() < end:
        pass
    print("burnt", flush=True)
"""


def wait_until(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture
def burner():
    child = subprocess.Popen(
        [sys.executable, "-c", BURNER_CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline() == "ready\n"
    yield child
    child.kill()
    child.wait()


def burn(child: subprocess.Popen, seconds: float) -> None:
    child.stdin.write(f"{seconds}\n")
    child.stdin.flush()
    assert child.stdout.readline() == "burnt\n"


def test_cpu_s_rises_by_the_cpu_a_process_burnt(burner):
    before = read_proc_cpu_s(burner.pid)
    burn(burner, BURN_S)
    grown = read_proc_cpu_s(burner.pid) - before
    # The loop's own reads of the clock and the pipe cost a few ms more, at most a tick or two.
    assert BURN_S - 2 * TICK_S <= grown <= BURN_S + 5 * TICK_S, grown


def test_cpu_s_of_a_sleeping_process_stays(burner):
    before = read_proc_cpu_s(burner.pid)
    time.sleep(BURN_S)
    assert read_proc_cpu_s(burner.pid) - before <= 2 * TICK_S


def test_cpu_s_of_this_process_matches_os_times():
    times = os.times()
    assert read_proc_cpu_s(os.getpid()) == pytest.approx(times.user + times.system, abs=0.05)


def test_cpu_s_of_a_gone_process_is_a_lookup_error():
    reaped = subprocess.Popen([sys.executable, "-c", "pass"])
    reaped.wait()
    with pytest.raises(ProcessLookupError):
        read_proc_cpu_s(reaped.pid)


def test_cgroup_cpu_s_reads_v2_cpu_stat_usage_usec(tmp_path):
    (tmp_path / "cpu.stat").write_text(
        "usage_usec 12345678\nuser_usec 10000000\nsystem_usec 2345678\n"
        "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n"
    )
    assert read_cgroup_cpu_s(tmp_path) == 12.345678


def test_cgroup_cpu_s_is_none_without_cpu_stat_and_an_error_once_gone(tmp_path):
    assert read_cgroup_cpu_s(tmp_path) is None  # as a v1 memory cgroup dir
    with pytest.raises(ProcessLookupError):
        read_cgroup_cpu_s(tmp_path / "removed")


def test_cgroup_cpu_s_of_this_process_counts_at_least_its_own_cpu():
    cgroup_dir = find_cgroup_memory_dir(os.getpid())
    if cgroup_dir is None:
        pytest.skip("no memory cgroup to read here")
    cpu_s = read_cgroup_cpu_s(cgroup_dir)
    if (cgroup_dir / "cpu.stat").is_file():  # v2: every process of the cgroup
        assert cpu_s is not None and cpu_s >= read_proc_cpu_s(os.getpid()) - TICK_S
    else:  # v1: the memory hierarchy has no CPU figures
        assert cpu_s is None


def test_sampler_writes_the_process_targets_cpu_s_into_memory_csv(tmp_path):
    # A stand-in "server binary": ignores TF Serving's flags, burns BURN_S of CPU, then idles.
    binary = tmp_path / "burner"
    binary.write_text(
        f"#!{sys.executable}\n"
        "import time\n"
        "time.sleep(0.3)\n"
        f"end = time.thread_time() + {BURN_S}\n"
        "while time.thread_time() < end:\n"
        "    pass\n"
        "time.sleep(60)\n"
    )
    binary.chmod(0o755)
    spec = LaunchSpec("v", "m", tmp_path, rest_port=1, grpc_port=2, log_path=tmp_path / "log")
    target = ProcessTarget(spec, str(binary))
    assert "cpu_s" in target.memory_columns()
    path = tmp_path / "memory.csv"
    log = CsvLog(path, MemorySample, ["t", *target.memory_columns(), "swap"])
    sampler = MemorySampler(target, log, SwapClock(), interval_s=0.05)
    try:
        target.start()
        sampler.start()

        def cpu_s() -> float:
            latest = sampler.latest()
            return -1.0 if latest is None or latest.cpu_s is None else latest.cpu_s

        assert wait_until(lambda: cpu_s() >= BURN_S)
        assert cpu_s() < BURN_S + 1.0  # the interpreter's start-up besides
    finally:
        sampler.stop()
        target.stop()
        log.close()

    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert "cpu_s" in rows[0]
    cpu = [float(r["cpu_s"]) for r in rows]
    assert cpu == sorted(cpu)  # cumulative
    assert cpu[-1] - cpu[0] >= BURN_S - 2 * TICK_S  # the burn came after the first sample
