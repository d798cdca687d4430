"""Image building and reuse against the real engine (no registry: nothing is pulled)."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import docker.errors
import pytest

from soak.core.errors import EnvironmentFailure
from soak.targets import images, probe_library

pytestmark = pytest.mark.docker

LIBRARIES = ("libjemalloc.so.2", "libtcmalloc_minimal.so.4", "libmimalloc.so.2")
LIBRARY_DIR = "/usr/lib/x86_64-linux-gnu"
# Asks the probe loaded into this very interpreter for its `stats` (one JSON line).
ASK_OWN_PROBE = """
import os, socket, sys, time
path = f"/tmp/p.{os.getpid()}.sock"
deadline = time.monotonic() + 20
while True:  # the probe's thread binds and listens soon after the start
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        break
    except (FileNotFoundError, ConnectionRefusedError):
        s.close()
        if time.monotonic() > deadline:
            sys.exit(f"no probe listening on {path}")
        time.sleep(0.02)
s.sendall(b"stats\\n")
sys.stdout.write(s.makefile().readline())
"""


def run_in(
    client, image: str, command: list[str], environment: dict[str, str] | None = None
) -> tuple[int, str]:
    """Run a command in a throwaway container (create + start: never a pull)."""
    container = client.containers.create(
        image,
        command=command,
        entrypoint=[],
        environment=environment or {},
        network_mode="none",
        labels={"soak.test": "1"},
    )
    try:
        container.start()
        code = container.wait(timeout=120)["StatusCode"]
        return code, container.logs().decode()
    finally:
        container.remove(force=True)


def test_standin_image_is_built_once_then_reused(docker_client, standin_image):
    assert re.fullmatch(r"soak-standin:[0-9a-f]{12}", standin_image)
    assert standin_image.endswith(images.standin_recipe_hash(images.pinned_requirements()))
    image_id = docker_client.images.get(standin_image).id

    messages: list[str] = []
    assert images.ensure_standin_image(docker_client, progress=messages.append) == standin_image
    assert messages == []  # nothing built
    assert docker_client.images.get(standin_image).id == image_id


def test_standin_image_has_tf_serving_entrypoint_contract(docker_client, standin_image):
    config = docker_client.images.get(standin_image).attrs["Config"]
    assert config["Entrypoint"] == ["/usr/bin/tf_serving_entrypoint.sh"]
    assert {"MODEL_BASE_PATH=/models", "MODEL_NAME=model"} <= set(config["Env"])
    code, output = run_in(
        docker_client,
        standin_image,
        ["sh", "-c", "command -v tensorflow_model_server && ls /usr/lib/x86_64-linux-gnu"],
    )
    assert code == 0, output
    assert output.startswith("/usr/bin/tensorflow_model_server\n")
    assert all(library in output.split() for library in LIBRARIES)


def probe_stats(client, image: str, python: str, preload: list[str]) -> dict:
    """The `stats` answer of the probe preloaded (after `preload`) into `python` in `image`."""
    environment = {
        "LD_PRELOAD": ":".join([*preload, probe_library.CONTAINER_LIBRARY]),
        probe_library.SOCKET_ENV: "/tmp/p.%p.sock",
    }
    code, output = run_in(client, image, [python, "-c", ASK_OWN_PROBE], environment)
    assert code == 0, output
    return json.loads(output)


def assert_probe_answers(client, image: str, python: str) -> None:
    """The image's probe loads and names the allocator that won: glibc, then jemalloc."""
    glibc = probe_stats(client, image, python, [])
    assert glibc["allocator"] == "glibc" and glibc["in_use_bytes"] > 0, glibc
    jemalloc = probe_stats(client, image, python, [f"{LIBRARY_DIR}/libjemalloc.so.2"])
    assert jemalloc["allocator"] == "jemalloc" and jemalloc["in_use_bytes"] > 0, jemalloc


def test_standin_image_holds_the_probe(docker_client, standin_image):
    code, output = run_in(
        docker_client,
        standin_image,
        [
            "sh",
            "-c",
            f"ls -l {probe_library.CONTAINER_LIBRARY}; command -v gcc cc || echo no compiler; "
            "/opt/soak/bin/python -c 'from soak.targets import probe_library as p; "
            "print(p.SOURCE.is_file(), p.BUILD_SCRIPT.is_file())'",
        ],
    )
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0].startswith("-rwxr-xr-x ") and lines[0].endswith(probe_library.CONTAINER_LIBRARY)
    assert lines[1:] == ["no compiler", "True True"]  # the compiler stayed in the build stage
    assert_probe_answers(docker_client, standin_image, "/opt/soak/bin/python")


