"""The settings of `soak run`, declared once.

Each setting is a field of `RunConfig` (or, for `[[variants]]` tables, of
`VariantSpec`), declared with `setting()`: its name, type and default are the
field's, and the declaration adds the help text, bounds or choices, the flag
spelling and how it is stored. Everything else comes from here:

- the flags of `soak run` (`add_arguments`), with help and default in `--help`;
- the keys of a `--config` TOML file and of `run.toml` (the field names, plus
  `aliases` accepted on input);
- the keyword arguments of the pytest fixture `soak_run` (the same names);
- the conversion and the bounds check of every value (`Option.convert`);
- writing run.toml (`RunConfig.to_toml`) and reading it back (`read_run_toml`).

To add a setting, add one field to `RunConfig` with `setting(...)`; nothing
else needs to change unless the setting is used somewhere.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from soak.config.allocators import ALLOCATORS, FIXES, FIXES_PRESET, FIXES_PRESET_NAMES
from soak.config.declarations import Option, options_of, parse_size, setting, to_str_tuple
from soak.core.procfs import parse_cpu_list

BACKENDS = ("process", "docker")
PROTOCOLS = ("rest", "grpc")
METRICS = ("anon_bytes", "rss_bytes", "cgroup_anon_bytes", "cgroup_working_set_bytes")
DEFAULT_SERVER_BINARY = "soak-model-server"  # the stand-in, from the `standin` extra
# soak's Job image names the image's own server in it (`soak image job`)
SERVER_BINARY_ENV = "SOAK_SERVER_BINARY"
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
MAX_SPLIT = 64
MAX_CONCURRENCY = 64  # the prober's workers (max_in_flight)
HISTORY_ENV = "SOAK_HISTORY"  # for schedulers: the history of every soak a node runs
POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")  # --history URLs
URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


# --- value conversion -----------------------------------------------------------------


def parse_swaps(value: Any) -> int | str:
    """'auto', or a whole number of swaps >= 1 (from a flag's text or a TOML value)."""
    if value == "auto":
        return "auto"
    if isinstance(value, bool) or not str(value).strip().isdigit() or int(value) < 1:
        raise ValueError(f"swaps must be a whole number >= 1 or 'auto', not {value!r}")
    return int(value)


def cpu_list_text(raw: Any) -> str:
    """A cpuset list ('0-1', '0,2'), checked for syntax only (usable CPUs: the plan)."""
    text = str(raw).strip()
    try:
        parse_cpu_list(text)
    except ValueError:
        raise ValueError(f"not a CPU list like 0-1 or 0,2: {raw!r}") from None
    return text


def history_text(raw: Any) -> str:
    """--history: an SQLite file path, or a PostgreSQL URL (its scheme checked here, the
    rest when soak connects)."""
    text = _to_text(raw)
    scheme = URL_SCHEME.match(text)
    if scheme is not None and scheme.group(1).lower() not in POSTGRES_SCHEMES:
        raise ValueError(
            f"expected an SQLite file path or a postgresql:// URL, not a {scheme.group(1)}:// URL"
        )
    return text


def _to_text(raw: Any) -> str:
    if isinstance(raw, os.PathLike):
        return os.fspath(raw)
    if not isinstance(raw, str):
        raise ValueError(f"a path or a URL, not {raw!r}")
    return raw


def options() -> tuple[Option, ...]:
    """The settings of `soak run`."""
    return options_of(RunConfig)


def option_by_key() -> dict[str, Option]:
    """Every accepted key (name or alias) -> its setting."""
    return {key: o for o in options() for key in o.keys}


# --- the settings -----------------------------------------------------------------------


@dataclass(frozen=True)
class VariantSpec:
    """One setup to soak: an allocator plus its own server flags and environment.

    The fields are the keys of a `[[variants]]` table.
    """

    name: str = setting(
        "", "the variant's name (its directory in the run dir)", pattern=NAME_PATTERN
    )
    allocator: str = setting("glibc", "the malloc to preload", choices=tuple(ALLOCATORS))
    server_args: tuple[str, ...] = setting(
        (), "server flags after the run's `server_args`", in_config_hash=False
    )
    env: Mapping[str, str] = setting({}, "environment of the server (e.g. MALLOC_CONF)")
    library: str | None = setting(
        None, "the allocator's library (else found on the system)", in_config_hash=False
    )
    split: int | None = setting(
        None, "this variant's --split", minimum=1, maximum=MAX_SPLIT, default_text="the run's"
    )
    cpus: str | None = setting(
        None, "this variant's --cpus", parse=cpu_list_text, default_text="the run's"
    )
    release_after_unload: bool = setting(
        False,
        "the probe releases the allocator's free memory right after each old version has "
        "unloaded: what a server calling malloc_trim(0) after an unload would keep",
    )

    def production_change(self) -> str:
        """What a team changes in production to run as this variant, in one line."""
        changes = []
        spec = ALLOCATORS[self.allocator]
        if spec.soname:
            changes.append(
                f"preload {self.library or spec.soname} (LD_PRELOAD; Debian/Ubuntu package "
                f"{spec.debian_package})"
            )
        changes += [f"ENV {k}={v}" for k, v in sorted(self.env.items())]
        if self.release_after_unload:
            changes.append(
                "call malloc_trim(0) after each model unload (a server change: TF Serving's "
                "MallocExtension_ReleaseToSystem() after an unload does nothing in open-source "
                "builds)"
                if self.allocator == "glibc"
                else "release the allocator's free memory after each model unload (a server change)"
            )
        if self.server_args:
            changes.append("server flags " + " ".join(self.server_args))
        return "; ".join(changes) or "nothing: the server as it is"

    @classmethod
    def named(cls, name: str) -> VariantSpec:
        """The variant an `--allocators` name stands for: an allocator, or a fix."""
        fix = FIXES.get(name)
        if fix is None:
            return cls(name=name, allocator=name)
        return cls(
            name=name,
            allocator=fix.allocator,
            env=dict(fix.env),
            release_after_unload=fix.release_after_unload,
        )


def parse_allocators(raw: Any) -> tuple[str, ...]:
    """--allocators: names of allocators and fixes; `fixes` stands for the preset."""
    names: list[str] = []
    for name in to_str_tuple(raw, comma_separated=True):
        for n in FIXES_PRESET_NAMES if name == FIXES_PRESET else (name,):
            if n not in names:
                names.append(n)
    return tuple(names)


def parse_variants(raw: Any, check: bool = True) -> tuple[VariantSpec, ...]:
    """`[[variants]]` tables -> VariantSpecs, each key by VariantSpec's declaration.

    With `check`, ValueError lists every problem; without (reading a run.toml
    back), tables that cannot be read are left out.
    """
    if isinstance(raw, list | tuple) and all(isinstance(t, VariantSpec) for t in raw) and raw:
        return tuple(raw)
    if not isinstance(raw, list | tuple) or not raw:
        if not check:
            return ()
        raise ValueError("expected one or more [[variants]] tables")
    problems: list[str] = []
    variants = []
    by_key = {o.name: o for o in options_of(VariantSpec)}
    for i, table in enumerate(raw, 1):
        if not isinstance(table, Mapping) or "name" not in table:
            problems.append(f"#{i} is not a table with a name")
            continue
        unknown = sorted(set(table) - set(by_key))
        if unknown and check:
            problems.append(f"#{i}: unknown keys {unknown}")
        try:
            values = {k: by_key[k].convert(v, check) for k, v in table.items() if k in by_key}
        except ValueError as exc:
            problems.append(f"#{i}: {exc}")
            continue
        variants.append(VariantSpec(**values))
    if problems and check:
        raise ValueError("; ".join(problems))
    return tuple(variants)


@dataclass(frozen=True)
class RunConfig:
    """The resolved configuration of one soak run: what run.toml records."""

    model: str | None = setting(
        None,
        "a SavedModel dir or a base path of numeric versions",
        metavar="PATH",
        default_text="the generated demo model",
        in_config_hash=False,  # the model is compared on its own
    )
    model_name: str = setting(
        "model",
        "the model's name on the server",
        pattern=NAME_PATTERN,
        metavar="NAME",
        in_config_hash=False,
    )
    backend: str = setting("process", "where the server runs", choices=BACKENDS)
    allocators: tuple[str, ...] = setting(
        ("glibc", "jemalloc"),
        "one variant per allocator or fix, comma-separated ('fixes': glibc and the fixes); "
        "replaces the file's [[variants]]",
        choices=(*ALLOCATORS, *FIXES, FIXES_PRESET),
        parse=parse_allocators,
        metavar="LIST",
        stored=False,  # run.toml records the variants
        in_config_hash=False,  # so does the hash
    )
    variants: tuple[VariantSpec, ...] = setting(
        (),
        "[[variants]] tables: name, allocator, server_args, env, library, split, "
        "release_after_unload",
        parse=parse_variants,
        cli=False,
        default_text="one per allocator",
    )
    swaps: int | str = setting(
        "auto",
        "model swaps per variant, or 'auto': each variant until its verdict is decided "
        "(at least 6, at most --max-swaps)",
        parse=parse_swaps,
        metavar="N|auto",
    )
    max_swaps: int = setting(30, "the bound of --swaps auto", minimum=1, metavar="N")
    rps: float = setting(
        20.0, "predict requests per second (open loop)", above=0, maximum=1000, metavar="R"
    )
    batch: int = setting(1, "instances per predict request", minimum=1, maximum=10000, metavar="N")
    concurrency: int = setting(
        1,
        "requests in flight at once: each send is a burst of N (open loop, same mean rate)",
        minimum=1,
        maximum=MAX_CONCURRENCY,
        metavar="N",
    )
    node_cores: int | None = setting(
        None,
        "size the server as on a node of N cores: TensorFlow's intra- and inter-op pools N "
        "each, TF Serving's REST and gRPC threads 4N, the allocator's arenas (glibc 8N, "
        "jemalloc 4N, unless a variant sets its own) and N requests in flight unless "
        "--concurrency says otherwise; what glibc keeps grows with them",
        minimum=1,
        maximum=256,
        metavar="N",
        default_text="this machine's, as the server sizes itself",
    )
    split: int = setting(
        1,
        "send each request's instances as N parallel sub-requests (about equal parts); the "
        "latency is the whole request's, until its last part answered",
        minimum=1,
        maximum=MAX_SPLIT,
        metavar="N",
        per_variant=True,
    )
    memory_interval: float = setting(
        0.1,
        "seconds between memory samples of the server",
        minimum=0.005,
        maximum=10,
        metavar="S",
    )
    status_interval: float = setting(
        0.1,
        "seconds between model status polls while a version loads or unloads (around a "
        "swap); between swaps the poll slows to once a second",
        minimum=0.005,
        maximum=1,
        metavar="S",
    )
    protocol: str = setting(
        "rest",
        "how the prober sends predicts and the poller reads model status: TF Serving's REST "
        "API or its gRPC API (the server's --port)",
        choices=PROTOCOLS,
    )
    metrics: bool = setting(
        False,
        "scrape TF Serving's Prometheus metrics each second into VARIANT/metrics.csv: the "
        "server gets a --monitoring_config_file enabling them at the standard path (soak "
        "writes it, unless --server-arg gives one)",
        in_config_hash=False,  # what is recorded, not how the server is measured
    )
    probe: bool = setting(
        True,
        "preload soak's allocator probe into the server, after its allocator: it tells live "
        "data from free memory the allocator holds, and a release at the end of each variant "
        "shows what comes back (--no-probe: the server runs untouched)",
        in_config_hash=False,  # it explains the figures, it does not change them
    )
    request_file: str | None = setting(
        None,
        "a JSON predict body to send",
        metavar="FILE",
        default_text="built from the model's metadata",
    )
    server_binary: str = setting(
        DEFAULT_SERVER_BINARY,
        "the server to run (process backend)",
        metavar="PATH",
        env=SERVER_BINARY_ENV,
        in_config_hash=False,  # under test
    )
    server_args: tuple[str, ...] = setting(
        (),
        "passed verbatim to the server, e.g. --server-arg=--num_load_threads=2; repeatable",
        flag="--server-arg",
        metavar="ARG",
        repeat=True,
        per_variant=True,
        in_config_hash=False,  # under test
    )
    image: str = setting(
        "tensorflow/serving",
        "Docker image ('standin': the stand-in, built if missing)",
        in_config_hash=False,  # under test
    )
    memory_limit_bytes: int | None = setting(
        None,
        "e.g. 2g: the container's limit (docker); for both backends, the projection's",
        flag="--memory-limit",
        aliases=("memory_limit",),
        parse=parse_size,
        metavar="SIZE",
    )
    cpus: str | None = setting(
        None,
        "CPUs to pin the server to, cpuset syntax, e.g. 0-1",
        parse=cpu_list_text,
        metavar="LIST",
        per_variant=True,
    )
    neighbour_cpus: str | None = setting(
        None,
        "CPUs a neighbour keeps busy while each variant runs: one busy-looping process per "
        "CPU, started and stopped by soak with the variant (CPU contention, as on a shared "
        "node; soak tune's pinning recipe)",
        parse=cpu_list_text,
        metavar="LIST",
    )
    settle_timeout: float = setting(
        30.0, "seconds to wait at most for memory to settle after a swap", above=0, metavar="S"
    )
    settle_window: float = setting(
        5.0,
        "memory that is not flat has settled when its level has not fallen over this many "
        "seconds (flat memory at once; never before the allocator's purge delay)",
        above=0,
        metavar="S",
    )
    load_timeout: float = setting(
        300.0,
        "seconds to wait at most for a version to load",
        above=0,
        metavar="S",
        in_config_hash=False,
    )
    steady_s: float = setting(
        3.0, "seconds of steady traffic between swaps", flag="--steady", minimum=0, metavar="S"
    )
    out: str = setting(
        "",
        "the run directory to write",
        metavar="DIR",
        default_text="soak-runs/TIME",
        in_config_hash=False,
    )
    history: str | None = setting(
        None,
        "where every finished run is recorded (soak history): an SQLite file, or a "
        "postgresql://USER:PASSWORD@HOST/DB URL for a history many soaks share",
        metavar="FILE|URL",
        default_text="history.sqlite beside the run dir",
        env=HISTORY_ENV,
        parse=history_text,
        stored=False,
        in_config_hash=False,
    )
    keep_models: bool = setting(
        False, "keep the private model copies in RUN_DIR/VARIANT/models", in_config_hash=False
    )
    warmup_swaps: int = setting(
        2, "first swaps left out of the growth slope (one-time costs)", minimum=0, metavar="N"
    )
    threshold_mb: float | None = setting(
        None,
        "retained MiB per swap that counts as growth",
        above=0,
        metavar="MB",
        default_text="max(1 MiB, 1% of the model)",
    )
    metric: str = setting("anon_bytes", "the memory figure the verdict judges", choices=METRICS)
    plan_swaps: int = setting(
        30,
        "swaps in production between restarts that the pod's memory must hold: "
        "pod_memory_mb is the swap peak plus what that many swaps keep at the growth's "
        "upper bound",
        minimum=1,
        metavar="N",
        in_config_hash=False,  # how the result is read, not how the server is measured
    )
    swaps_per_day: float | None = setting(
        None,
        "production's swaps per day, for the projection",
        above=0,
        metavar="N",
        in_config_hash=False,
    )
    demo_size_mb: float = setting(
        128.0,
        "size of the generated demo model (MiB)",
        above=0,
        metavar="MB",
        in_config_hash=False,  # the model is compared on its own
    )
    quiet: bool = setting(
        False,
        "no progress and no table: print only the run dir (for scripts: RUN=$(soak run --quiet))",
        in_config_hash=False,
    )

    def to_toml(self) -> str:
        """run.toml: every stored setting that has a value (TOML has no null)."""
        return tomli_w.dumps(_stored(self))

    def variant_seconds_bound(self) -> float:
        """At most how long one variant measures, from its timeouts: the first load and the
        baseline, then per swap the load, the settling, the steady traffic and a minute (the
        unload, the status polls). The traffic loop stops there whatever happens; `soak k8s`
        makes a Job's deadline of it."""
        per_swap = self.load_timeout + self.settle_timeout + self.steady_s + 60
        swaps = self.max_swaps if self.swaps == "auto" else int(self.swaps)
        return (swaps + 1) * per_swap

    @property
    def history_location(self) -> str:
        """Where this run is recorded: --history (or SOAK_HISTORY, as resolved), else
        history.sqlite beside the run dir."""
        if self.history:
            return self.history
        return str(default_history_path(Path(self.out or DEFAULT_RUNS_DIR)))

    def config_hash(self) -> str:
        """A short hash of how the run measures (all variants): the settings declared
        `in_config_hash` that differ from their defaults."""
        return _hash(_hashed(self))

    @property
    def model_identity(self) -> str:
        """The model as a comparison knows it: --model as given, or the demo model's size."""
        return self.model if self.model is not None else f"demo model, {self.demo_size_mb:g} MiB"

    def variant_config_hash(self, variant: VariantSpec) -> str:
        """The hash of how one variant is measured: the run's settings but the variant
        list, and that variant's own (name, allocator, env). Runs with equal hashes (and
        the same model) are compared by `soak check --against-history`."""
        run = {k: v for k, v in _hashed(self).items() if k not in ("variants", "allocators")}
        return _hash({**run, "variant": _hashed(variant)})


DEFAULT_RUNS_DIR = Path("soak-runs")
HISTORY_FILE = "history.sqlite"


def history_from_environment(environ: Mapping[str, str]) -> str | None:
    """The history SOAK_HISTORY names (None: unset), for the commands that take one
    without `soak run`'s settings (soak check, soak history)."""
    return option_by_key()["history"].from_environment(environ)


def default_history_path(run_dir: Path) -> Path:
    """The history file of a run dir: history.sqlite in the dir that holds it."""
    return Path(run_dir).parent / HISTORY_FILE


def config_from_run_toml(data: Mapping[str, Any]) -> RunConfig:
    """The RunConfig a run.toml records (not re-checked: the run has happened)."""
    values = read_run_toml(data)
    if "variants" in values:
        values["allocators"] = tuple(v.allocator for v in values["variants"])
    return RunConfig(**values)


def _hashed(instance: RunConfig | VariantSpec) -> dict[str, Any]:
    """The settings in the config hash that differ from their defaults, as JSON values.

    Defaults are left out, so that a setting added later (at its default) keeps
    the hashes of earlier runs.
    """
    out: dict[str, Any] = {}
    for o in options_of(type(instance)):
        value = getattr(instance, o.name)
        if not o.setting.in_config_hash or value == o.default:
            continue
        out[o.name] = _json_value(value)
    return out


# The [[variants]] keys a run's config hash has always held, default or not; a key added
# since counts only when set, so that it keeps the hashes of earlier runs.
_VARIANT_KEYS_ALWAYS_HASHED = frozenset(
    ("name", "allocator", "server_args", "env", "library", "split", "release_after_unload")
)


def _json_value(value: Any) -> Any:
    if isinstance(value, VariantSpec):
        return {
            o.name: _json_value(getattr(value, o.name))
            for o in options_of(VariantSpec)
            if o.name in _VARIANT_KEYS_ALWAYS_HASHED or getattr(value, o.name) != o.default
        }
    if isinstance(value, tuple | list):
        return [_json_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in sorted(value.items())}
    return value


def _hash(data: dict[str, Any]) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _stored(instance: RunConfig | VariantSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for o in options_of(type(instance)):
        value = getattr(instance, o.name)
        if not o.setting.stored or value is None:
            continue
        if isinstance(value, tuple):
            value = [_stored(v) if isinstance(v, VariantSpec) else v for v in value]
        elif isinstance(value, Mapping):
            value = dict(value)
        out[o.name] = value
    return out


# --- the command line and run.toml --------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `soak run`, one per setting.

    Every flag defaults to None (not given), so that only the flags the user
    gave override the --config file; values stay text here and are converted
    and checked with the TOML values, so every problem is listed at once.
    """
    for o in options():
        if not o.setting.cli:
            continue
        help_text = o.help_text().replace("%", "%%")
        if o.base_type is bool:
            parser.add_argument(
                o.flag, dest=o.name, action=argparse.BooleanOptionalAction, help=help_text
            )
        else:
            parser.add_argument(
                o.flag,
                dest=o.name,
                action="append" if o.setting.repeat else "store",
                metavar=o.metavar,
                help=help_text,
            )


def read_run_toml(data: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a run.toml records, converted by their declaration (not re-checked).

    Keys this version does not know (a newer soak's) are left out; so are
    settings the file does not have (an older soak's), for the reader's defaults.
    Raises ValueError on a value of the wrong type.
    """
    values: dict[str, Any] = {}
    for key, raw in data.items():
        option = option_by_key().get(key)
        if option is None:
            continue
        if option.name == "variants":
            values["variants"] = parse_variants(raw, check=False)
        else:
            values[option.name] = option.convert(raw, check=False, key=key)
    return values
