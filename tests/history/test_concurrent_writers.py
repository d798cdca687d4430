"""Many soaks finishing at once, one history: every run lands once, and a writer killed
mid-record leaves nothing of its run. On SQLite and on a real PostgreSQL server; the
writers are `soak history --add` processes recording copies of real run dirs."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from soak.analysis.load import load_result
from soak.history import store as history
from soak.history.schema import SCHEMA_VERSION
from soak.history.store import PAUSE_ENV

WRITERS = 8
VERSION_OF = {"sqlite": "PRAGMA user_version", "postgresql": "SELECT version FROM soak_schema"}


def test_eight_soaks_recording_at_once_all_land_once(
    history_db, run_copies, soak_process, assert_whole
):
    """Eight processes record into a history that does not exist yet: the first ones race
    to create it (on PostgreSQL behind the advisory lock), and every run lands, once."""
    runs = run_copies(WRITERS)
    writers = [soak_process("history", history_db.where, "--add", str(run)) for run in runs]
    for w in writers:
        out, err = w.communicate(timeout=300)
        assert w.returncode == 0, err
        assert history_db.password_free(out + err)
    assert_whole(history_db, runs)
    assert history_db.execute(VERSION_OF[history_db.backend]) == [(SCHEMA_VERSION,)]


def test_a_writer_killed_mid_record_leaves_no_partial_run(
    history_db, run_copies, soak_process, assert_whole, tmp_path
):
    """kill -9 of a writer inside its transaction (paused after its run's row, before its
    variants, while seven others wait for the write lock, one of them recording a run
    again): the seven land, each once, nothing of the killed one is there, and it records
    as usual afterwards."""
    victim, *others = run_copies(WRITERS)
    history.record(history_db.where, load_result(others[0]), others[0])  # recorded again below
    paused = tmp_path / "paused"
    killed = soak_process(
        "history", history_db.where, "--add", str(victim), env={PAUSE_ENV: str(paused)}
    )
    _wait_for(lambda: paused.exists() or killed.poll() is not None, "the writer to pause")
    assert killed.poll() is None, killed.communicate()
    assert history_db.execute("SELECT count(*) FROM runs") == [(1,)]  # its row: not committed
    writers = [soak_process("history", history_db.where, "--add", str(run)) for run in others]
    pids = [w.pid for w in writers]
    _wait_for(lambda: _waiting(history_db, pids) == len(others), "the others to queue")
    killed.send_signal(signal.SIGKILL)
    assert killed.wait(timeout=30) == -signal.SIGKILL
    for w in writers:
        _, err = w.communicate(timeout=300)
        assert w.returncode == 0, err
    assert_whole(history_db, others)
    paused.unlink()
    assert soak_process("history", history_db.where, "--add", str(victim)).wait(timeout=120) == 0
    assert_whole(history_db, [victim, *others])


def _waiting(db, pids: list[int]) -> int:
    """How many writers wait for the history's write lock (PostgreSQL: pg_locks; SQLite:
    those that have the file open, so are at their BEGIN IMMEDIATE or past it)."""
    if db.backend == "postgresql":
        locks = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        return int(db.execute(locks)[0][0])
    path = os.path.realpath(db.where)
    return sum(path in _open_files(pid) for pid in pids)


def _open_files(pid: int) -> set[str]:
    found = set()
    with contextlib.suppress(OSError):  # gone, or a descriptor closed while read
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            found.add(os.path.realpath(fd))
    return found


def _wait_for(condition, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
