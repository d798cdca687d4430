"""scripts/ensure-docker: idempotent here, and the cold path on a fresh Debian.

The cold path runs in a container of soak's Debian base (host networking for
apt): no docker.io, no dockerd. The script must install Debian's docker.io,
start dockerd with no bridge and no iptables, and return once it answers.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ensure-docker"


def test_returns_at_once_when_the_engine_answers(docker_client):
    result = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "starting dockerd" not in result.stderr


def test_unreachable_docker_host_is_one_line_failure():
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    result = subprocess.run([str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "ensure-docker: no Docker engine answers at DOCKER_HOST=unix:///nonexistent/docker.sock"
        " (unset it to start a local one)"
    )


def test_installs_and_starts_dockerd_on_a_fresh_debian(docker_client):
    from soak.targets.images import ensure_base_image

    base = ensure_base_image(docker_client, progress=lambda message: None)
    script = (
        "/s/ensure-docker && /s/ensure-docker 2>&1 | grep -c starting;"
        " docker info --format '{{.ServerVersion}}'"
    )
    container = docker_client.containers.create(
        base,
        command=["bash", "-c", script],
        network_mode="host",  # apt only; dockerd runs with --bridge=none --iptables=false
        volumes={str(SCRIPT.parent): {"bind": "/s", "mode": "ro"}},
        labels={"soak.test": "ensure-docker"},
    )
    try:
        container.start()
        code = container.wait(timeout=300)["StatusCode"]
        output = container.logs().decode()
    finally:
        container.remove(force=True)
    assert code == 0, output
    lines = output.splitlines()
    assert "ensure-docker: installing docker.io" in lines
    assert "ensure-docker: starting dockerd (log: /var/log/soak-dockerd.log)" in lines
    assert lines[-2] == "0"  # the second call started nothing
    assert lines[-1]  # the new engine's version
