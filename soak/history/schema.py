"""The history's tables, one definition for SQLite and PostgreSQL, and how they grow.

`runs` holds one row per run, `variants` one per variant of a run: their columns are
the fields of `RecordedRun` and `RecordedVariant` (soak.history.records), typed from
their annotations. The schema only grows: a version adds columns, never removes or
changes one, so a writer brings an older history up to date in place (ALTER TABLE ...
ADD COLUMN) and a reader reads one as it is (the added columns as NULL).

The version is where each database keeps such a number: SQLite's `PRAGMA user_version`
(as every soak before PostgreSQL wrote it), PostgreSQL's table `soak_schema`.
"""

from __future__ import annotations

import typing
from dataclasses import fields

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    inspect,
    text,
)
from sqlalchemy.types import TypeEngine

from soak.core.errors import UsageError
from soak.history.records import RecordedRun, RecordedVariant

# 2: variants' attribution (live_mb, held_mb, released_mb, left_after_...)
# 3: the server's CPU and the pod's memory (cpu_ms_per_request, swap_cpu_s, pod_memory_mb)
# 4: variants' ordinal (their order in the run, which PostgreSQL has no rowid to keep)
SCHEMA_VERSION = 4

RUN_COLUMNS = [f.name for f in fields(RecordedRun) if f.name != "variants"]
VARIANT_COLUMNS = [f.name for f in fields(RecordedVariant)]
# Columns added after schema 1, by the version that added them: a writer adds them to an
# older history, a reader of an older history reads them as NULL.
ADDED_VARIANT_COLUMNS = {
    2: ("live_mb", "held_mb", "released_mb", "left_after_release_mb"),
    3: ("cpu_ms_per_request", "swap_cpu_s", "pod_memory_mb"),
    4: ("ordinal",),
}

_TYPES: dict[typing.Any, type[TypeEngine]] = {
    str: Text,
    float: Float,  # double precision on PostgreSQL
    int: BigInteger,  # byte counts pass 2^31
    bool: Boolean,
}


def _columns(record: type) -> list[Column]:
    hints = typing.get_type_hints(record)
    out = []
    for f in fields(record):
        if f.name == "variants":
            continue
        kinds = [t for t in typing.get_args(hints[f.name]) or (hints[f.name],) if t in _TYPES]
        out.append(Column(f.name, _TYPES[kinds[0]]()))
    return out


metadata = MetaData()
run_table = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True),  # INTEGER: SQLite's rowid, SERIAL on PostgreSQL
    *[
        Column("run_dir", Text, nullable=False, unique=True) if c.name == "run_dir" else c
        for c in _columns(RecordedRun)
    ],
    Column("environment", Text),  # environment.json as recorded
    Column("recorded_t", Float, nullable=False),
)
variant_table = Table(
    "variants",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    *_columns(RecordedVariant),
    Column("ordinal", Integer),  # the variant's place in its run, 0 first
    PrimaryKeyConstraint("run_id", "name"),
)
Index("variants_by_config", variant_table.c.config_hash, variant_table.c.name)
Index("runs_by_start", run_table.c.started_t)
# PostgreSQL only: where the schema version is kept.
schema_version = Table("soak_schema", MetaData(), Column("version", Integer, nullable=False))


def present_columns(con: Connection, table: Table) -> set[str]:
    """The columns `table` has in this history (an older one has fewer)."""
    return {c["name"] for c in inspect(con).get_columns(table.name)}


def version(con: Connection) -> int:
    """The history's schema version (0: no history in it yet)."""
    if con.dialect.name == "sqlite":
        return int(con.exec_driver_sql("PRAGMA user_version").scalar_one())
    if not inspect(con).has_table(schema_version.name):
        return 0
    return int(con.execute(schema_version.select()).scalar_one_or_none() or 0)


def ensure(con: Connection, where: str, create: bool) -> None:
    """Check the history's schema; a writer (`create`) makes or migrates it in its own
    transaction. A reader of an older schema reads it as it is."""
    found = version(con)
    if found > SCHEMA_VERSION:
        raise UsageError(f"history {where} was written by a newer soak (schema {found})")
    if found == SCHEMA_VERSION or (not create and found >= 1):
        return
    if not create:
        if con.dialect.name == "sqlite":
            raise UsageError(f"{where} is not a soak history")
        raise UsageError(
            f"no history in {where} yet (soak run --history URL records every finished "
            "run there; soak history URL --import FILE moves an SQLite history over)"
        )
    if found >= 1:
        _migrate(con, found)
    else:
        metadata.create_all(con)
    _set_version(con, SCHEMA_VERSION)


def _migrate(con: Connection, found: int) -> None:
    """Add the columns the versions after `found` added (SQLite: only SQLite histories
    are older than PostgreSQL's support)."""
    present = present_columns(con, variant_table)
    for added_in, names in sorted(ADDED_VARIANT_COLUMNS.items()):
        if added_in <= found:
            continue
        for name in names:
            if name not in present:
                kind = variant_table.c[name].type.compile(dialect=con.dialect)
                con.exec_driver_sql(f"ALTER TABLE variants ADD COLUMN {name} {kind}")
    if found < 4 and con.dialect.name == "sqlite":  # the order they were written in
        con.execute(
            text(
                "UPDATE variants SET ordinal = rowid - (SELECT min(v.rowid) FROM variants v "
                "WHERE v.run_id = variants.run_id) WHERE ordinal IS NULL"
            )
        )


def _set_version(con: Connection, number: int) -> None:
    if con.dialect.name == "sqlite":
        con.exec_driver_sql(f"PRAGMA user_version = {int(number)}")
        return
    schema_version.create(con, checkfirst=True)
    con.execute(schema_version.delete())
    con.execute(schema_version.insert().values(version=number))
