"""Run configuration: defaults < environment variables < TOML file (`--config`) or
keywords < command-line flags.

The settings are declared in `soak.config.settings`; this module merges what the
user gave and checks it, listing every problem at once, so a scheduled run
fails in a second instead of an hour in. Resolution is pure: it looks at the
paths the user named and at the environment variables it is handed (a setting's
declared `env`, e.g. SOAK_HISTORY or SOAK_SERVER_BINARY), never at the machine (no PATH,
no Docker, no allocator libraries, no CPU affinity); that is `soak.driver.plan.prepare`.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from soak.config.settings import (
    DEFAULT_RUNS_DIR,
    MAX_CONCURRENCY,
    RunConfig,
    VariantSpec,
    option_by_key,
    options,
)
from soak.core.errors import UsageError

__all__ = ["RunConfig", "VariantSpec", "from_keywords", "load_toml", "resolve"]


def load_toml(path: Path, what: str = "config file") -> dict:
    """Read a --config file (or another TOML file: `what`); any error is a one-line
    UsageError."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {what} {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{what} {path} is not valid TOML: {exc}") from None


def resolve(
    file_values: Mapping[str, Any],
    flag_values: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    *,
    here: bool = True,
) -> RunConfig:
    """Merge defaults, `environ`'s variables, the TOML file and flags (flags win); check
    everything.

    Both hold setting names (or their aliases) as keys; `flag_values` holds
    the flags of `soak run`, None for a flag not given. `environ` (os.environ from
    the command line and the plugin) gives the settings that declare a variable.
    `here=False`: the run happens elsewhere (a Kubernetes Job, `soak k8s`), so the
    paths it names are not looked at on this machine.
    """
    problems: list[str] = []
    flags = {k: v for k, v in flag_values.items() if v is not None}
    given: dict[str, tuple[str, Any]] = {}  # setting name -> (key it was given by, raw value)
    for option in options():
        raw = option.from_environment(environ or {})
        if raw is not None:
            given[option.name] = (str(option.setting.env), raw)
    by_key = option_by_key()
    for source in (file_values, flags):
        for key, raw in source.items():
            if key not in by_key:
                problems.append(f"unknown setting {key!r}")
                continue
            given[by_key[key].name] = (key, raw)

    values: dict[str, Any] = {}
    for option in options():
        if option.name in given:
            key, raw = given[option.name]
            try:
                values[option.name] = option.convert(raw, key=key)
            except ValueError as exc:
                problems.append(str(exc))

    allocators = values.get("allocators", RunConfig.allocators)
    if "variants" in values and "allocators" not in flags:  # --allocators replaces the tables
        values["allocators"] = tuple(v.allocator for v in values["variants"])
    elif "variants" not in given or "allocators" in flags:
        values["variants"] = tuple(VariantSpec.named(a) for a in allocators)
    if values.get("node_cores") and "concurrency" not in given:
        values["concurrency"] = min(values["node_cores"], MAX_CONCURRENCY)
    problems += _check_together(values, here)
    if problems:
        raise UsageError("invalid configuration: " + "; ".join(problems))
    if not values.get("out"):
        values["out"] = str(DEFAULT_RUNS_DIR / time.strftime("%Y%m%d-%H%M%S"))
    return RunConfig(**values)


def from_keywords(environ: Mapping[str, str] | None = None, /, **keywords: Any) -> RunConfig:
    """A config from `soak run`'s settings as keyword arguments (the pytest fixture's),
    over the variables of `environ` (none unless given)."""
    return resolve(keywords, {}, environ)


def _check_together(values: dict[str, Any], here: bool) -> list[str]:
    """Checks of settings against each other and (`here`) against the paths they name."""
    c = RunConfig(**values)
    problems = []
    if not c.variants:
        problems.append("allocators: give a non-empty list, e.g. glibc,jemalloc")
    names = [v.name for v in c.variants]
    if len(names) != len(set(names)):
        problems.append(f"variant names must be unique: {names}")
    trims = [v.name for v in c.variants if v.release_after_unload]
    if trims and not c.probe:
        who = ("variant " if len(trims) == 1 else "variants ") + ", ".join(trims)
        verb = "releases" if len(trims) == 1 else "release"
        problems.append(f"{who} {verb} through soak's probe after each unload: drop --no-probe")
    if c.backend != "docker" and c.metric.startswith("cgroup"):
        problems.append("cgroup metrics need --backend docker")
    if not here:
        return problems
    if c.model is not None and not Path(c.model).exists():
        problems.append(f"model path does not exist: {c.model}")
    if c.request_file is not None and not Path(c.request_file).is_file():
        problems.append(f"request file not found: {c.request_file}")
    if c.out and Path(c.out).exists() and any(Path(c.out).iterdir()):
        problems.append(f"output dir {c.out} exists and is not empty (runs are never overwritten)")
    return problems
