"""ContainerTarget against the real engine: the stand-in image serving a demo model."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import docker.errors
import psutil
import pytest

from soak.core.errors import EnvironmentFailure
from soak.core.owner import (
    LABEL_BOOT,
    LABEL_HOST,
    LABEL_PID,
    LABEL_PID_START,
    LABEL_PIDNS,
    LABEL_RUN,
)
from soak.core.procfs import process_start_ticks
from soak.store.records import MIB
from soak.targets.allocators import container_library, verify
from soak.targets.container import ContainerTarget
from soak.targets.docker_engine import (
    connect,
    engine_facts,
    owner_labels,
    remove_dead_run_containers,
    remove_run_containers,
)

pytestmark = pytest.mark.docker


def run_id() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def test_jemalloc_container_serves_reloads_and_reports_memory(
    docker_client, standin_image, launch_spec, demo_model, wait_for_state
):
    spec = launch_spec("jemalloc", env={"LD_PRELOAD": container_library("jemalloc")})
    target = ContainerTarget(spec, docker_client, standin_image, run_id(), cpuset_cpus="0")
    try:
        target.start()
        wait_for_state(target, 1)

        memory = target.read_memory()
        assert set(memory) == set(target.memory_columns())
        assert memory["anon_bytes"] > 20 * MIB  # TensorFlow and a loaded model
        assert memory["rss_bytes"] > memory["anon_bytes"]
        assert memory["cgroup_anon_bytes"] >= memory["anon_bytes"] * 0.9
        assert memory["cgroup_working_set_bytes"] >= memory["cgroup_anon_bytes"] * 0.9

        mapped = target.mapped_paths()
        assert verify("jemalloc", mapped)[0], sorted(p for p in mapped if ".so" in p)[:20]

        status = Path(f"/proc/{target.server_pid}/status").read_text()
        assert "Cpus_allowed_list:\t0\n" in status

        # A version staged on the host appears through the read-only bind mount.
        staged = shutil.copytree(demo_model / "2", spec.base_path / ".staging-2")
        os.rename(staged, spec.base_path / "2")
        wait_for_state(target, 2)
        wait_for_state(target, 1, "END")
        # Loading version 2 took CPU: the server's CPU seconds rose meanwhile.
        assert target.read_memory()["cpu_s"] > memory["cpu_s"] > 0

        # The remote-engine path: stats API and docker exec, same container.
        target.local = False
        remote = target.read_memory()
        assert remote["cpu_s"] > memory["cpu_s"]  # the container's cgroup: server and wrapper
        assert remote["cgroup_anon_bytes"] > 20 * MIB
        assert remote["anon_bytes"] == remote["cgroup_anon_bytes"]
        assert verify("jemalloc", target.mapped_paths())[0]
        assert target.exit_reason() is None
    finally:
        target.stop()
    target.stop()  # idempotent

    assert target.exit_reason() == "exited with code 0"  # SIGTERM: a clean shutdown
    assert "Successfully loaded servable version {name: demo version: 2}" in (
        spec.log_path.read_text()
    )
    run_filter = {"label": f"soak.run={target.run_id}"}
    assert not docker_client.containers.list(all=True, filters=run_filter)
    facts = target.describe()
    assert facts["image"] == standin_image and facts["image_id"].startswith("sha256:")
    assert facts["engine_version"]


def test_glibc_container_maps_no_other_allocator(
    docker_client, standin_image, launch_spec, wait_for_state
):
    spec = launch_spec("glibc")
    with ContainerTarget(spec, docker_client, standin_image, run_id()) as target:
        wait_for_state(target, 1)
        assert verify("glibc", target.mapped_paths()) == (True, "no other allocator loaded")


def test_small_memory_limit_is_reported_as_oom_killed(
    docker_client, standin_image, launch_spec, wait_for_exit
):
    spec = launch_spec("glibc")
    target = ContainerTarget(
        spec, docker_client, standin_image, run_id(), memory_limit_bytes=200 * MIB
    )
    with target:
        assert wait_for_exit(target) == "OOMKilled (exit 137)"
        with pytest.raises(ProcessLookupError):
            target.read_memory()


def test_unknown_image_is_an_environment_failure(docker_client, launch_spec):
    target = ContainerTarget(launch_spec(), docker_client, "soak-no-such-image:1", run_id())
    missing = "image soak-no-such-image:1 not found locally"
    with pytest.raises(EnvironmentFailure, match=missing), target:
        pass
    target.stop()  # idempotent


@pytest.mark.exclusive
def test_only_containers_of_provably_dead_owners_are_removed(docker_client, standin_image):
    dead = subprocess.Popen(["true"])
    dead.wait()
    mine = owner_labels("live-run")
    labels = {
        "dead-owner": {**mine, LABEL_RUN: "dead-run", LABEL_PID: str(dead.pid)},
        "recycled-pid": {**mine, LABEL_RUN: "recycled", LABEL_PID_START: "1"},
        "other-boot": {**mine, LABEL_RUN: "rebooted", LABEL_BOOT: "another-boot"},
        "no-owner": {LABEL_RUN: "manual"},  # nobody recorded: not ours to judge
        "live-owner": mine,
        "other-host": {**mine, LABEL_RUN: "elsewhere", LABEL_HOST: "another-host"},
        "other-pidns": {**mine, LABEL_RUN: "in-a-container", LABEL_PIDNS: "pid:[1]"},
    }
    suffix = uuid.uuid4().hex[:6]
    created = {
        name: docker_client.containers.create(
            standin_image, name=f"soak-test-{name}-{suffix}", labels=value, network_mode="none"
        )
        for name, value in labels.items()
    }
    try:
        removed = {c.name for c in remove_dead_run_containers(docker_client)}
        mine_removed = {n for n in removed if n.endswith(suffix)}  # others' dead runs may go too
        assert mine_removed == {
            f"soak-test-{name}-{suffix}" for name in ("dead-owner", "recycled-pid", "other-boot")
        }
        left = {c.name for c in docker_client.containers.list(all=True)}
        kept = ("no-owner", "live-owner", "other-host", "other-pidns")
        assert {f"soak-test-{n}-{suffix}" for n in kept} <= left
        # a run's own teardown touches its own run id only
        assert [c.name for c in remove_run_containers(docker_client, "live-run")] == [
            f"soak-test-live-owner-{suffix}"
        ]
    finally:
        for container in created.values():
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
    assert process_start_ticks(os.getpid()) == int(mine[LABEL_PID_START])


def test_unreachable_engine_is_one_line_environment_failure(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(EnvironmentFailure) as failure:
        connect()
    message = str(failure.value)
    assert message.startswith("Docker engine unreachable at unix:///nonexistent/docker.sock")
    assert "scripts/ensure-docker" in message and "\n" not in message
    assert failure.value.exit_code == 3


def test_engine_facts(docker_client):
    facts = engine_facts(docker_client)
    assert facts["engine_version"] == docker_client.version()["Version"]
    assert facts["cgroup_version"] in ("1", "2")
    assert facts["engine_local"] is True


def test_bad_cpuset_is_an_environment_failure_and_leaves_nothing(
    docker_client, standin_image, launch_spec
):
    target = ContainerTarget(
        launch_spec(), docker_client, standin_image, run_id(), cpuset_cpus="7-9"
    )
    with pytest.raises(EnvironmentFailure, match="cannot start a container of soak-standin"):
        target.start()
    run_filter = {"label": f"soak.run={target.run_id}"}
    assert not docker_client.containers.list(all=True, filters=run_filter)


def test_server_behind_a_bash_entrypoint_is_found_and_stopped(
    docker_client, tf_serving_like_image, launch_spec, wait_for_state
):
    """tensorflow/serving's entrypoint keeps bash as pid 1: read and stop its child."""
    spec = launch_spec("jemalloc", env={"LD_PRELOAD": container_library("jemalloc")})
    target = ContainerTarget(spec, docker_client, tf_serving_like_image, run_id())
    try:
        target.start()
        wait_for_state(target, 1)
        entrypoint = psutil.Process(target.container.attrs["State"]["Pid"])
        assert Path(entrypoint.exe()).name == "bash"
        assert [child.pid for child in entrypoint.children()] == [target.server_pid]
        assert target.read_memory()["anon_bytes"] > 20 * MIB  # the server's, not bash's

        for local in (True, False):  # /proc on the host, then docker exec
            target.local = local
            mapped = target.mapped_paths()
            assert verify("jemalloc", mapped)[0]
            assert any("tensorflow" in path for path in mapped)
        target.local = True
    finally:
        target.stop()
    # The server itself got SIGTERM and shut down cleanly, so bash exited 0 too
    # (bash as pid 1 ignores `docker stop`'s SIGTERM: that would end in SIGKILL, 137).
    assert target.exit_reason() == "exited with code 0"
