"""The Job image (`soak image job --base IMAGE`) over the stand-in, run as a Kubernetes Job
runs it: as uid 1000 in /work, the config at /config/soak.toml and N as arguments, the model
on a read-only volume, the history in PostgreSQL by SOAK_HISTORY (or the SQLite file in
/work). The container runs the nightly sequence and exits with its code."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import docker.errors
import pytest
import tomli_w

from soak.config.settings import HISTORY_ENV
from soak.core.errors import EnvironmentFailure
from soak.core.owner import LABEL_SESSION
from soak.history import store
from soak.k8s import manifests
from soak.k8s.options import DEFAULT_IMAGE
from soak.targets import images, probe_library

pytestmark = pytest.mark.docker

USER = "1000:1000"  # soak k8s's default --run-as-user
MODEL_MOUNT = "/models/demo"
RUN_TIMEOUT_S = 600
# A short run that is decided: 4 swaps of the 4 MiB demo model, the first one warmup, and
# jemalloc with its background purge and a 1 s decay, so freed pages are back within the
# 2 s settle window (tests/run/test_ground_truth.py); a planted leak of 16 MiB per load
# against a threshold of 4 MiB per swap.
SETTINGS = {
    "model": MODEL_MOUNT,
    "model_name": "demo",
    "swaps": 4,
    "warmup_swaps": 1,
    "rps": 10,
    "steady_s": 1,
    "settle_window": 2,
    "threshold_mb": 4,
}
JEMALLOC = {
    "name": "jemalloc",
    "allocator": "jemalloc",
    "env": {"MALLOC_CONF": "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0"},
}
PLANTED = {**JEMALLOC, "server_args": ["--debug_retain_mb_per_load=16"]}


@pytest.fixture(scope="session")
def job_image(docker_client, standin_image) -> str:
    return images.ensure_job_image(docker_client, standin_image, progress=lambda m: None)


@pytest.fixture
def model_volume(demo_model, tmp_path) -> Path:
    """The demo model as the pod's user can read it (pytest's temp dirs are private)."""
    model = tmp_path / "model"
    shutil.copytree(demo_model, model)
    for path in [model, *model.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return model


@pytest.fixture
def work_volume(tmp_path) -> Path:
    """The runs volume: written by uid 1000 only, as a pod's (fsGroup) would be."""
    work = tmp_path / "work"
    work.mkdir()
    os.chown(work, 1000, 1000)
    return work


class JobContainer:
    """The Job image started the way soak k8s's pod starts it, on host networking."""

    def __init__(self, client, image: str, session: str, tmp: Path, model: Path, work: Path):
        self.client, self.image, self.session = client, image, session
        self.tmp, self.model, self.work = tmp, model, work
        self.container = None

    def start(self, variant: dict, history: str | None = None, **settings) -> None:
        config = self.tmp / f"config-{uuid.uuid4().hex[:8]}"
        config.mkdir(mode=0o755)
        toml = tomli_w.dumps({**SETTINGS, **settings, "variants": [variant]})
        (config / manifests.CONFIG_FILE).write_text(toml)
        (config / manifests.CONFIG_FILE).chmod(0o644)
        self.container = self.client.containers.create(
            self.image,
            command=[f"{manifests.CONFIG_DIR}/{manifests.CONFIG_FILE}", "5"],
            user=USER,
            network_mode="host",
            volumes={
                str(self.work): {"bind": manifests.WORK_DIR, "mode": "rw"},
                str(config): {"bind": manifests.CONFIG_DIR, "mode": "ro"},
                str(self.model): {"bind": MODEL_MOUNT, "mode": "ro"},
            },
            environment={HISTORY_ENV: history} if history else {},
            labels={LABEL_SESSION: self.session, "soak.test": "job-image"},
        )
        self.container.start()

    def wait(self) -> tuple[int, str]:
        assert self.container is not None
        code = self.container.wait(timeout=RUN_TIMEOUT_S)["StatusCode"]
        return code, self.container.logs().decode()

    def run(self, variant: dict, history: str | None = None) -> tuple[int, str]:
        self.start(variant, history)
        try:
            return self.wait()
        finally:
            self.remove()

    def remove(self) -> None:
        if self.container is not None:
            self.container.remove(force=True)
            self.container = None


