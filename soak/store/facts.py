"""variant.json and environment.json as typed records (docs/contract.md#run-directory).

The driver writes them; the analysis reads them back into the `RunResult`, so
nothing else opens them. Reading is lenient, as the run may have been killed or
written by an older soak: a missing or unreadable file reads as None, a missing
key as its default, a key of the wrong type as unknown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from soak.store.atomic import write_atomically
from soak.store.records import Status

# environment.json's key for the flag TF reads from the environment (as it is spelled there)
_ONEDNN_KEY = "TF_ENABLE_ONEDNN_OPTS"


@dataclass
class VariantFacts:
    """variant.json: what soak knows about a variant besides its CSVs.

    Rewritten as the variant goes (status `running` until it ends), so a killed
    run still says how far it got. `target`, `last_memory` and `metrics` are
    free-form descriptions for a reader of the file, not read by the analysis.
    """

    name: str
    allocator: str
    library: str | None = None
    allocator_verified: bool = False
    allocator_check: str | None = None  # how the allocator was (not) seen in the maps
    status: str = Status.RUNNING
    reason: str | None = None
    model_size_bytes: int | None = None
    split: int = 1  # parts per predict request (--split); runs before --split: 1
    probe: str | None = None  # "on" or "off: REASON" (None: an older soak)
    target: dict[str, Any] | None = None  # pid, command, environment / container facts
    last_memory: dict[str, Any] | None = None  # the last sample, in MiB
    metrics: dict[str, Any] | None = None  # with --metrics: where and how it scraped
    cleanup_errors: list[str] = field(default_factory=list)  # steps of the stop that failed

    def write(self, path: Path) -> None:
        _write_json(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> VariantFacts | None:
        data = _read_json(path)
        if data is None or not isinstance(data.get("name", ""), str):
            return None
        values = _typed(cls, data)
        values.setdefault("name", path.parent.name)
        values.setdefault("allocator", "")  # unknown: the reader knows it from run.toml
        return cls(**values)


@dataclass(frozen=True)
class Environment:
    """environment.json: the host and software a run's figures depend on."""

    host: str | None = None
    os: str | None = None
    kernel: str | None = None
    machine: str | None = None  # uname's machine, e.g. x86_64
    cores: int | None = None
    usable_cores: int | None = None
    memory_total_bytes: int | None = None
    glibc_version: str | None = None
    python: str | None = None
    tensorflow: str | None = None
    soak: str | None = None
    allocators: dict[str, Any] = field(default_factory=dict)  # name -> library, package, version
    tf_enable_onednn_opts: str | None = None
    backend: str | None = None
    server_args: tuple[str, ...] = ()
    server_binary: str | None = None  # the process backend's server
    image: str | None = None  # the docker backend's image
    docker: dict[str, Any] | None = None  # the engine's facts (docker backend)
    removed_leftovers: tuple[str, ...] = ()  # leftovers of dead runs removed at the start

    @property
    def machine_text(self) -> str:
        """What tells two machines apart for a comparison (pytest-benchmark's machine_info)."""
        return machine_text(self.host, self.cores, self.memory_total_bytes)

    @property
    def docker_version(self) -> str | None:
        version = (self.docker or {}).get("engine_version")
        return version if isinstance(version, str) else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data[_ONEDNN_KEY] = data.pop("tf_enable_onednn_opts")
        data["server_args"], data["removed_leftovers"] = (
            list(self.server_args),
            list(self.removed_leftovers),
        )
        return data

    def write(self, path: Path) -> None:
        _write_json(path, self.to_json())

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Environment:
        data = dict(data)
        if _ONEDNN_KEY in data:
            data["tf_enable_onednn_opts"] = data.pop(_ONEDNN_KEY)
        return cls(**_typed(cls, data))

    @classmethod
    def read(cls, path: Path) -> Environment | None:
        data = _read_json(path)
        return None if data is None else cls.from_json(data)


def machine_text(host: str | None, cores: int | None, memory_bytes: int | None) -> str:
    memory = f"{memory_bytes / (1 << 30):.0f} GiB" if memory_bytes else "? GiB"
    return f"{host or '?'}, {cores or '?'} cores, {memory}"


_KINDS: dict[str, tuple[type, ...]] = {
    "str | None": (str,),
    "str": (str,),
    "int | None": (int,),
    "int": (int,),
    "bool": (bool,),
    "dict[str, Any]": (dict,),
    "dict[str, Any] | None": (dict,),
    "tuple[str, ...]": (list, tuple),
    "list[str]": (list,),
}


def _typed(record: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of `data` that are fields of `record` and of the field's type (else left out)."""
    values: dict[str, Any] = {}
    for f in fields(record):
        value = data.get(f.name)
        if value is None:
            continue
        kinds = _KINDS[str(f.type)]
        if bool in kinds:
            values[f.name] = bool(value)
        elif isinstance(value, (list, tuple)) and list in kinds:
            items = [str(x) for x in value]
            values[f.name] = items if f.type == "list[str]" else tuple(items)
        elif isinstance(value, kinds) and not (isinstance(value, bool) and int in kinds):
            values[f.name] = value
    return values


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    write_atomically(path, json.dumps(data, indent=2, default=str) + "\n")
