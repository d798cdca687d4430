"""Read a run directory back: run.toml, variant.json and the CSVs.

A run may have been killed: any CSV can end in a half-written row, files can be
missing, variant.json can still say "running". Reading never fails on that; it
drops what is unreadable and leaves the judging to the analysis.
"""

from __future__ import annotations

import csv
import io
import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from soak.analysis.tfs_metrics import USED_NAMES
from soak.config.settings import RunConfig, VariantSpec, read_run_toml
from soak.core.errors import UsageError
from soak.store.records import (
    CGROUP_MEMORY_COLUMNS,
    BreakdownRow,
    Event,
    LatencySample,
    MemorySample,
    MetricSample,
    Status,
    columns,
)
from soak.store.run_dir import RunDir, VariantDir

VARIANT_STATUSES = (Status.COMPLETED, Status.INTERRUPTED, Status.FAILED)


_DEFAULTS = RunConfig()
# memory.csv's columns; `cpu_s` (the server's CPU seconds, the last column) is absent in
# runs of an older soak: then it reads as NaN.
MEMORY_COLUMNS = columns(MemorySample) + [c for c in ("cpu_s",) if c not in columns(MemorySample)]


@dataclass(frozen=True)
class RunSettings:
    """The parts of run.toml the analysis needs; defaults from soak.config.settings."""

    model_name: str = _DEFAULTS.model_name
    backend: str = _DEFAULTS.backend
    swaps: int | str | None = None  # a count, or "auto"; None: not recorded
    max_swaps: int = _DEFAULTS.max_swaps
    warmup_swaps: int = _DEFAULTS.warmup_swaps
    threshold_mb: float | None = _DEFAULTS.threshold_mb  # None: max(1 MiB, 1% of the model)
    metric: str = _DEFAULTS.metric
    protocol: str = _DEFAULTS.protocol  # runs from before --protocol: REST
    memory_limit_bytes: int | None = _DEFAULTS.memory_limit_bytes
    swaps_per_day: float | None = _DEFAULTS.swaps_per_day
    plan_swaps: int = _DEFAULTS.plan_swaps  # swaps between restarts the pod must hold
    variants: tuple[tuple[str, str], ...] = ()  # (name, allocator) in run order


@dataclass
class VariantInputs:
    """One variant's raw data as read from RUN_DIR/VARIANT/."""

    name: str
    allocator: str
    library: str | None = None
    allocator_verified: bool = False
    status: str = Status.INTERRUPTED
    reason: str | None = None
    model_size_bytes: int | None = None
    memory: pd.DataFrame = field(default_factory=lambda: _empty(MEMORY_COLUMNS))
    latency: pd.DataFrame = field(default_factory=lambda: _empty(columns(LatencySample)))
    events: list[Event] = field(default_factory=list)
    split: int = 1  # parts per predict request (--split)
    # the rows of metrics.csv (--metrics) that the analysis uses (tfs_metrics.USED_NAMES)
    metrics: pd.DataFrame = field(default_factory=lambda: _empty(columns(MetricSample)))
    # breakdown.csv (docs/contract.md#run-directory): none in runs of an older soak
    breakdown: list[BreakdownRow] = field(default_factory=list)
    probe: str | None = None  # variant.json's "probe": "on" or "off: REASON" (None: absent)
    # what a team changes in production to run as this variant, from its [[variants]] table
    # in run.toml (None: not recorded)
    production_change: str | None = None


@dataclass
class RunInputs:
    path: Path
    settings: RunSettings
    variants: list[VariantInputs]


def read_run(path: Path) -> RunInputs:
    """Everything the analysis reads; UsageError if `path` is not a run directory."""
    run = RunDir(Path(path))
    if not run.path.is_dir():
        raise UsageError(f"not a directory: {run.path}")
    variant_dirs = {v.name: v for v in run.variants()}
    if not run.run_toml.exists() and not variant_dirs:
        raise UsageError(f"not a soak run directory (no run.toml, no variant data): {run.path}")
    settings, specs = _read_run_toml(run.run_toml) if run.run_toml.exists() else (RunSettings(), ())

    ordered = list(settings.variants)
    ordered += [(name, name) for name in sorted(variant_dirs) if name not in dict(ordered)]
    variants = []
    for name, allocator in ordered:
        if name in variant_dirs:
            v = read_variant(variant_dirs[name], allocator)
        else:
            v = VariantInputs(name, allocator, reason="did not run")
        v.production_change = production_change(specs, name)
        variants.append(v)
    return RunInputs(run.path, settings, variants)


def production_change(specs: tuple[VariantSpec, ...], name: str) -> str | None:
    """What a team changes in production to run as variant `name` (None: not recorded)."""
    spec = next((v for v in specs if v.name == name), None)
    if spec is None:
        return None
    try:
        return spec.production_change()
    except (KeyError, ValueError):  # an allocator this soak does not know
        return None


def read_settings(path: Path) -> RunSettings:
    return _read_run_toml(path)[0]


