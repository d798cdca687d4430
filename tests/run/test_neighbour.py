"""--neighbour-cpus: busy processes pinned to their CPUs, gone when the variant ends, and
bounded by themselves (time, and soak's own life)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import psutil

from soak.core.owner import Owner, marked_process
from soak.driver.neighbour import Neighbour


def test_burns_each_cpu_it_is_given_and_stops_with_the_variant():
    with Neighbour([0], Owner.current("test-neighbour"), max_s=60) as neighbour:
        (proc,) = neighbour.processes
        burner = psutil.Process(proc.pid)
        assert burner.cpu_affinity() == [0]
        before = sum(burner.cpu_times()[:2])
        time.sleep(1.0)
        assert sum(burner.cpu_times()[:2]) - before > 0.2  # busy (on a shared CPU), not asleep
        mark = marked_process(proc.pid)  # the next run's sweep knows whose it is
        assert mark is not None and mark.owner.run_id == "test-neighbour"
    assert proc.poll() is not None and neighbour.processes == []


def test_a_burner_ends_by_itself_after_its_bound_and_when_soak_is_gone():
    with Neighbour([0], Owner.current("test-neighbour"), max_s=0.5) as neighbour:
        (proc,) = neighbour.processes
        assert proc.wait(10) == 0  # its own bound
    # soak killed with -9: the burner sees its parent change and ends
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent("""
                import time
                from soak.core.owner import Owner
                from soak.driver.neighbour import Neighbour
                n = Neighbour([0], Owner.current("test-orphan"), max_s=600)
                n.start()
                print(n.processes[0].pid, flush=True)
                time.sleep(600)
            """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    burner = psutil.Process(int(parent.stdout.readline()))
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 30  # python's start on a busy CPU, then one check
    while burner.is_running() and burner.status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the burner outlived soak"
        time.sleep(0.1)
