"""Faults on the docker backend, on real short runs: a container removed from outside,
two soaks on one engine, SIGTERM, and kill -9 of soak with the next run cleaning up."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from soak.core.owner import LABEL_PID, LABEL_SESSION
from soak.targets.docker_engine import LABEL_VARIANT

pytestmark = pytest.mark.docker

WAIT_S = 300
# A 2 s settle window (the verdict's default is 5 s) for runs that are stopped, or checked on
# how they went on, never on a verdict.
QUICK_SETTLE = ("--settle-window", "2")


def start_run(image: str, model: Path, out: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable, "-m", "soak", "run", "--backend", "docker", "--image", image,
            "--model", str(model), "--rps", "5", "--steady", "1", "--out", str(out), *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def wait_baseline(run: subprocess.Popen, out: Path, variant: str) -> None:
    events = out / variant / "events.csv"
    deadline = time.time() + WAIT_S
    while not (events.exists() and ",settled," in events.read_text()):
        assert run.poll() is None, run.stderr.read() if run.stderr else ""
        assert time.time() < deadline, f"no baseline in {events}"
        time.sleep(0.5)


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def session_containers(client, session: str) -> list:
    return client.containers.list(all=True, filters={"label": f"{LABEL_SESSION}={session}"})


@pytest.mark.slow
def test_a_container_removed_from_outside_fails_its_variant_and_the_next_runs(
    docker_client, standin_image, demo_model, tmp_path, test_session
):
    out = tmp_path / "run"
    run = start_run(
        standin_image, demo_model, out, "--allocators", "glibc,jemalloc", "--swaps", "1",
        *QUICK_SETTLE,
    )  # fmt: skip
    try:
        wait_baseline(run, out, "glibc")
        (container,) = docker_client.containers.list(
            filters={"label": [f"{LABEL_PID}={run.pid}", f"{LABEL_VARIANT}=glibc"]}
        )
        removed_at = time.time()
        container.remove(force=True)  # what a careless cleanup on a shared engine does
        _, stderr = run.communicate(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 3, stderr
    glibc, jemalloc = summary(out)["variants"]
    assert glibc["status"] == "failed"
    assert "removed from outside" in glibc["reason"] or "SIGKILL" in glibc["reason"], glibc
    assert "last memory: anon" in glibc["reason"]
    assert jemalloc["status"] == "completed" and jemalloc["swaps_completed"] == 1
    with open(out / "glibc" / "events.csv") as f:
        exited = [line for line in f if ",server_exited," in line]
    assert exited and float(exited[0].split(",")[0]) - removed_at < 2.5  # detected within ~2 s
    assert not session_containers(docker_client, test_session)


@pytest.mark.slow
def test_two_soaks_on_one_engine_both_complete_with_their_own_verdicts(
    docker_client, standin_image, demo_model, tmp_path, test_session
):
    outs = [tmp_path / "a", tmp_path / "b"]
    runs = [
        start_run(standin_image, demo_model, out, "--allocators", "jemalloc", "--swaps", "3")
        for out in outs
    ]  # started in the same second
    try:
        results = [run.communicate(timeout=900) for run in runs]
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
    for run, (_, stderr) in zip(runs, results, strict=True):
        assert run.returncode == 0, stderr
        assert "removed a leftover" not in stderr  # neither touched the other's container
    for out in outs:
        (variant,) = summary(out)["variants"]
        assert variant["status"] == "completed" and variant["swaps_completed"] == 3
        # jemalloc gives the memory back: a neighbour's swaps must not get it flagged
        assert variant["memory"]["verdict"] in ("released", "inconclusive"), variant["memory"]
    assert not session_containers(docker_client, test_session)


def test_sigterm_stops_a_docker_run_and_removes_its_container(
    docker_client, standin_image, demo_model, tmp_path, test_session
):
    out = tmp_path / "run"
    run = start_run(
        standin_image, demo_model, out, "--allocators", "glibc", "--swaps", "50", *QUICK_SETTLE
    )
    wait_baseline(run, out, "glibc")
    sent = time.monotonic()
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 143, stderr
    assert time.monotonic() - sent < 30
    assert summary(out)["status"] == "interrupted"
    assert not session_containers(docker_client, test_session)


@pytest.mark.exclusive
def test_kill_9_leaves_a_container_that_the_next_run_removes_and_names(
    docker_client, standin_image, demo_model, tmp_path
):
    out = tmp_path / "killed"
    run = start_run(
        standin_image, demo_model, out, "--allocators", "glibc", "--swaps", "50", *QUICK_SETTLE
    )
    wait_baseline(run, out, "glibc")
    run.kill()
    run.wait()
    (left,) = docker_client.containers.list(all=True, filters={"label": f"{LABEL_PID}={run.pid}"})

    report = subprocess.run(
        [sys.executable, "-m", "soak", "report", str(out)], capture_output=True, text=True
    )
    assert report.returncode == 0, report.stderr

    nxt = start_run(
        standin_image, demo_model, tmp_path / "next", "--allocators", "glibc", "--swaps", "1",
        *QUICK_SETTLE, "--quiet",
    )  # fmt: skip
    _, stderr = nxt.communicate(timeout=600)
    assert nxt.returncode == 0, stderr
    assert f"removed a leftover of a dead run: container {left.name}" in stderr
    assert not docker_client.containers.list(all=True, filters={"label": f"{LABEL_PID}={run.pid}"})


@pytest.mark.slow
def test_soak_as_pid_1_of_a_container_stops_on_sigterm(
    docker_client, standin_image, demo_model, tmp_path, test_session
):
    """PID 1 gets no default signal actions from the kernel: soak's own handlers do the job."""
    out = tmp_path / "out"
    out.mkdir()
    container = docker_client.containers.create(
        standin_image,
        entrypoint=["/opt/soak/bin/soak"],
        command=[
            "run",
            "--model",
            "/model",
            "--allocators",
            "jemalloc",
            "--swaps",
            "50",
            "--rps",
            "5",
            "--steady",
            "1",
            *QUICK_SETTLE,
            "--out",
            "/out/run",
            "--quiet",
        ],  # fmt: skip
        volumes={
            str(demo_model): {"bind": "/model", "mode": "ro"},
            str(out): {"bind": "/out", "mode": "rw"},
        },
        network_mode="none",  # loopback only
        labels={LABEL_SESSION: test_session, "soak.test": "pid1"},
    )
    try:
        container.start()
        events = out / "run" / "jemalloc" / "events.csv"
        deadline = time.time() + WAIT_S
        while not (events.exists() and ",settled," in events.read_text()):
            container.reload()
            assert container.status == "running", container.logs().decode()[-2000:]
            assert time.time() < deadline
            time.sleep(0.5)
        container.kill(signal="SIGTERM")
        code = container.wait(timeout=120)["StatusCode"]
        assert code == 143, container.logs().decode()[-2000:]
        assert summary(out / "run")["status"] == "interrupted"
    finally:
        container.remove(force=True)
