"""From what the user gave (a config, flags, a fleet file's tables) to a `SoakJob` with
every figure decided, or one line that lists everything wrong with it.

The soak runs in a pod, so the config's paths are the container's: the model must be
under the model volume's mount, and nothing may need a Docker engine or a fixed run dir.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import tomli_w

from soak.config.resolve import load_toml, resolve
from soak.config.settings import RunConfig
from soak.core.errors import UsageError
from soak.k8s.manifests import LONGEST_NAME, SoakJob
from soak.k8s.options import EITHER, JobOptions, dns_label, job_options
from soak.k8s.sizing import Sized, deadline_for, memory_from_run


@dataclass(frozen=True)
class Layer:
    """Option values from one place (flags, a fleet file's table), raw as given."""

    where: str  # how a key is named in a message: "--{}" or "[defaults] {}"
    values: Mapping[str, Any]

    def label(self, key: str) -> str:
        return self.where.format(key.replace("_", "-") if self.where.startswith("--") else key)


@dataclass(frozen=True)
class SoakSource:
    """One soak as the user described it."""

    name: str
    config: Path | None  # the soak.toml
    settings: Mapping[str, Any] = field(default_factory=dict)  # soak run settings over it
    layers: Sequence[Layer] = ()  # least specific first
    where: str = ""  # how a message names it ("models #2 (soak-tagger)"), "" alone


def decide(source: SoakSource, kind: str) -> SoakJob:
    """The SoakJob of a source; UsageError naming every problem at once."""
    problems: list[str] = []
    options, given = _options(source.layers, problems)
    try:
        dns_label(source.name, LONGEST_NAME[kind])
    except ValueError as exc:
        problems.append(f"name: {exc}")
    if kind == "CronJob" and "schedule" not in given:
        problems.append("a CronJob needs a schedule: --schedule '0 3 * * *'")
    if not options.history_secret and not options.runs_pvc:
        problems.append(
            "with no history Secret the history is soak-runs/history.sqlite of the pod: "
            "give --runs-pvc CLAIM to keep it, or a --history-secret"
        )
    if "memory" not in given and "from_run" not in given:
        problems.append("give the container's memory: --memory SIZE or --from-run RUN_DIR")
    text, values = _config_text(source)
    try:
        config = resolve(values, {}, here=False)
    except UsageError as exc:
        where = source.config if source.config and not source.settings else "settings"
        raise UsageError("; ".join([*problems, f"{where}: {exc}"])) from None
    problems += _container_problems(config, values, options)
    if problems:
        raise UsageError("; ".join(problems))
    if options.memory is not None:
        memory = Sized(options.memory, "as given")
    else:
        try:
            variants = tuple(v.name for v in config.variants)
            memory = memory_from_run(Path(str(options.from_run)), options.soak_memory, variants)
        except UsageError as exc:
            raise UsageError(f"{given['from_run']}: {exc}") from None
    deadline = (
        Sized(options.deadline, "as given")
        if options.deadline is not None
        else deadline_for(config)
    )
    return SoakJob(source.name, text, options, memory, deadline)


def _options(layers: Sequence[Layer], problems: list[str]) -> tuple[JobOptions, dict[str, str]]:
    """Each layer's values over the ones before, converted and checked; and the label of
    each option given (by the layer that gave it)."""
    given: dict[str, tuple[Layer, Any]] = {}
    for layer in layers:
        values = {k: v for k, v in layer.values.items() if v is not None}
        for group in EITHER:
            both = [k for k in group if k in values]
            if len(both) > 1:
                problems.append(f"give {' or '.join(map(layer.label, both))}, not both")
            elif both:
                for other in group:
                    given.pop(other, None)
        given.update({k: (layer, v) for k, v in values.items()})
    converted = {}
    for option in job_options():
        if option.name in given:
            layer, raw = given[option.name]
            try:
                converted[option.name] = option.convert(raw, key=layer.label(option.name))
            except ValueError as exc:
                problems.append(str(exc))
    return JobOptions(**converted), {k: layer.label(k) for k, (layer, _) in given.items()}


def _config_text(source: SoakSource) -> tuple[str, dict[str, Any]]:
    """The ConfigMap's soak.toml and its values: the file as it is, or with the settings
    over its values (`allocators` replacing its [[variants]], as the flag does)."""
    text = ""
    values: dict[str, Any] = {}
    if source.config is not None:
        values = load_toml(source.config)
        text = source.config.read_text(encoding="utf-8")
    if source.settings:
        if "allocators" in source.settings:
            values.pop("variants", None)
        values = {**values, **source.settings}
        text = tomli_w.dumps(values)
    return text, values


def _container_problems(
    config: RunConfig, values: Mapping[str, Any], options: JobOptions
) -> list[str]:
    """What would fail in the pod, at night: checked here instead."""
    problems = []
    if config.backend == "docker":
        problems.append(
            "backend docker needs a Docker engine, and a pod has none: the Job image runs "
            "the server beside soak (backend process)"
        )
    if "out" in values:
        problems.append(
            f"the config sets out = {values['out']!r}: each scheduled soak needs a new run "
            "dir (soak-runs/TIME, the default); remove it"
        )
    if "history" in values and options.history_secret:
        problems.append(
            f"the config sets history = {values['history']!r}, and the Job gives soak "
            f"the history Secret {options.history_secret!r}: keep one"
        )
    volume = options.model_pvc or options.model_host_path
    mount = PurePosixPath(options.model_mount)
    if config.model is None and volume:
        problems.append(
            "the config names no model (soak would soak its demo model): set model = "
            f"'{mount}/NAME' in it, or give no model volume"
        )
    for key in ("model", "request_file"):
        path = getattr(config, key)
        if path is None:
            continue
        if not volume:
            problems.append(
                f"the config's {key} {path!r} is on no volume of the pod: give --model-pvc "
                "CLAIM or --model-host-path DIR"
            )
        elif not PurePosixPath(path).is_relative_to(mount):
            problems.append(
                f"the config's {key} {path!r} is not under the model volume's mount "
                f"{str(mount)!r} (--model-mount)"
            )
    return problems
