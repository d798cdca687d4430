"""The model versions a run cycles through: the user's `--model`, or the demo model."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from soak.core.errors import UsageError
from soak.core.extras import require_tensorflow

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
DEMO_VERSIONS = 3
DEMO_REVISION = 3  # the demo graph's: a new one is generated into a new cache dir


# TF Serving's warmup records in a version dir (soak_model_server.warmup reads and writes them)
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"


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
    for version in versions:
        problem = saved_model_problem(version)
        if problem:
            raise UsageError(f"{version} is not a usable SavedModel: {problem}")
    return ModelSource(versions, max(_dir_size(v) for v in versions))


def saved_model_problem(path: Path) -> str | None:
    """Why the SavedModel in `path` cannot load, as far as its files tell; None if none.

    saved_model.pb is parsed as the protobuf it must be, without TensorFlow: a
    SavedModel message (its field 2 `meta_graphs` read from the wire format), each
    meta graph a MetaGraphDef (TF's descriptor, from the stand-in's descriptor set)
    with a graph. A truncated or garbled file fails; a flipped byte inside a
    tensor's content cannot be seen (the server's first load says so, at once).
    """
    pb = path / "saved_model.pb"
    try:
        if pb.is_file():
            return _saved_model_pb_problem(pb.read_bytes())
        text = (path / "saved_model.pbtxt").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return f"cannot read it: {exc}"
    return None if "meta_graphs" in text else "saved_model.pbtxt has no meta_graphs"


_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_SAVED_MODEL_META_GRAPHS = 2
_META_GRAPH_GRAPH_DEF = 2


def _saved_model_pb_problem(data: bytes) -> str | None:
    if not data:
        return "saved_model.pb is empty"
    try:
        meta_graphs = [v for f, v in _fields(data) if f == _SAVED_MODEL_META_GRAPHS]
        if not meta_graphs:
            return "saved_model.pb holds no meta graph"
        for meta_graph in meta_graphs:
            if not any(f == _META_GRAPH_GRAPH_DEF for f, _ in _fields(meta_graph)):
                return "saved_model.pb has a meta graph without a graph"
    except ValueError as exc:
        return f"saved_model.pb is corrupt ({exc})"
    from google.protobuf.message import DecodeError

    from soak_model_server.protos import message_class  # protobuf only, no TensorFlow

    meta_graph_def = message_class("tensorflow.MetaGraphDef")
    for meta_graph in meta_graphs:
        try:
            meta_graph_def.FromString(meta_graph)
        except DecodeError as exc:
            return f"saved_model.pb is corrupt (its meta graph does not parse: {exc})"
    return None


def _fields(data: bytes) -> list[tuple[int, bytes]]:
    """Top-level fields of a protobuf message: (field number, payload of length-delimited
    fields, else b""); ValueError where the bytes are not a message."""
    fields = []
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ValueError(f"field number 0 at byte {pos}")
        if wire_type == _VARINT:
            _, pos = _varint(data, pos)
            payload = b""
        elif wire_type == _I64:
            pos += 8
            payload = b""
        elif wire_type == _I32:
            pos += 4
            payload = b""
        elif wire_type == _LEN:
            length, pos = _varint(data, pos)
            payload = data[pos : pos + length]
            pos += length
        else:
            raise ValueError(f"wire type {wire_type} at byte {pos}")
        if pos > end:
            raise ValueError(f"truncated at byte {end}")
        fields.append((number, payload))
    return fields


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError(f"truncated at byte {len(data)}")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError(f"bad varint at byte {pos}")


def _demo_cache_path(size_mb: float) -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "soak"
    return cache / f"demo-model-{size_mb:g}mb-v{DEMO_VERSIONS}-r{DEMO_REVISION}"


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
    from soak.driver.demo_model import write_demo_model  # imports TensorFlow: only when needed

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
