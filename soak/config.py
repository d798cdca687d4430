"""Run configuration: defaults < TOML file (`--config`) < command-line flags.

Everything is validated up front and every problem is listed at once, so a
scheduled run fails in a second instead of an hour in. The resolved
configuration is written to `run.toml` and is what the analysis reads back.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import tomli_w

from soak.errors import UsageError
from soak.targets.allocators import ALLOCATORS

BACKENDS = ("process", "docker")
DEFAULT_ALLOCATORS = ("glibc", "jemalloc")
DEFAULT_SERVER_BINARY = "soak-model-server"
DEFAULT_IMAGE = "tensorflow/serving"
METRICS = ("anon_bytes", "rss_bytes", "cgroup_anon_bytes", "cgroup_working_set_bytes")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


@dataclass
class VariantSpec:
    """One setup to soak: an allocator plus its own server flags and environment."""

    name: str
    allocator: str = "glibc"
    server_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    library: str | None = None  # override the allocator library path (else found on the system)


@dataclass
class RunConfig:
    """The resolved configuration of one soak run (written to run.toml)."""

    model: str | None = None  # None: the generated demo model
    model_name: str = "model"
    backend: str = "process"
    variants: list[VariantSpec] = field(default_factory=list)
    swaps: int | str = 12  # a count, or "auto": until every verdict is decided
    max_swaps: int = 30  # the bound of --swaps auto
    rps: float = 20.0
    batch: int = 1
    concurrency: int = 1  # requests sent at once, in bursts (open loop)
    request_file: str | None = None
    server_binary: str = DEFAULT_SERVER_BINARY
    server_args: list[str] = field(default_factory=list)  # for every variant, before its own
    image: str = DEFAULT_IMAGE
    memory_limit_bytes: int | None = None
    cpus: str | None = None
    settle_timeout: float = 30.0
    load_timeout: float = 300.0
    steady_s: float = 3.0  # steady traffic after each swap settled, before the next
    out: str = ""
    keep_models: bool = False
    warmup_swaps: int = 2
    threshold_mb: float | None = None
    metric: str = "anon_bytes"
    swaps_per_day: float | None = None
    demo_size_mb: float = 128.0
    quiet: bool = False

    def to_toml(self) -> str:
        return tomli_w.dumps(_drop_none(asdict(self)))


# Flags of `soak run` that map one to one onto RunConfig fields.
_SCALAR_KEYS = {f.name for f in fields(RunConfig)} - {"variants"}
_CONFIG_ONLY_KEYS = {"allocators", "memory_limit"}


def parse_size(text: str | int) -> int:
    """'2g', '512MiB', '1.5G', 1048576 -> bytes (binary units)."""
    if isinstance(text, int):
        return text
    match = _SIZE_RE.match(str(text))
    if not match:
        raise ValueError(f"not a size: {text!r} (e.g. 512m, 2g)")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * (1 << (10 * " kmgt".index(unit or " "))))


def load_toml(path: Path) -> dict:
    """Read a --config file; any error is a one-line UsageError."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}") from None


def resolve(file_values: dict, flag_values: dict) -> RunConfig:
    """Merge defaults, the TOML file and flags (flags win); validate everything.

    `flag_values` holds only the flags the user gave (None means not given).
    """
    problems: list[str] = []
    merged = dict(file_values)
    merged.update({k: v for k, v in flag_values.items() if v is not None})
    unknown = set(merged) - _SCALAR_KEYS - _CONFIG_ONLY_KEYS - {"variants"}
    problems += [f"unknown setting {k!r}" for k in sorted(unknown)]

    config = RunConfig()
    for key in sorted(_SCALAR_KEYS & set(merged)):
        setattr(config, key, merged[key])
    if "memory_limit" in merged:
        try:
            config.memory_limit_bytes = parse_size(merged["memory_limit"])
        except ValueError as exc:
            problems.append(f"memory_limit: {exc}")

    config.variants = _resolve_variants(
        merged, "allocators" in flag_values and flag_values["allocators"] is not None, problems
    )
    problems += _validate(config)
    if problems:
        raise UsageError("invalid configuration: " + "; ".join(problems))
    if not config.out:
        config.out = str(Path("soak-runs") / time.strftime("%Y%m%d-%H%M%S"))
    return config


def _resolve_variants(merged: dict, allocators_flag_given: bool, problems: list[str]):
    """Variants come from `--allocators`, else TOML `[[variants]]`, else `allocators`."""
    table = merged.get("variants")
    if table is not None and not allocators_flag_given:
        return _variants_from_table(table, problems)
    allocators = merged.get("allocators", list(DEFAULT_ALLOCATORS))
    if isinstance(allocators, str):
        allocators = [a.strip() for a in allocators.split(",") if a.strip()]
    if not isinstance(allocators, list) or not allocators:
        problems.append("allocators: give a non-empty list, e.g. glibc,jemalloc")
        return []
    return [VariantSpec(name=str(a), allocator=str(a)) for a in allocators]


