"""A `soak run` killed outright leaves its container; the next run's cleanup removes it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from soak.core.owner import LABEL_PID
from soak.targets.docker_engine import remove_dead_run_containers

pytestmark = [pytest.mark.docker, pytest.mark.exclusive]

CONTAINER_WAIT_S = 120


def test_leftover_of_a_killed_run_is_removed_by_the_next(
    docker_client, standin_image, demo_model, tmp_path
):
    run = subprocess.Popen(
        [
            sys.executable, "-m", "soak", "run", "--backend", "docker",
            "--image", standin_image, "--model", str(demo_model), "--allocators", "glibc",
            "--swaps", "50", "--rps", "5", "--out", str(tmp_path / "run"), "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    owned = {"label": f"{LABEL_PID}={run.pid}"}
    try:
        deadline = time.monotonic() + CONTAINER_WAIT_S
        while not docker_client.containers.list(filters=owned):
            assert run.poll() is None, f"soak run exited early ({run.returncode})"
            assert time.monotonic() < deadline, "soak run started no container"
            time.sleep(0.2)
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()

    left = docker_client.containers.list(all=True, filters=owned)
    assert len(left) == 1  # nothing cleaned up after a SIGKILL
    assert left[0].name in [c.name for c in remove_dead_run_containers(docker_client)]
    assert not docker_client.containers.list(all=True, filters=owned)
