"""The run history: recorded at the edge of a run, safe to share, listed with its trend."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from soak.analysis import summary_json
from soak.analysis.analyse import analyse_run
from soak.cli.main import main
from soak.cli.runner import conclude
from soak.config.resolve import from_keywords
from soak.core.errors import UsageError
from soak.history import store as history
from soak.history.database import transaction
from soak.history.location import parse
from soak.history.schema import run_table, variant_table

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENT = {
    "host": "soak-host",
    "os": "Linux-6.1",
    "kernel": "6.1.0",
    "cores": 2,
    "usable_cores": 2,
    "memory_total_bytes": 8 << 30,
    "glibc_version": "glibc 2.36",
    "python": "3.11.7",
    "tensorflow": "2.21.0",
    "image": None,
    "server_binary": "/usr/bin/soak-model-server",
}


def leaking(mb):
    return lambda k: mb * k


def releasing(k):
    return 0.2 if k else 0.0


@pytest.fixture
def finished(make_run, sim_variant):
    """finished(sims, **run_toml) -> a run dir as `soak run` leaves it (summary.json written)."""

    def make(sims, **settings):
        run = make_run(sims, **settings)
        (run / "environment.json").write_text(json.dumps(ENVIRONMENT))
        summary_json.write(run, analyse_run(run))
        return run

    return make


def test_a_run_is_one_row_and_one_row_per_variant(finished, sim_variant, history_db):
    run = finished(
        [
            sim_variant("glibc", "glibc", leaking(8.0)),
            sim_variant("jemalloc", "jemalloc", releasing),
        ]
    )
    db = history_db.where
    history.record(db, analyse_run(run), run)
    (recorded,) = history.runs(db)
    assert recorded.run_dir == str(run.resolve())
    assert recorded.status == "completed" and recorded.model_name == "ranker"
    assert recorded.model_path == "demo model, 128 MiB"  # run.toml names no --model
    assert (recorded.host, recorded.cores, recorded.tensorflow) == ("soak-host", 2, "2.21.0")
    assert len(recorded.config_hash) == 12 and recorded.soak_version
    glibc, jemalloc = recorded.variants
    assert (glibc.name, glibc.verdict, jemalloc.verdict) == ("glibc", "leak", "released")
    assert glibc.retained_mb_per_swap == pytest.approx(8.0, abs=0.1)
    assert glibc.config_hash != jemalloc.config_hash  # each variant's own setup
    assert jemalloc.swap_p99_ms is not None and jemalloc.steady_p99_ms_noise is not None
    assert history_db.execute("SELECT count(*) FROM runs") == [(1,)]
    assert history_db.execute("SELECT count(*) FROM variants") == [(2,)]
    if history_db.backend == "sqlite":
        assert history_db.execute("PRAGMA journal_mode") == [("wal",)]
    history.record(db, analyse_run(run), run)  # the same run again: replaced
    assert len(history.runs(db)) == 1
    assert history_db.execute("SELECT count(*) FROM variants") == [(2,)]


def test_filters_by_model_variant_and_config_hash(finished, sim_variant, history_db):
    db = history_db.where
    a = finished(
        [sim_variant("glibc", "glibc", releasing), sim_variant("je", "jemalloc", releasing)]
    )
    b = finished([sim_variant("je", "jemalloc", releasing)], model_name="other", rps=5.0)
    for run in (a, b):
        history.record(db, analyse_run(run), run)
    assert [r.model_name for r in history.runs(db, model="other")] == ["other"]
    only_je = history.runs(db, variant="je")
    assert len(only_je) == 2 and all([v.name for v in r.variants] == ["je"] for r in only_je)
    glibc_hash = history.runs(db)[0].variants[0].config_hash
    (found,) = history.runs(db, config_hash=glibc_hash[:6])
    assert [v.name for v in found.variants] == ["glibc"]
    assert history.runs(db, variant="nope") == []


def test_comparable_runs_are_the_same_setup_and_model_completed(finished, sim_variant, history_db):
    db = history_db.where
    clean = [finished([sim_variant("je", "jemalloc", releasing)]) for _ in range(3)]
    other_rps = finished([sim_variant("je", "jemalloc", releasing)], rps=5.0)
    other_model = finished([sim_variant("je", "jemalloc", releasing)], model="/models/ranker")
    failed = finished([sim_variant("je", "jemalloc", releasing, status="failed", reason="x")])
    flags = finished(  # what is under test changed (a server flag): still comparable
        [sim_variant("je", "jemalloc", leaking(16.0))],
        server_args=["--debug_retain_mb_per_load=16"],
    )
    for run in (*clean, other_rps, other_model, failed, flags):
        history.record(db, analyse_run(run), run)
    result = analyse_run(flags)
    assert result.identity is not None and result.variants[0].identity is not None
    config_hash, model = result.variants[0].identity.config_hash, result.identity.model_path
    found = history.comparable(db, "je", config_hash, "ranker", model, 5, run_dir=flags)
    assert [Path(run.run_dir) for run, _ in found] == [c.resolve() for c in clean]
    assert len(history.comparable(db, "je", config_hash, "ranker", model, 2, run_dir=flags)) == 2
    # a run is never its own reference
    mine = history.comparable(db, "je", config_hash, "ranker", model, 5, run_dir=clean[2])
    assert clean[2].resolve() not in [Path(r.run_dir) for r, _ in mine]


def test_the_runner_records_every_finished_run(make_run, sim_variant, history_db):
    run = make_run([sim_variant("je", "jemalloc", releasing, kill_at_s=60.0)])  # interrupted
    config = replace(from_keywords(), out=str(run))  # as `soak run --out RUN` resolved it
    outcome = conclude(config, run, [], interrupted=True)
    assert (run / "summary.json").exists() and (run / "report.html").exists()
    assert outcome.history is not None and outcome.history.path == run.parent / "history.sqlite"
    (recorded,) = history.runs(outcome.history)
    assert recorded.status == "interrupted"
    elsewhere = conclude(replace(config, history=history_db.where), run, [], False)
    assert str(elsewhere.history) == history_db.shown
    assert [r.run_dir for r in history.runs(history_db.where)] == [str(run.resolve())]


def test_a_history_that_cannot_be_written_does_not_lose_the_run(make_run, sim_variant, tmp_path):
    run = make_run([sim_variant("je", "jemalloc", releasing)])
    (tmp_path / "not-a-db").write_text("hello, this is not SQLite " * 100)
    config = replace(from_keywords(history=str(tmp_path / "not-a-db")), out=str(run))
    outcome = conclude(config, run, [], False)
    assert outcome.history is None and "not a database" in (outcome.history_error or "")
    assert (run / "summary.json").exists()


def test_unreadable_histories_are_one_line_errors(tmp_path):
    with pytest.raises(UsageError, match="no history at .*--history FILE"):
        history.runs(tmp_path / "missing.sqlite")
    (tmp_path / "junk").write_text("x" * 4096)
    with pytest.raises(UsageError, match="not a database"):
        history.runs(tmp_path / "junk")
    newer = tmp_path / "newer.sqlite"
    with sqlite3.connect(newer) as con:
        con.execute("PRAGMA user_version = 99")
    with pytest.raises(UsageError, match="newer soak"):
        history.runs(newer)


# --- safety: concurrent writers, kill -9 ---------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys, time
    from dataclasses import replace
    from pathlib import Path
    from soak.history import store as history
    from soak.analysis import summary_json

    db, template, out, first, count, slow = sys.argv[1:7]
    result = summary_json.read(Path(template))
    if slow == "1":  # stretch each transaction, so that a kill lands inside one
        history._pause_point = lambda: time.sleep(0.05)
    for i in range(int(first), int(first) + int(count)):
        run_dir = Path(out) / f"run{i:04d}"
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "run.toml").write_text((Path(template) / "run.toml").read_text())
        history.record(db, replace(result, run_dir=str(run_dir)), run_dir)
        print(i, flush=True)
    """
)


