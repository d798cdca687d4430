"""A fleet file: one soak per model, as TOML.

    [defaults]                      # any key of a model, for every model
    config = "soak.toml"            # soak run's settings (paths: beside the fleet file)
    image = "registry.example.com/soak-job:1"
    model_pvc = "models"

    [[models]]
    name = "soak-ranker"            # the Job's (CronJob's) name
    settings = {model = "/models/ranker", model_name = "ranker"}   # over the config's
    from_run = "runs/ranker"        # or memory = "4g"

A model's keys: `name`, `config`, `settings` and the options of `soak k8s` (the flag
names with _ for -). A flag given on the command line is a default for every model:
[defaults] < flags < the model's own table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from soak.config.resolve import load_toml
from soak.core.errors import UsageError
from soak.k8s.options import job_options
from soak.k8s.plan import Layer, SoakSource

SOAK_KEYS = ("config", "settings")
PATH_KEYS = ("config", "from_run")  # relative to the fleet file's directory


def read_fleet(path: Path, flags: Layer) -> list[SoakSource]:
    """The soaks of a fleet file, with `flags` between its [defaults] and each model."""
    data = load_toml(path, "fleet file")
    label = f"fleet file {path}"
    unknown = sorted(set(data) - {"defaults", "models"})
    if unknown:
        raise UsageError(f"{label}: unknown keys {unknown} (expected [defaults], [[models]])")
    defaults = data.get("defaults", {})
    models = data.get("models")
    if not isinstance(defaults, Mapping):
        raise UsageError(f"{label}: defaults must be a table ([defaults])")
    if not isinstance(models, list) or not models:
        raise UsageError(f"{label}: no [[models]] tables (one per model to soak)")
    problems = _table_problems(defaults, "[defaults]")
    defaults_sound = not problems
    sources, names = [], set()
    for n, table in enumerate(models, 1):
        where = f"models #{n}"
        if not isinstance(table, Mapping) or not isinstance(table.get("name"), str):
            problems.append(f'{where} has no name (name = "soak-MODEL")')
            continue
        where = f"models #{n} ({table['name']})"
        if table["name"] in names:
            problems.append(f"{where}: the name is taken by an earlier model")
        names.add(table["name"])
        table_problems = _table_problems(table, where, named=True)
        given = [t.get(k) for t in (table, defaults) for k in SOAK_KEYS]
        if not table_problems and not any(given):
            table_problems.append(f"{where}: give a config (a soak.toml) or settings")
        problems += table_problems
        if not table_problems and defaults_sound:
            sources.append(_source(path.parent, defaults, table, flags, where))
    if problems:
        raise UsageError(f"{label}: " + "; ".join(problems))
    return sources


def _table_problems(table: Mapping[str, Any], where: str, named: bool = False) -> list[str]:
    known = {o.name for o in job_options()} | set(SOAK_KEYS) | ({"name"} if named else set())
    problems = []
    unknown = sorted(set(table) - known)
    if unknown:
        problems.append(f"{where}: unknown keys {unknown}")
    if "settings" in table and not isinstance(table["settings"], Mapping):
        problems.append(f"{where}: settings must be a table of soak run settings")
    for key in PATH_KEYS:
        if key in table and not isinstance(table[key], str):
            problems.append(f"{where}: {key} must be a path, not {table[key]!r}")
    return problems


def _source(
    base: Path,
    defaults: Mapping[str, Any],
    table: Mapping[str, Any],
    flags: Layer,
    where: str,
) -> SoakSource:
    def options(t: Mapping[str, Any]) -> dict[str, Any]:
        values = {k: v for k, v in t.items() if k not in (*SOAK_KEYS, "name")}
        if "from_run" in values:
            values["from_run"] = str(base / values["from_run"])
        return values

    config = table.get("config", defaults.get("config"))
    settings = {**defaults.get("settings", {}), **table.get("settings", {})}
    layers: Sequence[Layer] = (
        Layer("[defaults] {}", options(defaults)),
        flags,
        Layer("{}", options(table)),  # the message names the model already
    )
    return SoakSource(
        table["name"], base / config if config is not None else None, settings, layers, where
    )
