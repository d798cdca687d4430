"""Container images soak builds itself: the stand-in image and the allocator layer
(docs/contract.md#docker).

No registry is reachable, so nothing is pulled. Each image is tagged with a
hash of its recipe and reused while that tag exists:

- `soak-debian-base:<hash>`: Debian bookworm from `mmdebstrap` + `docker import`
  (docker/base/make-debian-base.sh), with python3 and the allocator libraries.
- `soak-standin:<hash>`: the stand-in server installed with pip into a venv on
  that base (docker/standin/), with tensorflow/serving's entrypoint contract.
  The hash covers the recipes, the project source that goes in (the probe's
  too) and the project's dependencies, pinned to the versions soak itself runs
  with so that the process and docker backends run the same TensorFlow.
- `soak-alloc:<hash>`: jemalloc, tcmalloc and mimalloc added to any Debian or
  Ubuntu based TF Serving image (docker/allocators/); hash of the base image
  id, the recipe and the probe's source.
- `soak-job:<hash>`, also tagged `soak-job:latest`: soak installed beside the server
  of a TF Serving image's allocator layer (docker/job/), to soak it as a Kubernetes
  Job, the nightly sequence (scripts/soak-nightly) as its entrypoint; hash of the
  allocator layer's id, the recipe, the script, the project source and soak's
  dependencies with a PostgreSQL history's (pinned as for the stand-in, without
  TensorFlow).

The stand-in and the allocator layer hold the allocator probe (docs/contract.md#allocator-probe) at
`probe_library.CONTAINER_LIBRARY`, compiled in a build stage on the image's own
base, so against its glibc, by the probe's one recipe (soak/targets/probe/build.sh);
the compiler stays in that stage, which is removed after the build.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import docker
import docker.errors

from soak.core import extras
from soak.core.errors import EnvironmentFailure
from soak.targets import probe_library

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = PROJECT_ROOT / "docker"
BASE_SCRIPT = DOCKER_DIR / "base" / "make-debian-base.sh"
STANDIN_DIR = DOCKER_DIR / "standin"
ALLOCATORS_DIR = DOCKER_DIR / "allocators"
JOB_DIR = DOCKER_DIR / "job"
NIGHTLY_SCRIPT = PROJECT_ROOT / "scripts" / "soak-nightly"  # the Job image's entrypoint
# The allocator probe's source and recipe, copied into the allocator layer's context.
PROBE_FILES = (probe_library.SOURCE, probe_library.BUILD_SCRIPT)
PROBE_CONTEXT_DIR = "probe"
# What of the project goes into the stand-in image (besides pyproject.toml).
SOURCE_PACKAGES = ("soak", "soak_model_server")
OPTIONAL_SOURCE_FILES = ("README.md",)

STANDIN = "standin"
BASE_REPOSITORY = "soak-debian-base"
STANDIN_REPOSITORY = "soak-standin"
ALLOCATOR_REPOSITORY = "soak-alloc"
JOB_REPOSITORY = "soak-job"
LATEST = "latest"  # the Job image last asked for (soak k8s's default image)
HASH_LENGTH = 12
# A bookworm minbase with python3 is ~240 MB; far less means a broken import.
MIN_BASE_IMAGE_BYTES = 50 << 20
# The interpreter of the Debian base (bookworm): the wheels are chosen for it.
IMAGE_PYTHON = "3.11"
IMAGE_ABI = "cp311"


def manylinux_platforms(glibc_minor: int) -> tuple[str, ...]:
    """pip's platform tags of wheels that run on glibc 2.`glibc_minor` (x86_64)."""
    return (
        *(f"manylinux_2_{minor}_x86_64" for minor in range(glibc_minor, 4, -1)),
        "manylinux2014_x86_64",
        "manylinux2010_x86_64",
        "manylinux1_x86_64",
    )


IMAGE_PLATFORMS = manylinux_platforms(36)
# The Job image's base is a user's TF Serving image: wheels for glibc 2.28 and newer
# (Debian 10, Ubuntu 20.04 on).
JOB_PLATFORMS = manylinux_platforms(28)
# Marks the first stage of a multi-stage build, removed after the build (docker/standin/,
# docker/allocators/).
BUILD_STAGE_LABEL = "soak.build-stage"
# What soak built an image as: both kinds hold the allocator probe.
IMAGE_LABEL = "soak.image"
STANDIN_KIND, ALLOCATORS_KIND, JOB_KIND = "standin", "allocators", "job"
# Needed only to build the project's wheel inside the image (pyproject's build-system).
BUILD_REQUIREMENTS = ("setuptools>=68", "wheel")

