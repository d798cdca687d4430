"""`soak history --import`: an existing history moved into another (SQLite to PostgreSQL,
or back), once; and an SQLite history written by the soak before PostgreSQL (schema 3,
tests/history/data) that keeps opening, is migrated in place by a writer, and imports."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from soak.analysis.load import load_result
from soak.cli.main import main
from soak.history import store as history
from soak.history.database import transaction
from soak.history.location import parse
from soak.history.schema import run_table

DATA = Path(__file__).parent / "data"
# What `soak history` of the soak before printed for history-v3.sqlite, the file's name
# replaced by HISTORY. Its night-3 lists jemalloc before glibc: the order it ran them.
V3_LISTING = (DATA / "history-v3.txt").read_text()
V3_RUNS = [f"/srv/soak/soak-runs/night-{n}" for n in range(1, 7)]


def _listing(capsys, where: str) -> str:
    capsys.readouterr()
    assert main(["history", where]) == 0
    return capsys.readouterr().out.replace(str(parse(where)), "HISTORY")


def _everything(where: str) -> list[tuple]:
    """Every run as recorded, with its environment and time of recording."""
    rows = {r.run_dir: r for r in history.runs(where)}
    with transaction(parse(where), write=False) as con:
        extra = {
            r.run_dir: (r.environment, r.recorded_t)
            for r in con.execute(run_table.select().order_by(run_table.c.run_dir))
        }
    return [(rows[d], *extra[d]) for d in sorted(rows)]


def test_import_moves_a_history_over_once(postgres_url, run_copies, tmp_path, capsys):
    runs = run_copies(5)
    sqlite = str(tmp_path / "history.sqlite")
    for run in runs:
        history.record(sqlite, load_result(run), run)
    history.record(postgres_url, load_result(runs[2]), runs[2])  # already there
    capsys.readouterr()
    assert main(["history", postgres_url, "--import", sqlite]) == 0
    shown = str(parse(postgres_url))
    assert capsys.readouterr().out.startswith(
        f"imported {sqlite} into {shown}: 4 runs added, 1 already there (skipped)\n"
    )
    assert main(["history", postgres_url, "--import", sqlite]) == 0
    assert capsys.readouterr().out.startswith(
        f"imported {sqlite} into {shown}: 0 runs added, 5 already there (skipped)\n"
    )
    moved, kept = _everything(postgres_url), _everything(sqlite)
    again = str(runs[2].resolve())
    assert [r for r in moved if r[0].run_dir != again] == [r for r in kept if r[0].run_dir != again]
    assert [r[0] for r in moved] == [r[0] for r in kept]  # the one recorded twice: same figures
    # and back: PostgreSQL into a new SQLite file
    back = str(tmp_path / "back" / "history.sqlite")
    done = history.import_history(postgres_url, back)
    assert (done.added, done.skipped) == (5, 0) and _everything(back) == moved


def test_an_sqlite_history_of_the_soak_before_opens_migrates_and_imports(
    postgres_url, run_copies, tmp_path, capsys
):
    old = tmp_path / "history.sqlite"
    shutil.copy(DATA / "history-v3.sqlite", old)
    assert _listing(capsys, str(old)) == V3_LISTING  # read as it is
    assert sqlite3.connect(old).execute("PRAGMA user_version").fetchone() == (3,)
    before = history.runs(old)

    assert main(["history", postgres_url, "--import", str(old)]) == 0  # imported as it is
    assert _listing(capsys, postgres_url) == V3_LISTING

    (new,) = run_copies(1, "glibc-demo")
    assert main(["history", str(old), "--add", str(new)]) == 0  # a writer migrates it
    with sqlite3.connect(old) as con:
        assert con.execute("PRAGMA user_version").fetchone() == (4,)
        night3 = con.execute(
            "SELECT v.name, v.ordinal FROM variants v JOIN runs r ON r.id = v.run_id "
            "WHERE r.run_dir = ? ORDER BY v.ordinal",
            (V3_RUNS[2],),
        ).fetchall()
    assert night3 == [("jemalloc", 0), ("glibc", 1)]
    after = history.runs(old)
    assert [r for r in after if r.run_dir in V3_RUNS] == before
    assert [r.run_dir for r in after if r.run_dir not in V3_RUNS] == [str(new.resolve())]
