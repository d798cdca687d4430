"""A history's database: one transaction per use, the same code on SQLite and PostgreSQL.

Writers take the history's one write lock first, so writers queue instead of
interleaving: SQLite's `BEGIN IMMEDIATE` (WAL journal, a busy timeout), PostgreSQL's
transaction-scoped advisory lock (`pg_advisory_xact_lock`, a lock timeout). The
lock also serialises the first writers of a new PostgreSQL database, which create
its tables inside it. Readers take no lock and read one snapshot (SQLite's WAL
snapshot, PostgreSQL's REPEATABLE READ). A writer that dies mid-transaction leaves
nothing of it: SQLite's journal rolls it back, PostgreSQL aborts it when the
connection drops (and frees the lock).

Every database error is one line naming the history, its password masked: exit 3
(EnvironmentFailure) for a PostgreSQL server that cannot be reached or psycopg
missing, else exit 2 (UsageError: a file that is not a history, wrong credentials,
no such database).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import NullPool

from soak.core.errors import EnvironmentFailure, SoakError, UsageError
from soak.history import schema
from soak.history.location import HistoryLocation

BUSY_TIMEOUT_S = 60.0  # how long a writer waits for another one
CONNECT_TIMEOUT_S = 10  # a PostgreSQL server that does not answer by then is unreachable
# The advisory lock every soak writer of a PostgreSQL database takes (any 64-bit number
# other programs on that database do not use: "soakhist" in ASCII).
WRITE_LOCK = 0x736F616B68697374
# What PostgreSQL (libpq) says when the server answered but refused who asked: the URL
# is wrong (exit 2), not the environment.
_REFUSED = ("authentication failed", "password", "does not exist", "no pg_hba.conf entry")


@contextmanager
def transaction(where: HistoryLocation, write: bool) -> Iterator[Connection]:
    """A connection inside one transaction on the history: committed at the end, else
    rolled back. `write`: a writer (the history is made or migrated if needed; the write
    lock is taken first); else a reader of an existing history."""
    if where.path is not None:
        if not write and not where.path.is_file():
            raise UsageError(
                f"no history at {where} (soak run records every finished run in "
                "history.sqlite beside its run dir; --history FILE|URL names another)"
            )
        if write:
            where.path.parent.mkdir(parents=True, exist_ok=True)
    engine = _engine(where, write)
    try:
        with engine.connect() as con:
            if where.is_postgres:
                level = "READ COMMITTED" if write else "REPEATABLE READ"
                con = con.execution_options(isolation_level=level)
            with con.begin():
                if where.is_postgres and write:
                    ms = int(BUSY_TIMEOUT_S * 1000)
                    con.exec_driver_sql(f"SET LOCAL lock_timeout = {ms}")
                    con.execute(select(func.pg_advisory_xact_lock(WRITE_LOCK)))
                schema.ensure(con, str(where), write)
                yield con
    except DBAPIError as exc:
        raise failure(where, exc) from None
    finally:
        engine.dispose()


def failure(where: HistoryLocation, exc: DBAPIError) -> SoakError:
    """A database error as one line naming the history, its password masked."""
    message = where.mask(" ".join(str(exc.orig).split()))
    if not where.is_postgres:
        return UsageError(f"history {where}: {message}")
    if isinstance(exc, OperationalError) and not any(r in message for r in _REFUSED):
        return EnvironmentFailure(f"history {where}: {message}")
    return UsageError(f"history {where}: {message}")


def _engine(where: HistoryLocation, write: bool) -> Engine:
    """An engine for one transaction (NullPool: the connection closes with it)."""
    if where.url is None:
        engine = create_engine(
            where.engine_url(), poolclass=NullPool, connect_args={"timeout": BUSY_TIMEOUT_S}
        )
        event.listen(engine, "connect", lambda con, _: _sqlite_connection(con, write))
        event.listen(
            engine,
            "begin",
            lambda con: con.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN"),
        )
        return engine
    connect_args: dict[str, Any] = {"application_name": "soak"}
    if "connect_timeout" not in where.url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    try:
        return create_engine(where.engine_url(), poolclass=NullPool, connect_args=connect_args)
    except ImportError:
        raise EnvironmentFailure(
            f"history {where}: a PostgreSQL history needs psycopg 3, which is not installed "
            "(pip install 'soak[postgres]')"
        ) from None


def _sqlite_connection(con: Any, write: bool) -> None:
    """Each SQLite connection: soak begins its transactions itself (BEGIN IMMEDIATE for a
    writer: the write lock at once, so two writers queue on the busy timeout)."""
    con.isolation_level = None
    cursor = con.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    if write:
        _wal(cursor)
        cursor.execute("PRAGMA synchronous = FULL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _wal(cursor: Any) -> None:
    """Put the file in WAL mode (kept by the file). Switching a new file's journal needs
    its exclusive lock and SQLite answers "locked" at once, without the busy timeout,
    while another new writer holds it: so wait here, as the busy timeout would."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
