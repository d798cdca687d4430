"""How much does sampling cost? Reads of /proc and the cgroup per second of CPU.

The samplers run at about 10 Hz for the whole soak, beside the server they
measure, so each reading must be cheap. Prints microseconds per reading.
"""

from __future__ import annotations

import os
import time

from soak.core.procfs import find_cgroup_memory_dir, read_cgroup_memory, read_proc_memory

N = 20000


def per_call_us(fn) -> float:
    start = time.process_time()
    for _ in range(N):
        fn()
    return (time.process_time() - start) / N * 1e6


def main() -> None:
    pid = os.getpid()
    print(f"read_proc_memory: {per_call_us(lambda: read_proc_memory(pid)):.1f} us CPU per reading")
    cgroup = find_cgroup_memory_dir(pid)
    if cgroup is not None:
        cost = per_call_us(lambda: read_cgroup_memory(cgroup))
        print(f"read_cgroup_memory ({cgroup}): {cost:.1f} us CPU per reading")
    share = per_call_us(lambda: read_proc_memory(pid)) * 10 / 1e6 * 100
    print(f"process sampling at 10 Hz: {share:.4f}% of one core")


if __name__ == "__main__":
    main()