Progress = Callable[[str], None]


# --- public API -------------------------------------------------------------------


def ensure_standin_image(client: docker.DockerClient, *, progress: Progress = print) -> str:
    """The stand-in image's tag, building the base and the image if missing."""
    _require_recipes(BASE_SCRIPT, STANDIN_DIR / "Dockerfile", PROJECT_ROOT / "pyproject.toml")
    requirements = pinned_requirements()
    tag = f"{STANDIN_REPOSITORY}:{standin_recipe_hash(requirements)}"

    def build() -> None:
        base = ensure_base_image(client, progress=progress)
        progress(f"building {tag} (stand-in server on {base}; a few minutes the first time)")
        _build_from_recipe(
            client,
            tag,
            fill=lambda context: _assemble_standin_context(context, requirements, progress),
            buildargs={"BASE_IMAGE": base},
            labels={IMAGE_LABEL: STANDIN_KIND, "soak.base": base},
            progress=progress,
        )

    build_once(client, tag, build)
    return tag


def ensure_base_image(client: docker.DockerClient, *, progress: Progress = print) -> str:
    """The Debian base image's tag, made with mmdebstrap + docker import if missing."""
    tag = f"{BASE_REPOSITORY}:{_hash_parts(_file_parts([BASE_SCRIPT], BASE_SCRIPT.parent))}"
    if _image_exists(client, tag):
        if _image_size(client, tag) >= MIN_BASE_IMAGE_BYTES:
            return tag
        progress(f"{tag} is too small to be a Debian base (an interrupted import?); rebuilding")
        client.images.remove(tag, force=True)
    if shutil.which("mmdebstrap") is None:
        raise EnvironmentFailure(
            "mmdebstrap not found: apt-get install mmdebstrap (needed once to build the "
            "stand-in's Debian base image)"
        )
    started = time.monotonic()
    progress(f"building {tag} (Debian bookworm with mmdebstrap)")
    result = subprocess.run([str(BASE_SCRIPT), tag], capture_output=True, text=True)
    if result.returncode != 0:
        raise EnvironmentFailure(f"building {tag} failed: {_last_line(result.stderr)}")
    size = _image_size(client, tag) if _image_exists(client, tag) else 0
    if size < MIN_BASE_IMAGE_BYTES:
        raise EnvironmentFailure(f"building {tag} failed: imported image has only {size} bytes")
    progress(f"built {tag} in {time.monotonic() - started:.0f} s")
    return tag


def ensure_allocator_image(
    client: docker.DockerClient, base: str, *, progress: Progress = print
) -> str:
    """The allocator layer over `base` (a local Debian/Ubuntu image), built if missing."""
    _require_recipes(ALLOCATORS_DIR / "Dockerfile", *PROBE_FILES)
    try:
        base_image = client.images.get(base)
    except docker.errors.ImageNotFound:
        raise EnvironmentFailure(_not_found_message(base)) from None
    tag = f"{ALLOCATOR_REPOSITORY}:{allocator_recipe_hash(base_image.id)}"

    def build() -> None:
        progress(f"building {tag} (jemalloc, tcmalloc, mimalloc and the probe over {base})")
        _build_from_recipe(
            client,
            tag,
            fill=_assemble_allocator_context,
            buildargs={
                "BASE_IMAGE": base_image.id,
                "BASE_USER": base_image.attrs["Config"].get("User") or "root",
            },
            labels={IMAGE_LABEL: ALLOCATORS_KIND, "soak.base": base},
            progress=progress,
        )

    build_once(client, tag, build)
    return tag


