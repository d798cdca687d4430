"""The model versions a run cycles through: the user's `--model`, or the demo model."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from soak.errors import UsageError
from soak.extras import require_tensorflow

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
DEMO_VERSIONS = 3


@dataclass(frozen=True)
class ModelSource:
    """Version dirs to stage in turn (cycled), and the size that scales the threshold."""

    versions: list[Path]
    size_bytes: int  # on-disk size of one version (the largest)


def is_saved_model(path: Path) -> bool:
    return any((path / name).is_file() for name in SAVED_MODEL_FILES)


def resolve_model(model: str | None, demo_size_mb: float) -> ModelSource:
    """`--model` is a SavedModel dir or a base path of numeric versions."""
    path = Path(model) if model else demo_model_path(demo_size_mb)
    if not path.is_dir():
        raise UsageError(f"model path is not a directory: {path}")
    if is_saved_model(path):
        versions = [path]
    else:
        numeric = sorted(
            (p for p in path.iterdir() if p.name.isdigit() and p.is_dir()),
            key=lambda p: int(p.name),
        )
        versions = [p for p in numeric if is_saved_model(p)]
        if not versions:
            raise UsageError(
                f"{path} is neither a SavedModel (no saved_model.pb) nor a base path "
                "of numeric version dirs holding one"
            )
    return ModelSource(versions, max(_dir_size(v) for v in versions))


def _demo_cache_path(size_mb: float) -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "soak"
    return cache / f"demo-model-{size_mb:g}mb-v{DEMO_VERSIONS}"


def cached_demo_model(size_mb: float) -> Path | None:
    """The demo model of this size if an earlier run generated it."""
    path = _demo_cache_path(size_mb)
    return path if path.is_dir() else None


def demo_model_path(size_mb: float) -> Path:
    """The demo model, generated once into a cache dir and reused by later runs."""
    cached = cached_demo_model(size_mb)
    if cached is not None:
        return cached
    require_tensorflow("generating the demo model")
    from soak.demo_model import write_demo_model  # imports TensorFlow: only when needed

    path = _demo_cache_path(size_mb)
    cache = path.parent
    tmp = cache / f".{path.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_demo_model(tmp, versions=DEMO_VERSIONS, size_mb=size_mb)
    try:
        tmp.rename(path)
    except OSError:  # another run made it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