def test_recipe_hashes_cover_the_probe(tmp_path, monkeypatch):
    assert {probe_library.SOURCE, probe_library.BUILD_SCRIPT} <= set(images.standin_source_files())
    base_id = "sha256:" + "0" * 64
    before = images.allocator_recipe_hash(base_id)
    changed = tmp_path / "probe"
    changed.mkdir()
    for path in images.PROBE_FILES:
        shutil.copy2(path, changed / path.name)
    monkeypatch.setattr(probe_library, "PROBE_DIR", changed)
    monkeypatch.setattr(images, "PROBE_FILES", tuple(changed / p.name for p in images.PROBE_FILES))
    assert images.allocator_recipe_hash(base_id) == before  # same names, same bytes
    with (changed / probe_library.SOURCE.name).open("a") as source:
        source.write("/* changed */\n")
    assert images.allocator_recipe_hash(base_id) != before


def test_recipe_hash_follows_the_pinned_versions():
    requirements = images.pinned_requirements()
    assert any(r.startswith("tensorflow-cpu==") for r in requirements)
    changed = [*requirements[:-1], requirements[-1] + ".post1"]
    assert images.standin_recipe_hash(changed) != images.standin_recipe_hash(requirements)


def test_resolve_image(docker_client, standin_image):
    assert images.resolve_image(docker_client, "standin") == standin_image
    assert images.resolve_image(docker_client, standin_image) == standin_image
    with pytest.raises(EnvironmentFailure) as failure:
        images.resolve_image(docker_client, "tensorflow/serving:2.99.0")
    assert str(failure.value) == (
        "image tensorflow/serving:2.99.0 not found locally (no registry reachable); "
        "build it or use --image standin"
    )
    assert failure.value.exit_code == 3


def test_allocator_image_over_a_debian_base(docker_client, standin_image):
    base = images.ensure_base_image(docker_client, progress=lambda m: None)
    tag = images.ensure_allocator_image(docker_client, base, progress=lambda m: None)
    assert re.fullmatch(r"soak-alloc:[0-9a-f]{12}", tag)
    code, output = run_in(docker_client, tag, ["ls", LIBRARY_DIR])
    assert code == 0 and all(library in output.split() for library in LIBRARIES)
    code, output = run_in(docker_client, tag, ["sh", "-c", "command -v gcc cc || echo none"])
    assert (code, output) == (0, "none\n")  # the compiler stayed in the build stage
    assert_probe_answers(docker_client, tag, "/usr/bin/python3")

    messages: list[str] = []
    assert images.ensure_allocator_image(docker_client, base, progress=messages.append) == tag
    assert messages == []

    assert images.image_for_allocators(docker_client, base, ["glibc"]) == base
    assert images.image_for_allocators(docker_client, base, ["glibc", "jemalloc"]) == tag
    assert images.image_for_allocators(docker_client, "standin", ["jemalloc"]) == standin_image


def test_allocator_image_of_unknown_base_names_it(docker_client):
    with pytest.raises(EnvironmentFailure, match="image no-such/serving:1 not found locally"):
        images.ensure_allocator_image(docker_client, "no-such/serving:1")


@pytest.mark.parametrize(
    "fake_mmdebstrap, message",
    [
        ("exit 1", "mmdebstrap failed: no base image made"),
        ('printf x > "${@: -1}"', "mmdebstrap wrote only 1 bytes: no base image made"),
    ],
)
def test_failed_mmdebstrap_tags_no_image(docker_client, tmp_path, fake_mmdebstrap, message):
    """The trap of `mmdebstrap | docker import -`: a failed bootstrap must tag nothing."""
    fake = tmp_path / "bin" / "mmdebstrap"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/bash\n{fake_mmdebstrap}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    tag = f"soak-test-trap:{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        [str(images.BASE_SCRIPT), tag],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"},
    )
    assert result.returncode == 1
    assert result.stderr.strip() == message
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(tag)


def test_two_builds_of_one_tag_at_once_leave_one_image(docker_client, tmp_path):
    """Parallel soaks on one engine can want the same tag together: one builds, the other
    waits and finds it built (before, both built and the loser stayed dangling, ~2 GB)."""
    base = images.ensure_base_image(docker_client, progress=lambda m: None)
    mark = uuid.uuid4().hex
    tag = f"soak-test-race:{mark[:8]}"

    def build(n: int) -> bool:
        context = tmp_path / str(n)
        context.mkdir()
        (context / "Dockerfile").write_text(f"FROM {base}\nARG N\nRUN echo $N > /n\n")
        return images.build_once(
            docker_client,
            tag,
            lambda: images._build(
                docker_client,
                context,
                tag,
                buildargs={"N": str(n)},  # no shared cache: each build its own image
                labels={"soak.test": mark},
                progress=lambda m: None,
            ),
        )

    with ThreadPoolExecutor(2) as pool:
        built = list(pool.map(build, range(2)))
    try:
        assert sorted(built) == [False, True]
        left = docker_client.images.list(filters={"label": f"soak.test={mark}"})
        assert [image.id for image in left] == [docker_client.images.get(tag).id]
    finally:
        for image in docker_client.images.list(filters={"label": f"soak.test={mark}"}):
            docker_client.images.remove(image.id, force=True)
