"""The real Docker engine (started by scripts/ensure-docker), the stand-in image, a demo model.

The engine is shared (other soaks, other test sessions). The session checks on
the way out that its own tests (label soak.session, see tests/conftest.py) left
no container, and removes those only; it also checks that no network was created.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from pathlib import Path

import docker.errors
import pytest
import requests

from soak.targets.base import LaunchSpec
from soak.targets.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
AVAILABLE_TIMEOUT_S = 120


@pytest.fixture(scope="session")
def docker_client(test_session):
    from soak.core.owner import LABEL_SESSION
    from soak.targets.docker_engine import connect

    result = subprocess.run(
        [str(ROOT / "scripts" / "ensure-docker")], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"scripts/ensure-docker failed: {result.stderr.strip()}"
    client = connect()
    networks_before = {n.name for n in client.networks.list()}
    yield client
    ours = {"label": f"{LABEL_SESSION}={test_session}"}
    leftovers = client.containers.list(all=True, filters=ours)
    for container in leftovers:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
    networks_after = {n.name for n in client.networks.list()}
    assert not leftovers, f"containers left behind: {[c.name for c in leftovers]}"
    assert networks_after == networks_before, f"networks created: {networks_after}"


@pytest.fixture(scope="session")
def standin_image(docker_client) -> str:
    from soak.targets.images import ensure_standin_image

    return ensure_standin_image(docker_client, progress=lambda message: None)


# tensorflow/serving's own entrypoint: a bash script that does not `exec`, so the
# container's pid 1 is bash and the server is its child.
TF_SERVING_LIKE_DOCKERFILE = r"""
ARG BASE
FROM ${BASE}
RUN printf '#!/bin/bash \n\ntensorflow_model_server --port=${GRPC_PORT} --rest_api_port=${PORT} \
--model_name=${MODEL_NAME} --model_base_path=${MODEL_BASE_PATH}/${MODEL_NAME} "$@"\n' \
    > /usr/bin/tf_serving_entrypoint.sh
"""


@pytest.fixture(scope="session")
def tf_serving_like_image(docker_client, standin_image, tmp_path_factory, test_session):
    """The stand-in behind an entrypoint that, like tensorflow/serving's, does not exec.

    Tagged per test session (each xdist worker is one), so that one worker's teardown
    never removes the image under another's test."""
    context = tmp_path_factory.mktemp("tf-serving-like")
    (context / "Dockerfile").write_text(TF_SERVING_LIKE_DOCKERFILE)
    tag = f"soak-test-tf-serving-like:{test_session}"
    docker_client.images.build(
        path=str(context),
        tag=tag,
        buildargs={"BASE": standin_image},
        network_mode="none",
        rm=True,  # no intermediate container left behind (docker-py keeps them by default)
        forcerm=True,
    )
    yield tag
    docker_client.images.remove(tag, force=True)


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory) -> Path:
    """A 2-version demo model of 4 MiB (a base path of numeric versions)."""
    from soak.driver.demo_model import write_demo_model

    return write_demo_model(tmp_path_factory.mktemp("demo") / "demo", versions=2, size_mb=4)


@pytest.fixture
def launch_spec(tmp_path, demo_model):
    """A spec whose private base path holds version 1 only, on free loopback ports."""

    def make(variant: str = "glibc", env: dict | None = None, **kwargs) -> LaunchSpec:
        base_path = tmp_path / variant / "models"
        base_path.mkdir(parents=True)
        shutil.copytree(demo_model / "1", base_path / "1")
        return LaunchSpec(
            variant=variant,
            model_name="demo",
            base_path=base_path,
            rest_port=free_port(),
            grpc_port=free_port(),
            env=env or {},
            log_path=tmp_path / variant / "server.log",
            **kwargs,
        )

    return make


@pytest.fixture
def wait_for_state():
    return _wait_for_state


@pytest.fixture
def wait_for_exit():
    return _wait_for_exit


def _wait_for_state(target, version: int, state: str = "AVAILABLE") -> None:
    """Poll TF Serving's status API on 127.0.0.1 until `version` is in `state`."""
    url = f"{target.rest_url}/v1/models/demo/versions/{version}"
    deadline = time.monotonic() + AVAILABLE_TIMEOUT_S
    while time.monotonic() < deadline:
        reason = target.exit_reason()
        assert reason is None, f"server exited: {reason}"
        try:
            reply = requests.get(url, timeout=2)
            if reply.ok and reply.json()["model_version_status"][0]["state"] == state:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"version {version} not {state} within {AVAILABLE_TIMEOUT_S} s")


def _wait_for_exit(target, timeout_s: float = AVAILABLE_TIMEOUT_S) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reason = target.exit_reason()
        if reason is not None:
            return reason
        time.sleep(0.2)
    raise AssertionError(f"the container still runs after {timeout_s} s")
