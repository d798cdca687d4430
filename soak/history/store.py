"""The run history: every finished run in a database, for trends and baselines.

`soak run` records each run it finishes (completed, interrupted or failed) in
`history.sqlite` beside the run dir (`soak-runs/history.sqlite` for the default
`soak-runs/TIME`), or where `--history` (else `SOAK_HISTORY`) says: another SQLite
file, or a PostgreSQL database (`postgresql://USER:PASSWORD@HOST/DB`) that many
soaks share. One row per run (status, model, backend, image, config hash, soak
version, host facts) and one per variant (verdict and key figures, with each
figure's noise for `soak check --against-history`; why memory is kept, the server's
CPU per request and the pod's memory): soak.history.records. `soak history` lists
them; `soak history --import FILE` copies another history's runs over.

The same code serves both databases (SQLAlchemy Core; soak.history.schema and
soak.history.database). Safe to share: each run is written in one transaction
behind the history's write lock (SQLite: `BEGIN IMMEDIATE` on a WAL journal with a
busy timeout; PostgreSQL: an advisory lock, which also guards the first writers
creating the tables), so runs finishing at once all land, each once; a reader
never waits for a writer; and a process killed mid-write leaves the history as it
was before that run (the database rolls the half-written transaction back). A run
dir recorded again replaces its earlier record (delete and insert, in that one
transaction; `run_dir` is unique).

A test edge: with SOAK_TEST_PAUSE_IN_RECORD=FILE in its environment, a writer
stops inside its transaction, after the run's row and before its variants, writes
FILE and waits until FILE is gone, so a test can kill it exactly there.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, delete, insert, literal_column, null, select

from soak.analysis.result import RunResult
from soak.history import schema
from soak.history.database import transaction
from soak.history.location import HistoryLocation, parse
from soak.history.records import RecordedRun, RecordedVariant, recorded_run
from soak.history.schema import RUN_COLUMNS, VARIANT_COLUMNS
from soak.history.schema import run_table as runs_t
from soak.history.schema import variant_table as variants_t
from soak.store.records import Status

__all__ = [
    "Imported",
    "RecordedRun",
    "RecordedVariant",
    "Trend",
    "comparable",
    "import_history",
    "record",
    "recorded_run",
    "runs",
    "trends",
]

Where = str | Path | HistoryLocation  # an SQLite path or a postgresql:// URL
PAUSE_ENV = "SOAK_TEST_PAUSE_IN_RECORD"


# --- writing -----------------------------------------------------------------------------


def check_writable(where: Where) -> None:
    """Fail now, in one line, if `where` is a PostgreSQL history soak cannot write (server
    down, a wrong password, no such database): before a run, not after its minutes of
    measuring. An SQLite file is made by the first run that records."""
    location = parse(where)
    if location.is_postgres:
        with transaction(location, write=True):
            pass


def record(where: Where, result: RunResult, run_dir: Path | None = None) -> RecordedRun:
    """Record a finished run in the history (`run_dir`: how to name it, else its own)."""
    recorded = recorded_run(result, run_dir)
    environment = result.environment.to_json() if result.environment else {}
    row = {c: getattr(recorded, c) for c in RUN_COLUMNS}
    row |= {"environment": json.dumps(environment, default=str), "recorded_t": time.time()}
    rows = [{c: getattr(v, c) for c in VARIANT_COLUMNS} for v in recorded.variants]
    with transaction(parse(where), write=True) as con:
        _delete(con, recorded.run_dir)
        _insert(con, row, rows)
    return recorded


@dataclass(frozen=True)
class Imported:
    """What `import_history` did: runs copied over, and runs the target already had."""

    added: int
    skipped: int


def import_history(source: Where, target: Where) -> Imported:
    """Copy the runs of one history into another, as recorded (times, environment and
    all); a run dir the target already has is skipped, so importing twice adds nothing."""
    with transaction(parse(source), write=False) as con:
        present = schema.present_columns(con, runs_t)
        run_rows = _rows(con, runs_t, present, runs_t.c.started_t, runs_t.c.id)
        variant_rows: dict[Any, list[dict[str, Any]]] = {}
        for v in _variant_rows(con):
            variant_rows.setdefault(v.pop("run_id"), []).append(v)
    added = 0
    with transaction(parse(target), write=True) as con:
        present = set(con.execute(select(runs_t.c.run_dir)).scalars())
        for row in run_rows:
            run_id = row.pop("id")
            if row["run_dir"] in present:
                continue
            _insert(con, row, variant_rows.get(run_id, []))
            present.add(row["run_dir"])
            added += 1
    return Imported(added=added, skipped=len(run_rows) - added)


def _delete(con: Connection, run_dir: str) -> None:
    ids = select(runs_t.c.id).where(runs_t.c.run_dir == run_dir).scalar_subquery()
    con.execute(delete(variants_t).where(variants_t.c.run_id == ids))
    con.execute(delete(runs_t).where(runs_t.c.run_dir == run_dir))


def _insert(con: Connection, row: dict[str, Any], variant_rows: list[dict[str, Any]]) -> None:
    """One run and its variants, in the order given."""
    key = con.execute(insert(runs_t).values(_typed(runs_t, row))).inserted_primary_key
    assert key is not None  # a single-row insert
    run_id = key[0]
    _pause_point()
    if variant_rows:
        con.execute(
            insert(variants_t),
            [
                _typed(variants_t, {**v, "run_id": run_id, "ordinal": i})
                for i, v in enumerate(variant_rows)
            ],
        )


def _pause_point() -> None:
    """The test edge of the module docstring: stop here while FILE exists."""
    flag = os.environ.get(PAUSE_ENV)
    if not flag:
        return
    Path(flag).write_text(str(os.getpid()))
    while Path(flag).exists():
        time.sleep(0.05)


def _typed(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """`row` with each value of its column's type: an SQLite file of an older soak may hold
    another (its columns had no types), which PostgreSQL would refuse."""
    out = {}
    for name, value in row.items():
        kind = table.c[name].type.python_type
        out[name] = value if value is None or isinstance(value, kind) else kind(value)
    return out


# --- reading -----------------------------------------------------------------------------


def runs(
    where: Where,
    model: str | None = None,
    variant: str | None = None,
    config_hash: str | None = None,
) -> list[RecordedRun]:
    """The recorded runs, oldest first, with their variants (only `variant`'s, if given).

    `config_hash` is a prefix of the run's hash or of a variant's.
    """
    with transaction(parse(where), write=False) as con:
        query = select(runs_t.c.id, *(runs_t.c[c] for c in RUN_COLUMNS))
        if model is not None:
            query = query.where(runs_t.c.model_name == model)
        rows = con.execute(query.order_by(runs_t.c.started_t, runs_t.c.id)).all()
        by_run: dict[int, list[RecordedVariant]] = {}
        for v in _variant_rows(con):
            values = {c: v[c] for c in VARIANT_COLUMNS}
            values["allocator_verified"] = bool(values["allocator_verified"])
            by_run.setdefault(v["run_id"], []).append(RecordedVariant(**values))
    out = []
    for row in rows:
        run = RecordedRun(**dict(zip(RUN_COLUMNS, row[1:], strict=True)))
        chosen = [v for v in by_run.get(row[0], []) if variant is None or v.name == variant]
        if config_hash is not None and not run.config_hash.startswith(config_hash):
            chosen = [v for v in chosen if v.config_hash.startswith(config_hash)]
        if (variant is not None or config_hash is not None) and not chosen:
            continue
        out.append(replace(run, variants=tuple(chosen)))
    return out


def _rows(con: Connection, table: Table, present: set[str], *order: Any) -> list[dict[str, Any]]:
    """Every row of `table`, each column this soak knows (NULL where an older history,
    whose columns are `present`, has not got it)."""
    columns = [c if c.name in present else null().label(c.name) for c in table.c]
    return [dict(r._mapping) for r in con.execute(select(*columns).order_by(*order))]


def _variant_rows(con: Connection) -> list[dict[str, Any]]:
    """Every variant, each run's in its order: `ordinal`, or in an SQLite history of an
    older soak read as it is, the order they were written in."""
    present = schema.present_columns(con, variants_t)
    order = variants_t.c.ordinal if "ordinal" in present else literal_column("rowid")
    return _rows(con, variants_t, present, variants_t.c.run_id, order)


def comparable(
    where: Where,
    variant: str,
    config_hash: str,
    model_name: str,
    model_path: str,
    n: int,
    run_dir: Path | str | None = None,
    started_t: float | None = None,
) -> list[tuple[RecordedRun, RecordedVariant]]:
    """The last `n` runs comparable with a variant of `run_dir`: the same variant name,
    config hash and model (name, and --model as given or the demo model's size),
    completed with the allocator verified; oldest first.

    `run_dir` itself is left out, and so are runs that started after it (when
    it is recorded, else `started_t`).
    """
    own = str(Path(run_dir).resolve()) if run_dir is not None else None
    recorded = runs(where, model=model_name, variant=variant)
    before_t = next((r.started_t for r in recorded if r.run_dir == own), None)
    if before_t is None:
        before_t = started_t
    found = []
    for run in recorded:
        v = run.variant(variant)
        if v is None or v.config_hash != config_hash or run.model_path != model_path:
            continue
        if v.status != Status.COMPLETED or not v.allocator_verified or run.run_dir == own:
            continue
        if before_t is not None and run.started_t > before_t:
            continue
        found.append((run, v))
    return found[-n:] if n > 0 else []


@dataclass(frozen=True)
class Trend:
    """One variant's runs with one config hash and model: the series `soak history` draws."""

    variant: str
    config_hash: str
    model_name: str
    model_path: str
    points: tuple[tuple[RecordedRun, RecordedVariant], ...]  # oldest first

    @property
    def model_size_bytes(self) -> int | None:
        """The newest run's model size."""
        return self.points[-1][0].model_size_bytes if self.points else None


def trends(runs: Sequence[RecordedRun], last: int | None = None) -> list[Trend]:
    """The runs grouped by variant, config hash and model, in order of first appearance;
    each group's last `last` runs."""
    groups: dict[tuple[str, str, str, str], list[tuple[RecordedRun, RecordedVariant]]] = {}
    for run in runs:
        for v in run.variants:
            key = (v.name, v.config_hash, run.model_name, run.model_path)
            groups.setdefault(key, []).append((run, v))
    return [
        Trend(*key, points=tuple(points[-last:] if last else points))
        for key, points in groups.items()
    ]