def _writer(db, template, out, first, count, slow=False):
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), str(template), str(out), str(first), str(count)]
        + ["1" if slow else "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _consistent(db) -> int:
    """The history reads (SQLite: passes its check), and every run has all its variants."""
    if db.backend == "sqlite":
        assert db.execute("PRAGMA integrity_check") == [("ok",)]
    broken = db.execute(
        "SELECT count(*) FROM runs WHERE (SELECT count(*) FROM variants v "
        "WHERE v.run_id = runs.id) != 2"
    )
    assert broken == [(0,)]
    return len(history.runs(db.where))


def test_two_runs_finishing_at_once_both_land(finished, sim_variant, tmp_path, history_db):
    template = finished(
        [sim_variant("glibc", "glibc", releasing), sim_variant("je", "jemalloc", releasing)]
    )
    writers = [
        _writer(history_db.where, template, tmp_path / "runs", first, 25) for first in (0, 100)
    ]
    for w in writers:
        _, err = w.communicate(timeout=240)
        assert w.returncode == 0, err
    assert _consistent(history_db) == 50


def test_a_new_history_another_writer_holds_is_waited_for(finished, sim_variant, tmp_path):
    """Two writers making one new SQLite history: the second waits for the first's lock
    (SQLite would refuse its switch to WAL at once)."""
    template = finished(
        [sim_variant("glibc", "glibc", releasing), sim_variant("je", "jemalloc", releasing)]
    )
    db = tmp_path / "new.sqlite"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    w = _writer(db, template, tmp_path / "runs", 0, 1)
    time.sleep(1.0)
    assert w.poll() is None, w.communicate()
    holder.execute("COMMIT")
    holder.close()
    _, err = w.communicate(timeout=120)
    assert w.returncode == 0, err
    assert len(history.runs(db)) == 1


def test_kill_9_during_a_write_leaves_a_readable_file(finished, sim_variant, tmp_path, history_db):
    template = finished(
        [sim_variant("glibc", "glibc", releasing), sim_variant("je", "jemalloc", releasing)]
    )
    db = history_db.where
    landed = 0
    for attempt in range(4):
        w = _writer(db, template, tmp_path / "runs", attempt * 1000, 1000, slow=True)
        assert w.stdout is not None
        for _ in range(3):  # some runs are in; the next one is mid-transaction most of the time
            w.stdout.readline()
        time.sleep(0.03 + 0.02 * attempt)
        w.send_signal(signal.SIGKILL)
        w.wait(timeout=30)
        count = _consistent(history_db)
        assert count >= landed + 3
        landed = count
    # and it takes the next run as usual
    w = _writer(db, template, tmp_path / "runs", 9000, 1)
    assert w.wait(timeout=60) == 0
    assert _consistent(history_db) == landed + 1


# --- soak history ---------------------------------------------------------------------------


@pytest.fixture
def recorded(finished, sim_variant, history_db):
    """Four runs in a history: three clean, one with a planted leak (the newest)."""
    runs = [finished([sim_variant("je", "jemalloc", releasing)]) for _ in range(3)]
    runs.append(finished([sim_variant("je", "jemalloc", leaking(16.0))]))
    for run in runs:
        history.record(history_db.where, analyse_run(run), run)
    return history_db, runs


def test_soak_history_lists_runs_and_the_trend(recorded, capsys):
    db, runs = recorded
    assert main(["history", db.where]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{db.shown}: 4 runs, model ranker")
    assert "je  model ranker (demo model, 128 MiB, 40.0 MiB)  config " in out
    lines = out.splitlines()
    rows = [line for line in lines if any(line.endswith(str(run)) for run in runs)]
    assert len(rows) == 4 and "released" in rows[0] and "leak" in rows[-1]
    trend = next(line for line in lines if line.strip().startswith("trend:"))
    assert "retained ▁▁▁█ +128.1 MiB" in trend
    assert "last vs the median of the 3 runs before: retained +128.1 vs +0.3 MiB" in out


def test_soak_history_html_and_filters(recorded, tmp_path, capsys):
    db, _ = recorded
    page = tmp_path / "page" / "history.html"
    assert main(["history", db.where, "--html", str(page), "--variant", "je"]) == 0
    html = page.read_text()
    assert html.count('<img alt="" src="data:image/svg+xml;base64,') == 2
    assert "<h2>je " in html and "leak" in html and "released" in html
    capsys.readouterr()
    assert main(["history", db.where, "--model", "nothing"]) == 0
    assert "no runs recorded (that match)" in capsys.readouterr().out


def test_soak_history_adds_a_run_that_could_not_record_itself(
    make_run, sim_variant, history_db, capsys
):
    run = make_run([sim_variant("je", "jemalloc", releasing, kill_at_s=60.0)])  # killed: no summary
    assert main(["history", history_db.where, "--add", str(run)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"recorded {run} in {history_db.shown}")
    assert "interrupted" in out


def _rows(where: str | Path) -> list[tuple]:
    """Every recorded figure but which record it is, where and when it was recorded."""
    left_out = {"id", "run_id", "run_dir", "recorded_t"}
    with transaction(parse(where), write=False) as con:
        out = []
        for table in (run_table, variant_table):
            columns = [c for c in table.c if c.name not in left_out]
            out += [tuple(r) for r in con.execute(select(*columns).order_by(*columns[:2]))]
    return out


def test_history_add_records_what_the_live_run_recorded_even_from_a_copy(
    make_run, sim_variant, tmp_path, history_db
):
    run = make_run(
        [sim_variant("glibc", "glibc", leaking(8.0)), sim_variant("je", "jemalloc", releasing)]
    )
    (run / "environment.json").write_text(json.dumps(ENVIRONMENT))
    live = conclude(replace(from_keywords(), out=str(run)), run, [], interrupted=False)
    assert live.history is not None
    copy = tmp_path / "copied" / "run"
    shutil.copytree(run, copy)  # new files: their times are now, not the run's
    os.utime(copy / "summary.json", (1, 1))
    added = history_db.where
    assert main(["history", added, "--add", str(copy)]) == 0
    assert _rows(added) == _rows(live.history)
    (recorded,) = history.runs(added)
    assert recorded.host == "soak-host" and recorded.started_t < recorded.finished_t
    # A run dir of an older soak (no identity, environment, times or noise in summary.json):
    # the same record, from its run.toml, environment.json and events.
    summary = json.loads((copy / "summary.json").read_text())
    for key in ("started_t", "finished_t", "identity", "environment"):
        del summary[key]
    for v in summary["variants"]:
        del v["noise"], v["identity"]
    (copy / "summary.json").write_text(json.dumps(summary))
    assert main(["history", added, "--add", str(copy)]) == 0  # recorded again: replaced
    assert _rows(added) == _rows(live.history)


def test_soak_history_without_a_file_is_a_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["history"]) == 2
    assert "no history at soak-runs/history.sqlite" in capsys.readouterr().err