def ensure_job_image(client: docker.DockerClient, base: str, *, progress: Progress = print) -> str:
    """The Job image over `base` (a local TF Serving image, or `standin`), built if missing,
    and tagged `soak-job:latest` as well: soak beside the server, with the allocator layer,
    the nightly sequence as its entrypoint."""
    _require_recipes(JOB_DIR / "Dockerfile", NIGHTLY_SCRIPT, PROJECT_ROOT / "pyproject.toml")
    server = ensure_allocator_image(
        client, resolve_image(client, base, progress=progress), progress=progress
    )
    requirements = job_requirements()
    tag = f"{JOB_REPOSITORY}:{job_recipe_hash(client.images.get(server).id, requirements)}"

    def build() -> None:
        progress(f"building {tag} (soak beside the server of {base})")
        _build_from_recipe(
            client,
            tag,
            fill=lambda context: _assemble_job_context(context, requirements, progress),
            buildargs={"BASE_IMAGE": server},
            labels={IMAGE_LABEL: JOB_KIND, "soak.base": base},
            progress=progress,
        )

    build_once(client, tag, build)
    client.images.get(tag).tag(JOB_REPOSITORY, LATEST)
    return tag


def resolve_image(client: docker.DockerClient, image: str, *, progress: Progress = print) -> str:
    """`standin` -> the stand-in image (built if missing); any other image must be local."""
    if image == STANDIN:
        return ensure_standin_image(client, progress=progress)
    if not _image_exists(client, image):
        raise EnvironmentFailure(_not_found_message(image))
    return image


def holds_probe(client: docker.DockerClient, image: str) -> bool:
    """Built by soak (the stand-in or the allocator layer), so the probe is in it. (An
    image of an older soak without it: the run's maps check finds it missing.)"""
    labels = client.images.get(image).labels or {}
    return labels.get(IMAGE_LABEL) in (STANDIN_KIND, ALLOCATORS_KIND)


def image_for_allocators(
    client: docker.DockerClient,
    image: str,
    allocators: Iterable[str],
    *,
    progress: Progress = print,
) -> str:
    """The one image all variants of a run share.

    The stand-in already holds every allocator; any other image gets the
    allocator layer when a variant needs more than glibc.
    """
    resolved = resolve_image(client, image, progress=progress)
    if image == STANDIN or set(allocators) <= {"glibc"}:
        return resolved
    return ensure_allocator_image(client, resolved, progress=progress)


# --- recipe and hash --------------------------------------------------------------


def pinned_requirements(with_extras: Iterable[str] = (extras.STANDIN,)) -> list[str]:
    """The project's dependencies and those of `with_extras` (the stand-in's: `standin`),
    each pinned to the version installed here (if any), with its own extras
    (`psycopg[binary]`)."""
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    wanted = [r for extra in with_extras for r in project["optional-dependencies"][extra]]
    pinned = []
    for requirement in [*project["dependencies"], *wanted]:
        name, its_extras = _name_and_extras(requirement)
        try:
            pinned.append(f"{name}{its_extras}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pinned.append(requirement)
    return pinned


def job_requirements() -> list[str]:
    """The Job image's: soak's with a PostgreSQL history's (a Job records to the fleet's
    shared history), pinned; not the stand-in's TensorFlow (the server has its own)."""
    return pinned_requirements(with_extras=(extras.POSTGRES,))


def _name_and_extras(requirement: str) -> tuple[str, str]:
    """'psycopg[binary]>=3.1' -> ('psycopg', '[binary]')."""
    name = re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]
    its_extras = re.match(r"\[[^\]]*\]", requirement[len(name) :].lstrip())
    return name, its_extras.group(0) if its_extras else ""


def standin_source_files() -> list[Path]:
    """The project files copied into the stand-in image, in a stable order."""
    files = [PROJECT_ROOT / "pyproject.toml"]
    files += [p for p in (PROJECT_ROOT / n for n in OPTIONAL_SOURCE_FILES) if p.exists()]
    for package in SOURCE_PACKAGES:
        files += sorted(
            p
            for p in (PROJECT_ROOT / package).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
        )
    return files


def standin_recipe_hash(requirements: list[str]) -> str:
    recipe_files = [BASE_SCRIPT, *sorted(STANDIN_DIR.iterdir())]
    return _hash_parts(
        [
            *_file_parts(recipe_files, DOCKER_DIR),
            *_file_parts(standin_source_files(), PROJECT_ROOT),
            "\n".join(requirements).encode(),
        ]
    )


def job_recipe_hash(server_image_id: str, requirements: list[str]) -> str:
    """The allocator layer's id (so the server's image), the recipe, the entrypoint script,
    the project source and the pinned dependencies."""
    return _hash_parts(
        [
            server_image_id.encode(),
            *_file_parts(sorted(JOB_DIR.iterdir()), DOCKER_DIR),
            *_file_parts([NIGHTLY_SCRIPT], PROJECT_ROOT),
            *_file_parts(standin_source_files(), PROJECT_ROOT),
            "\n".join(requirements).encode(),
        ]
    )


