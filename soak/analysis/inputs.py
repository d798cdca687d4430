"""Read a run directory back: run.toml, environment.json, variant.json and the CSVs.

A run may have been killed: any CSV can end in a half-written row, files can be
missing, variant.json can still say "running". Reading never fails on that; it
drops what is unreadable and leaves the judging to the analysis.
"""

from __future__ import annotations

import csv
import io
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from soak.analysis.numeric_csv import complete_bytes, empty, read_csv_frame
from soak.analysis.tfs_metrics import USED_NAMES
from soak.config.settings import RunConfig, VariantSpec, config_from_run_toml, read_run_toml
from soak.core.errors import UsageError
from soak.store.facts import Environment, VariantFacts
from soak.store.records import (
    BreakdownRow,
    Event,
    MemorySample,
    MetricSample,
    Status,
    columns,
)
from soak.store.run_dir import RunDir, VariantDir

VARIANT_STATUSES = (Status.COMPLETED, Status.INTERRUPTED, Status.FAILED)


# The columns of memory.csv and latency.csv that the analysis uses: not their `swap` (the
# events place the swaps). `cpu_s` (the server's CPU seconds) is absent in runs of an older
# soak: then it reads as NaN.
MEMORY_COLUMNS = [c for c in columns(MemorySample) if c != "swap"]
LATENCY_COLUMNS = ["t_intended", "t_start", "latency_ms", "status"]
# Unused, but a request without its answer time is a broken row: it is dropped.
LATENCY_CHECKED = ["t_end"]


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
    memory: pd.DataFrame = field(default_factory=lambda: empty(MEMORY_COLUMNS))
    latency: pd.DataFrame = field(default_factory=lambda: empty(LATENCY_COLUMNS))
    events: list[Event] = field(default_factory=list)
    split: int = 1  # parts per predict request (--split)
    # the rows of metrics.csv (--metrics) that the analysis uses (tfs_metrics.USED_NAMES)
    metrics: pd.DataFrame = field(default_factory=lambda: empty(columns(MetricSample)))
    # breakdown.csv (docs/contract.md#run-directory): none in runs of an older soak
    breakdown: list[BreakdownRow] = field(default_factory=list)
    probe: str | None = None  # variant.json's "probe": "on" or "off: REASON" (None: absent)
    spec: VariantSpec | None = None  # the variant's table in run.toml (None: it has none)


@dataclass
class RunInputs:
    path: Path
    config: RunConfig  # run.toml's (the defaults, for what it does not say)
    recorded: bool  # run.toml was there
    environment: Environment | None  # environment.json (None: missing or unreadable)
    variants: list[VariantInputs]


def read_run(path: Path) -> RunInputs:
    """Everything the analysis reads; UsageError if `path` is not a run directory."""
    run = RunDir(Path(path))
    if not run.path.is_dir():
        raise UsageError(f"not a directory: {run.path}")
    variant_dirs = {v.name: v for v in run.variants()}
    if not run.run_toml.exists() and not variant_dirs:
        raise UsageError(f"not a soak run directory (no run.toml, no variant data): {run.path}")
    config, specs = read_run_toml_file(run.run_toml)
    named = {spec.name: spec for spec in specs}
    order = list(named) + sorted(name for name in variant_dirs if name not in named)
    variants = []
    for name in order:
        allocator = named[name].allocator if name in named else name
        if name in variant_dirs:
            v = read_variant(variant_dirs[name], allocator)
        else:
            v = VariantInputs(name, allocator, reason="did not run")
        v.spec = named.get(name)
        variants.append(v)
    recorded = run.run_toml.exists()
    return RunInputs(run.path, config, recorded, Environment.read(run.environment_json), variants)


