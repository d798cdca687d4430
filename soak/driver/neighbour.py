"""A neighbour that keeps CPUs busy while a variant runs (`--neighbour-cpus`): the contention
of a shared node, for soak tune's pinning recipe.

One busy-looping process per CPU, pinned to it, started with the variant and
killed at its end. Each is bounded by itself too: it exits after `max_s`, and as
soon as soak is gone (its parent changes), so a killed soak leaves nothing
burning; it carries the run's owner mark (soak.core.owner), so the next run's
sweep would remove it as it removes a server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from typing import Self

from soak.core.owner import OWNER_ENV, Owner

# The busy loop: checks the time and its parent (soak's pid, given: soak may be gone before
# the loop starts) a few hundred times a second.
_BURN = """\
import os, sys, time
end, parent = time.monotonic() + float(sys.argv[1]), int(sys.argv[2])
while time.monotonic() < end and os.getppid() == parent:
    for _ in range(20000):
        pass
"""
STOP_WAIT_S = 2.0


class Neighbour:
    """CPUs busy from `start()` to `stop()` (at most `max_s`); or `with Neighbour(...):`."""

    def __init__(self, cpus: Iterable[int], owner: Owner, max_s: float):
        self.cpus = sorted(set(cpus))
        self.owner = owner
        self.max_s = max_s
        self.processes: list[subprocess.Popen] = []

    def start(self) -> None:
        try:
            for cpu in self.cpus:
                self.processes.append(self._burner(cpu))
        except BaseException:
            self.stop()
            raise

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _burner(self, cpu: int) -> subprocess.Popen:
        env = {**os.environ, OWNER_ENV: self.owner.marker()}
        return subprocess.Popen(
            [sys.executable, "-c", _BURN, f"{self.max_s:g}", str(os.getpid())],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
        )

    def stop(self) -> None:
        """Kill every burner and reap it; safe to call twice."""
        for proc in self.processes:
            proc.kill()
        for proc in self.processes:
            proc.wait(STOP_WAIT_S)
        self.processes = []