@pytest.fixture
def job(docker_client, job_image, test_session, tmp_path, model_volume, work_volume):
    container = JobContainer(
        docker_client, job_image, test_session, tmp_path, model_volume, work_volume
    )
    yield container
    container.remove()


def run_dirs(work: Path) -> list[Path]:
    return sorted(p.parent for p in (work / "soak-runs").glob("*/summary.json"))


def variant_summary(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    (variant,) = summary["variants"]
    return {"status": summary["status"], **variant}


def test_soak_k8s_names_the_tag_the_job_image_is_given():
    assert f"{images.JOB_REPOSITORY}:{images.LATEST}" == DEFAULT_IMAGE


def test_soak_image_job_of_a_base_that_is_not_there_is_exit_3(docker_client):
    result = subprocess.run(
        [sys.executable, "-m", "soak", "image", "job", "--base", "no-such/serving:1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout) == (3, "")
    assert result.stderr.startswith("soak: image no-such/serving:1 not found locally")
    assert result.stderr.count("\n") == 1


def test_the_job_image_is_tagged_latest_and_runs_as_a_pod_does(docker_client, job_image):
    assert job_image.startswith(f"{images.JOB_REPOSITORY}:")
    image = docker_client.images.get(job_image)
    assert docker_client.images.get(DEFAULT_IMAGE).id == image.id
    assert image.labels[images.IMAGE_LABEL] == images.JOB_KIND
    config = image.attrs["Config"]
    assert config["Entrypoint"] == ["/usr/local/bin/soak-nightly"]
    assert (config["User"], config["WorkingDir"]) == (USER, manifests.WORK_DIR)
    assert {
        "SOAK_SERVER_BINARY=tensorflow_model_server",
        f"{probe_library.INSTALLED_ENV}={probe_library.CONTAINER_LIBRARY}",
    } <= set(config["Env"])

    messages: list[str] = []
    assert images.ensure_job_image(docker_client, "standin", progress=messages.append) == job_image
    assert messages == []  # nothing built


@pytest.mark.slow
def test_a_planted_leak_exits_1_then_a_clean_run_0_recorded_in_postgresql(job, postgres_url):
    started = time.monotonic()
    code, log = job.run(PLANTED, history=postgres_url)
    assert code == 1, log
    (leak_run,) = run_dirs(job.work)
    leak = variant_summary(leak_run)
    assert (leak["status"], leak["memory"]["verdict"]) == ("completed", "leak"), log
    assert "jemalloc: verdict leak of live memory (" in log  # soak check, in the pod log
    assert leak["attribution"]["probe"] == "on"  # the image's own probe, no compiler
    assert leak["allocator_verified"] is True

    code, log = job.run(JEMALLOC, history=postgres_url)
    assert code == 0, log
    assert time.monotonic() - started < 2 * RUN_TIMEOUT_S
    clean_run = next(p for p in run_dirs(job.work) if p != leak_run)
    clean = variant_summary(clean_run)
    assert (clean["status"], clean["memory"]["verdict"]) == ("completed", "released"), log
    assert log.count("soak check: within limits") == 2, log  # the verdicts, the history

    recorded = store.runs(postgres_url)
    assert [Path(r.run_dir).name for r in recorded] == [leak_run.name, clean_run.name]
    assert [r.status for r in recorded] == ["completed", "completed"]
    assert not (job.work / "soak-runs" / "history.sqlite").exists()
    assert {r.server_binary for r in recorded} == {"/usr/bin/tensorflow_model_server"}
    assert all(r.backend == "process" for r in recorded)
    owners = {(p.stat().st_uid, p.stat().st_gid) for p in job.work.rglob("*")}
    assert owners == {(1000, 1000)}  # written as the pod's user


@pytest.mark.slow
def test_a_stopped_job_exits_143_with_its_partial_run_recorded(job):
    """A Job's deadline: SIGTERM to the container's first process, the nightly script,
    which passes it on to soak run; soak keeps and records what it measured (no
    SOAK_HISTORY: in the SQLite history in /work)."""
    job.start(JEMALLOC, swaps=30)
    events = job.work / "soak-runs"
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not any(",settled," in p.read_text() for p in events.glob("*/jemalloc/events.csv")):
        job.container.reload()
        assert job.container.status == "running", job.wait()
        assert time.monotonic() < deadline, "no swap settled"
        time.sleep(0.5)
    job.container.stop(timeout=120)
    code, log = job.wait()
    assert code == 143, log
    (run_dir,) = (p for p in events.iterdir() if p.is_dir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted", log
    (recorded,) = store.runs(events / "history.sqlite")
    assert (Path(recorded.run_dir).name, recorded.status) == (run_dir.name, "interrupted")


NO_PYTHON_DOCKERFILE = """
ARG BASE
FROM ${BASE}
RUN ln -s /bin/true /usr/local/bin/tensorflow_model_server && rm /usr/bin/python3.11*
"""


@pytest.mark.parametrize(
    "base_kind, message",
    [
        ("debian", "the base image has no tensorflow_model_server on PATH: not a TF Serving image"),
        (
            "no-python",
            "the base image has no python3.11 with venv, and apt-get could not install "
            "python3.11-venv (soak needs Python 3.11)",
        ),
    ],
)
def test_a_base_it_cannot_run_in_is_one_line_and_leaves_no_image(
    docker_client, tmp_path, test_session, base_kind, message
):
    debian = images.ensure_base_image(docker_client, progress=lambda m: None)
    base = debian
    own: list[str] = []  # the test's own images: its base and the allocator layer over it
    if base_kind == "no-python":
        (tmp_path / "Dockerfile").write_text(NO_PYTHON_DOCKERFILE)
        base = f"soak-test-no-python:{test_session}"
        docker_client.images.build(
            path=str(tmp_path),
            tag=base,
            buildargs={"BASE": debian},
            network_mode="none",
            rm=True,
            forcerm=True,
        )
        own.append(base)
    try:
        server = images.ensure_allocator_image(docker_client, base, progress=lambda m: None)
        if base_kind == "no-python":
            own.insert(0, server)
        server_id = docker_client.images.get(server).id
        with pytest.raises(EnvironmentFailure) as failure:
            images.ensure_job_image(docker_client, base, progress=lambda m: None)
        assert str(failure.value).endswith(f" failed: {message}")
        assert failure.value.exit_code == 3
        left = [
            image.id
            for image in docker_client.images.list(all=True)
            if image.attrs.get("Parent") == server_id
        ]
        assert left == []  # no step of the failed build stays behind
    finally:
        for tag in own:
            with contextlib.suppress(docker.errors.ImageNotFound):
                docker_client.images.remove(tag, force=True)


def test_the_recipe_hash_covers_the_recipe_the_entrypoint_and_the_source(tmp_path, monkeypatch):
    requirements = images.job_requirements()
    assert not any(r.startswith("tensorflow") for r in requirements)  # the server brings its own
    assert any(r.startswith("psycopg[binary]==") for r in requirements)  # the fleet's history
    server_id = "sha256:" + "0" * 64
    before = images.job_recipe_hash(server_id, requirements)
    assert images.job_recipe_hash("sha256:" + "1" * 64, requirements) != before
    assert images.job_recipe_hash(server_id, [*requirements, "extra==1"]) != before
    script = tmp_path / "scripts" / "soak-nightly"
    script.parent.mkdir()
    shutil.copy2(images.NIGHTLY_SCRIPT, script)
    monkeypatch.setattr(images, "PROJECT_ROOT", tmp_path)
    monkeypatch.setattr(images, "NIGHTLY_SCRIPT", script)
    monkeypatch.setattr(images, "standin_source_files", lambda: [script])
    moved = images.job_recipe_hash(server_id, requirements)
    with script.open("a") as text:
        text.write("# changed\n")
    assert images.job_recipe_hash(server_id, requirements) != moved


def test_a_failed_build_says_the_recipes_own_reason():
    output = ["Step 3/9 : RUN check", " ---> Running in 0123456789ab", "soak: no server here"]
    error = "The command '/bin/sh -c check' returned a non-zero code: 1"
    assert images._build_failure("soak-job:x", error, output) == (
        "building soak-job:x failed: no server here"
    )
    assert images._build_failure("soak-job:x", error, output[:2]) == (
        f"building soak-job:x failed: {error} (last output: ---> Running in 0123456789ab)"
    )