def read_run_toml_file(path: Path) -> tuple[RunConfig, tuple[VariantSpec, ...]]:
    """run.toml's configuration, and its [[variants]] tables (none: no such file)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return RunConfig(), ()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    try:
        return config_from_run_toml(data), tuple(read_run_toml(data).get("variants", ()))
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{path}: bad value: {exc}") from None


def read_variant(vdir: VariantDir, allocator: str) -> VariantInputs:
    facts = VariantFacts.read(vdir.variant_json)
    status = facts.status if facts is not None else None
    if status not in VARIANT_STATUSES:  # "running" or missing: the run was killed
        status = Status.INTERRUPTED
    return VariantInputs(
        name=vdir.name,
        allocator=(facts.allocator if facts is not None else None) or allocator,
        library=facts.library if facts is not None else None,
        allocator_verified=facts is not None and facts.allocator_verified,
        status=status,
        reason=facts.reason if facts is not None else "variant.json missing or unreadable",
        model_size_bytes=facts.model_size_bytes if facts is not None else None,
        memory=read_csv_frame(vdir.memory_csv, MEMORY_COLUMNS),
        latency=read_csv_frame(vdir.latency_csv, LATENCY_COLUMNS, LATENCY_CHECKED),
        events=read_events(vdir.events_csv),
        split=facts.split if facts is not None else 1,
        metrics=read_metrics(vdir.metrics_csv, USED_NAMES),
        breakdown=read_breakdown(vdir.breakdown_csv),
        probe=facts.probe if facts is not None else None,
    )


_BREAKDOWN_FIGURES = [c for c in columns(BreakdownRow) if c not in ("t", "swap", "point")]


def read_breakdown(path: Path) -> list[BreakdownRow]:
    """breakdown.csv in file order (none if it is missing); an empty cell is None.

    A row whose time, swap or point is missing, or whose figures do not parse, is
    skipped (a kill cuts the last row: that one is dropped before parsing). Read as
    csv.DictReader reads it, without a dict per row (read_events).
    """
    rows = csv.reader(io.StringIO(_complete_lines(path)))
    at = {name: i for i, name in enumerate(next(rows, []))}
    if not {"t", "swap", "point"} <= at.keys():
        return []
    t_at, swap_at, point_at = at["t"], at["swap"], at["point"]
    figures = [(name, at.get(name, -1)) for name in _BREAKDOWN_FIGURES]
    found = []
    for row in rows:
        n = len(row)
        point = row[point_at].strip() if point_at < n else ""
        if not point or n <= max(t_at, swap_at):  # no point, time or swap (float(None))
            continue
        try:
            found.append(
                BreakdownRow(
                    t=float(row[t_at]),
                    swap=int(row[swap_at]),
                    point=point,
                    **{name: _opt_bytes(row[i] if 0 <= i < n else None) for name, i in figures},
                )
            )
        except ValueError:
            continue
    return found


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
        return empty(columns(MetricSample))
    frame = pd.read_csv(
        io.StringIO(lines[0] + "".join(wanted)),
        on_bad_lines="skip",
        dtype={"name": str, "labels": str},
        keep_default_na=False,
    )
    if not set(columns(MetricSample)) <= set(frame.columns):
        return empty(columns(MetricSample))
    for column in ("t", "swap", "value"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame = frame.dropna(subset=["t", "swap", "value"])
    frame = frame[frame["name"].isin(names)]
    return frame.sort_values("t", kind="stable").reset_index(drop=True)


def read_events(path: Path) -> list[Event]:
    """events.csv in file order; rows that do not parse are skipped.

    Read as csv.DictReader reads it (a day is 40 000 events: without a dict per row):
    of equal names the last column counts, a short row's missing cells are None.
    """
    rows = csv.reader(io.StringIO(_complete_lines(path)))
    at = {name: i for i, name in enumerate(next(rows, []))}
    if not {"t", "swap", "event"} <= at.keys():
        return []
    t_at, swap_at, event_at = at["t"], at["swap"], at["event"]
    version_at, detail_at = at.get("version", -1), at.get("detail", -1)
    events = []
    for row in rows:
        n = len(row)
        if n <= max(t_at, swap_at):  # a blank line, or no time or swap: float(None)
            continue
        try:
            version = row[version_at] if 0 <= version_at < n else ""
            events.append(
                Event(
                    t=float(row[t_at]),
                    swap=int(row[swap_at]),
                    event=row[event_at] if event_at < n else "None",  # str(None)
                    version=int(version) if version.strip() else None,
                    detail=row[detail_at] if 0 <= detail_at < n else "",
                )
            )
        except ValueError:
            continue
    return events


def _complete_lines(path: Path) -> str:
    return complete_bytes(path).decode("utf-8", errors="replace")