def _variants_from_table(table, problems: list[str]) -> list[VariantSpec]:
    if not isinstance(table, list) or not all(isinstance(t, dict) for t in table) or not table:
        problems.append("variants: expected one or more [[variants]] tables")
        return []
    variants = []
    known = {f.name for f in fields(VariantSpec)}
    for i, entry in enumerate(table, 1):
        extra = set(entry) - known
        if extra:
            problems.append(f"variants #{i}: unknown keys {sorted(extra)}")
        if "name" not in entry:
            problems.append(f"variants #{i}: missing name")
            continue
        env = entry.get("env", {})
        args = entry.get("server_args", [])
        if not isinstance(env, dict) or not isinstance(args, list):
            problems.append(f"variants #{i}: env must be a table, server_args a list")
            continue
        variants.append(
            VariantSpec(
                name=str(entry["name"]),
                allocator=str(entry.get("allocator", "glibc")),
                server_args=[str(a) for a in args],
                env={str(k): str(v) for k, v in env.items()},
                library=entry.get("library"),
            )
        )
    return variants


def _validate(c: RunConfig) -> list[str]:
    problems = []

    def check(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    check(c.backend in BACKENDS, f"backend must be one of {', '.join(BACKENDS)}, not {c.backend!r}")
    if c.swaps != "auto" and isinstance(c.swaps, str) and c.swaps.isdigit():
        c.swaps = int(c.swaps)
    check(
        c.swaps == "auto" or (_is_int(c.swaps) and c.swaps >= 1),
        f"swaps must be a whole number >= 1 or 'auto', not {c.swaps!r}",
    )
    check(_is_int(c.max_swaps) and c.max_swaps >= 1, "max_swaps must be a whole number >= 1")
    check(_is_num(c.rps) and 0 < c.rps <= 1000, f"rps must be in (0, 1000], not {c.rps!r}")
    check(_is_int(c.batch) and 1 <= c.batch <= 10000, f"batch must be 1..10000, not {c.batch!r}")
    check(
        _is_int(c.concurrency) and 1 <= c.concurrency <= 64,
        f"concurrency must be 1..64, not {c.concurrency!r}",
    )
    check(_is_num(c.settle_timeout) and c.settle_timeout > 0, "settle_timeout must be > 0")
    check(_is_num(c.load_timeout) and c.load_timeout > 0, "load_timeout must be > 0")
    check(_is_num(c.steady_s) and c.steady_s >= 0, "steady_s must be >= 0")
    check(_is_int(c.warmup_swaps) and c.warmup_swaps >= 0, "warmup_swaps must be >= 0")
    check(
        c.threshold_mb is None or (_is_num(c.threshold_mb) and c.threshold_mb > 0),
        "threshold_mb must be > 0",
    )
    check(
        c.swaps_per_day is None or (_is_num(c.swaps_per_day) and c.swaps_per_day > 0),
        "swaps_per_day must be > 0",
    )
    check(_is_num(c.demo_size_mb) and c.demo_size_mb > 0, "demo_size_mb must be > 0")
    check(c.metric in METRICS, f"metric must be one of {', '.join(METRICS)}")
    check(
        c.backend == "docker" or not c.metric.startswith("cgroup"),
        "cgroup metrics need --backend docker",
    )
    check(bool(_NAME_RE.match(str(c.model_name))), f"model_name {c.model_name!r} is not a name")
    check(isinstance(c.server_args, list), "server_args must be a list")
    problems += _cpu_problems(c.cpus)
    if c.model is not None and not Path(c.model).exists():
        problems.append(f"model path does not exist: {c.model}")
    if c.request_file is not None and not Path(c.request_file).is_file():
        problems.append(f"request file not found: {c.request_file}")
    if c.backend == "process" and find_server_binary(c.server_binary) is None:
        problems.append(f"server binary not found: {c.server_binary}")

    names = [v.name for v in c.variants]
    check(len(names) == len(set(names)), f"variant names must be unique: {names}")
    for v in c.variants:
        check(bool(_NAME_RE.match(v.name)), f"variant name {v.name!r} is not a name")
        check(
            v.allocator in ALLOCATORS,
            f"variant {v.name}: unknown allocator {v.allocator!r} "
            f"(choose from {', '.join(ALLOCATORS)})",
        )
    if c.out and Path(c.out).exists() and any(Path(c.out).iterdir()):
        problems.append(f"output dir {c.out} exists and is not empty (runs are never overwritten)")
    return problems


def _cpu_problems(cpus: str | None) -> list[str]:
    """--cpus must be a cpuset list of CPUs this machine lets us use."""
    if cpus is None:
        return []
    if not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", str(cpus)):
        return [f"cpus must be a CPU list like 0-1 or 0,2, not {cpus!r}"]
    from soak.targets.process import parse_cpu_list

    unusable = sorted(parse_cpu_list(cpus) - os.sched_getaffinity(0))
    return [f"cpus {unusable} are not usable here"] if unusable else []


def find_server_binary(name: str) -> str | None:
    """A path or a name on PATH; also the venv's bin dir of this interpreter."""
    if "/" in name:
        return name if Path(name).is_file() else None
    return shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))


def _drop_none(value):
    """TOML has no null: leave unset optional settings out."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