def _read_run_toml(path: Path) -> tuple[RunSettings, tuple[VariantSpec, ...]]:
    """run.toml's settings, and its [[variants]] tables."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    try:
        values = read_run_toml(data)
    except ValueError as exc:
        raise UsageError(f"{path}: bad value: {exc}") from None
    names = {f.name for f in fields(RunSettings)} - {"variants"}
    specs = tuple(values.get("variants", ()))
    settings = RunSettings(
        **{k: v for k, v in values.items() if k in names},
        variants=tuple((v.name, v.allocator) for v in specs),
    )
    return settings, specs


def read_variant(vdir: VariantDir, allocator: str) -> VariantInputs:
    meta = _read_json(vdir.variant_json)
    status = meta.get("status")
    if status not in VARIANT_STATUSES:  # "running" or missing: the run was killed
        status = Status.INTERRUPTED
    return VariantInputs(
        name=vdir.name,
        allocator=str(meta.get("allocator") or allocator),
        library=meta.get("library"),
        allocator_verified=bool(meta.get("allocator_verified", False)),
        status=status,
        reason=meta.get("reason") or (None if meta else "variant.json missing or unreadable"),
        model_size_bytes=_opt(int, meta.get("model_size_bytes")),
        memory=read_csv_frame(vdir.memory_csv, MEMORY_COLUMNS),
        latency=read_csv_frame(vdir.latency_csv, columns(LatencySample)),
        events=read_events(vdir.events_csv),
        split=int(meta.get("split") or 1),  # runs from before --split: unsplit
        metrics=read_metrics(vdir.metrics_csv, USED_NAMES),
        breakdown=read_breakdown(vdir.breakdown_csv),
        probe=_opt(str, meta.get("probe")),
    )


_BREAKDOWN_FIGURES = [c for c in columns(BreakdownRow) if c not in ("t", "swap", "point")]


def read_breakdown(path: Path) -> list[BreakdownRow]:
    """breakdown.csv in file order (none if it is missing); an empty cell is None.

    A row whose time, swap or point is missing, or whose figures do not parse, is
    skipped (a kill cuts the last row: that one is dropped before parsing).
    """
    rows = []
    for row in csv.DictReader(io.StringIO(_complete_lines(path))):
        point = (row.get("point") or "").strip()
        if not point:
            continue
        try:
            rows.append(
                BreakdownRow(
                    t=float(row["t"]),
                    swap=int(row["swap"]),
                    point=point,
                    **{name: _opt_bytes(row.get(name)) for name in _BREAKDOWN_FIGURES},
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return rows


def _opt_bytes(text: str | None) -> int | None:
    """A byte count or count cell: empty (or absent) is None; "12.0" reads as 12."""
    if text is None or not text.strip():
        return None
    try:
        return int(text)
    except ValueError:
        value = float(text)  # ValueError if it is not a number at all
        if not np.isfinite(value):
            return None
        return int(value)


def read_metrics(path: Path, names: frozenset[str]) -> pd.DataFrame:
    """The rows of metrics.csv whose sample name is one of `names` (none: an empty frame).

    Lines are filtered before parsing: a day of metrics is about a million rows.
    """
    lines = _complete_lines(path).splitlines(keepends=True)
    wanted = [line for line in lines[1:] if any(f",{name}," in line for name in names)]
    if not lines or not wanted:
        return _empty(columns(MetricSample))
    frame = pd.read_csv(
        io.StringIO(lines[0] + "".join(wanted)),
        on_bad_lines="skip",
        dtype={"name": str, "labels": str},
        keep_default_na=False,
    )
    if not set(columns(MetricSample)) <= set(frame.columns):
        return _empty(columns(MetricSample))
    for column in ("t", "swap", "value"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame = frame.dropna(subset=["t", "swap", "value"])
    frame = frame[frame["name"].isin(names)]
    return frame.sort_values("t", kind="stable").reset_index(drop=True)


def read_csv_frame(path: Path, names: list[str]) -> pd.DataFrame:
    """A numeric CSV as a frame sorted by its first column; unreadable rows dropped.

    Missing columns (a process target has no cgroup figures) come back all-NaN.
    """
    data = _complete_bytes(path)
    if not data.strip():
        return _empty(names)
    try:  # numbers parse as numbers; a column with garbage in it comes back as text
        frame = pd.read_csv(io.BytesIO(data), on_bad_lines="skip", encoding_errors="replace")
    except pd.errors.ParserError as exc:
        raise UsageError(f"{path}: not a readable CSV: {exc}") from None
    if names[0] not in frame.columns:
        return _empty(names)  # without times the rows cannot be placed
    out = pd.DataFrame(
        {n: _numeric(frame[n]) if n in frame.columns else np.nan for n in names},
        index=frame.index,
    )
    required = [names[0]] + [n for n in names if n in frame.columns and n not in _OPTIONAL]
    out = out.dropna(subset=required)
    return out.sort_values(names[0], kind="stable").reset_index(drop=True)


def read_events(path: Path) -> list[Event]:
    """events.csv in file order; rows that do not parse are skipped."""
    text = _complete_lines(path)
    events = []
    for row in csv.DictReader(io.StringIO(text)):
        try:
            version = row.get("version") or ""
            events.append(
                Event(
                    t=float(row["t"]),
                    swap=int(row["swap"]),
                    event=str(row["event"]),
                    version=int(version) if version.strip() else None,
                    detail=row.get("detail") or "",
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return events


# Columns that may be empty in every row without the row being broken.
_OPTIONAL = set(CGROUP_MEMORY_COLUMNS) | {"swap", "cpu_s"}


def _numeric(column: pd.Series) -> pd.Series:
    """The column as numbers; what does not parse (a garbled row) is NaN."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column
    return pd.to_numeric(column, errors="coerce")


def _complete_bytes(path: Path) -> bytes:
    """The file without a last line that was cut off mid-write."""
    try:
        data = path.read_bytes()
    except OSError:
        return b""
    if data and not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
    return data


def _complete_lines(path: Path) -> str:
    return _complete_bytes(path).decode("utf-8", errors="replace")


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _opt(kind: Callable[[Any], Any], value: Any) -> Any:
    return None if value is None else kind(value)


def _empty(names: list[str]) -> pd.DataFrame:
    return pd.DataFrame({n: np.array([], dtype=float) for n in names})