def allocator_recipe_hash(base_image_id: str) -> str:
    """The base image's id, the recipe and the probe's source (a changed probe: a new layer)."""
    return _hash_parts(
        [
            base_image_id.encode(),
            *_file_parts([ALLOCATORS_DIR / "Dockerfile"], ALLOCATORS_DIR),
            *_file_parts(PROBE_FILES, probe_library.PROBE_DIR),
        ]
    )


def _file_parts(files: Iterable[Path], root: Path) -> list[bytes]:
    """Relative path and content of each file, so renames change the hash too."""
    parts = []
    for path in files:
        parts += [str(path.relative_to(root)).encode(), path.read_bytes()]
    return parts


def _hash_parts(parts: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))  # length-prefixed: no ambiguous joins
        digest.update(part)
    return digest.hexdigest()[:HASH_LENGTH]


# --- building ---------------------------------------------------------------------


def _assemble_standin_context(context: Path, requirements: list[str], progress: Progress) -> None:
    """Dockerfile, entrypoint, requirements, wheelhouse and project source in `context`."""
    for recipe in STANDIN_DIR.iterdir():
        shutil.copy2(recipe, context / recipe.name)
    (context / "requirements.txt").write_text("\n".join(requirements) + "\n")
    _copy_source(context / "src")
    progress("downloading wheels for the image (pip download on this host)")
    _download_wheels(
        context / "wheels", [*requirements, *BUILD_REQUIREMENTS], IMAGE_PLATFORMS, "stand-in"
    )


def _assemble_job_context(context: Path, requirements: list[str], progress: Progress) -> None:
    """Dockerfile, the nightly script, requirements, wheelhouse and project source."""
    for recipe in JOB_DIR.iterdir():
        shutil.copy2(recipe, context / recipe.name)
    shutil.copy2(NIGHTLY_SCRIPT, context / NIGHTLY_SCRIPT.name)
    (context / "requirements.txt").write_text("\n".join(requirements) + "\n")
    _copy_source(context / "src")
    progress("downloading wheels for the image (pip download on this host)")
    _download_wheels(context / "wheels", [*requirements, *BUILD_REQUIREMENTS], JOB_PLATFORMS, "Job")


def _copy_source(dest: Path) -> None:
    for path in standin_source_files():
        target = dest / path.relative_to(PROJECT_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def _download_wheels(
    dest: Path, requirements: list[str], platforms: Iterable[str], image: str
) -> None:
    """Wheels for the image's Python, fetched with the host's pip and its configuration.

    The image gets no index at all: whatever index, mirror or proxy
    certificate the host's pip is set up with stays on the host.
    """
    tags = [arg for platform in platforms for arg in ("--platform", platform)]
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(dest),
        "--only-binary=:all:", "--python-version", IMAGE_PYTHON, "--implementation", "cp",
        "--abi", IMAGE_ABI, *tags, *requirements,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        errors = [ln for ln in result.stderr.splitlines() if ln.startswith("ERROR")]
        raise EnvironmentFailure(
            f"downloading wheels for the {image} image failed: "
            + (errors[0] if errors else _last_line(result.stderr))
        )


def build_once(client: docker.DockerClient, tag: str, build: Callable[[], None]) -> bool:
    """Run `build` unless `tag` exists, one builder per tag on this host at a time; True if
    this call built it.

    Two soaks that built the same tag at once (parallel runs, a test suite's workers) both
    finished, and the build that lost the tag stayed behind as a dangling image the size of
    the stand-in (~2 GB). The second now waits on a lock file, then finds the tag built.
    """
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", tag)
    with contextlib.ExitStack() as held:
        try:  # the lock goes with the file's close
            lock = held.enter_context(
                open(Path(tempfile.gettempdir()) / f"soak-build-{name}.lock", "a")
            )
            fcntl.flock(lock, fcntl.LOCK_EX)
        except OSError:  # another user's lock file: build unguarded, as before
            pass
        if _image_exists(client, tag):
            return False
        build()
        return True


def _build_from_recipe(
    client: docker.DockerClient,
    tag: str,
    *,
    fill: Callable[[Path], None],
    buildargs: dict[str, str],
    labels: dict[str, str],
    progress: Progress,
) -> None:
    """Build `tag` from a context that `fill` writes into a temp dir; this build's untagged
    first stage is removed afterwards (SOAK_BUILD_ID names it), and the time reported. A
    failed build leaves none of the steps it made either."""
    started = time.monotonic()
    build_id = uuid.uuid4().hex
    output: list[str] = []
    with tempfile.TemporaryDirectory(prefix="soak-context-") as tmp:
        context = Path(tmp)
        fill(context)
        try:
            _build(
                client,
                context,
                tag,
                buildargs={**buildargs, "SOAK_BUILD_ID": build_id},
                labels=labels,
                progress=progress,
                output=output,
            )
        except EnvironmentFailure:
            _remove_failed_steps(client, output)
            raise
        finally:
            _remove_build_stages(client, build_id)
    progress(f"built {tag} in {time.monotonic() - started:.0f} s")


def _assemble_allocator_context(context: Path) -> None:
    shutil.copy2(ALLOCATORS_DIR / "Dockerfile", context / "Dockerfile")
    (context / PROBE_CONTEXT_DIR).mkdir()
    for path in PROBE_FILES:
        shutil.copy2(path, context / PROBE_CONTEXT_DIR / path.name)


def _build(
    client: docker.DockerClient,
    context: Path,
    tag: str,
    *,
    buildargs: dict[str, str],
    labels: dict[str, str],
    progress: Progress,
    output: list[str] | None = None,
) -> None:
    """`docker build --network host`, steps reported, the failing step's output in the error;
    the build's output lines go to `output` too."""
    output = [] if output is None else output
    try:
        for chunk in client.api.build(
            path=str(context),
            tag=tag,
            buildargs=buildargs,
            labels=labels,
            network_mode="host",
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
        ):
            if "error" in chunk:
                raise EnvironmentFailure(_build_failure(tag, chunk["error"], output))
            for line in chunk.get("stream", "").splitlines():
                output.append(line)
                if line.startswith("Step "):
                    progress(f"  {line}")
    except docker.errors.APIError as exc:
        raise EnvironmentFailure(f"building {tag} failed: {exc.explanation or exc}") from None


def _remove_build_stages(client: docker.DockerClient, build_id: str) -> None:
    """Remove the untagged image of a multi-stage build's first stage: only this build's."""
    stage = {"label": f"{BUILD_STAGE_LABEL}={build_id}", "dangling": True}
    with contextlib.suppress(docker.errors.APIError):
        for image in client.images.list(filters=stage):
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(image.id)


def _build_failure(tag: str, error: str, output: list[str]) -> str:
    """One line: the reason a recipe gave (its `soak: ` line), else the engine's error and
    the build's last output."""
    said = [ln.strip().removeprefix("soak: ") for ln in output if ln.startswith("soak: ")]
    if said:
        return f"building {tag} failed: {said[-1]}"
    return f"building {tag} failed: {_last_line(error)}" + _context_note(output)


def _remove_failed_steps(client: docker.DockerClient, output: list[str]) -> None:
    """Remove the images a failed build made (the legacy builder keeps each step's): the
    untagged ones its output names (` ---> ID`), last first, so that each is a leaf then.
    A tagged one (the base) is kept, and so is one that another image builds on (the
    engine refuses)."""
    for line in reversed(output):
        match = re.fullmatch(r" ---> ([0-9a-f]{12,64})", line)
        if match is None:
            continue
        with contextlib.suppress(docker.errors.APIError):
            if not client.images.get(match.group(1)).tags:
                client.images.remove(match.group(1))


def _context_note(output: list[str]) -> str:
    lines = [ln.strip() for ln in output if ln.strip()]
    return f" (last output: {lines[-1][:200]})" if lines else ""


# --- small helpers ----------------------------------------------------------------


def _image_exists(client: docker.DockerClient, image: str) -> bool:
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def _image_size(client: docker.DockerClient, image: str) -> int:
    return int(client.images.get(image).attrs.get("Size") or 0)


def _not_found_message(image: str) -> str:
    return (
        f"image {image} not found locally (no registry reachable); build it or use --image standin"
    )


def _require_recipes(*paths: Path) -> None:
    for path in paths:
        if not path.exists():
            raise EnvironmentFailure(
                f"{path} not found: soak builds images from its source checkout"
            )


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"
