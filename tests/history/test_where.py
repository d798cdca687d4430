"""Where a history is: a path or a postgresql:// URL, from the flag (or DB), SOAK_HISTORY
or the default; errors are one line with an exit code, and never show the password."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from soak.analysis.load import load_result
from soak.cli.main import main
from soak.cli.runner import conclude
from soak.config.resolve import from_keywords, resolve
from soak.config.settings import add_arguments
from soak.core.errors import EXIT_ENVIRONMENT, EXIT_USAGE, UsageError
from soak.history import store as history
from soak.history.location import parse

SECRET = "s3cret-Pw"


def test_a_history_is_a_path_or_a_postgresql_url():
    assert parse("runs/history.sqlite").path == Path("runs/history.sqlite")
    url = parse(f"postgresql://soak:{SECRET}@db.example:5433/hist?sslmode=require")
    assert (
        url.is_postgres and str(url) == "postgresql://soak:***@db.example:5433/hist?sslmode=require"
    )
    engine = url.engine_url()  # psycopg 3's driver, the password kept for connecting
    assert (engine.drivername, engine.password, engine.port) == ("postgresql+psycopg", SECRET, 5433)
    assert str(parse("postgres://soak@db/hist")) == "postgres://soak@db/hist"
    assert (
        str(parse(f"postgresql://db/hist?password={SECRET}")) == "postgresql://db/hist?password=***"
    )
    for bad, why in (
        (f"mysql://soak:{SECRET}@db/hist", "not a mysql:// URL"),
        (f"postgresql://soak:{SECRET}@db:port/hist", "not a valid URL"),
    ):
        with pytest.raises(UsageError, match=why) as raised:
            parse(bad)
        assert SECRET not in str(raised.value) and "\n" not in str(raised.value)


def test_soak_history_gives_the_history_where_nothing_else_does():
    env = {"SOAK_HISTORY": f"postgresql://soak:{SECRET}@db/hist"}
    assert resolve({}, {}, env).history == env["SOAK_HISTORY"]
    assert resolve({}, {"history": "mine.sqlite"}, env).history == "mine.sqlite"  # a flag
    assert resolve({"history": "file.sqlite"}, {}, env).history == "file.sqlite"  # a config key
    assert from_keywords(env, history="kw.sqlite").history == "kw.sqlite"  # a keyword
    default = resolve({}, {"out": "runs/first"}, {})
    assert default.history is None and default.history_location == "runs/history.sqlite"
    with pytest.raises(UsageError, match="SOAK_HISTORY: expected an SQLite file path or a "):
        resolve({}, {}, {"SOAK_HISTORY": "mysql://db/hist"})
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert "[environment SOAK_HISTORY]" in " ".join(parser.format_help().split())


def test_every_command_records_and_reads_where_soak_history_says(
    postgres_url, run_copies, monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("SOAK_HISTORY", postgres_url)
    shown = str(parse(postgres_url))
    first, second = run_copies(2, "planted-glibc")
    assert main(["history", "--add", str(first)]) == 0
    assert capsys.readouterr().out.startswith(f"recorded {first} in {shown}\n{shown}: 1 runs")
    # the runner (soak run and the plugin's soak_run resolve their settings with it)
    outcome = conclude(replace(from_keywords(os.environ), out=str(second)), second, [], False)
    assert outcome.history is not None and str(outcome.history) == shown
    # compared with the first run (no history.sqlite beside the runs: that would be exit 2)
    assert main(["check", str(second), "--against-history", "3"]) == 0
    assert "no comparable run" not in capsys.readouterr().out
    assert [r.run_dir for r in history.runs(postgres_url)] == [
        str(first.resolve()), str(second.resolve())
    ]  # fmt: skip
    elsewhere = str(tmp_path / "elsewhere.sqlite")  # a DB given beats SOAK_HISTORY
    assert main(["history", elsewhere, "--add", str(first)]) == 0
    assert len(history.runs(elsewhere)) == 1 and len(history.runs(postgres_url)) == 2
    assert SECRET not in capsys.readouterr().out


def test_errors_are_one_line_and_never_show_the_password(postgres_server, capsys):
    password = postgres_server.password
    with_port = postgres_server.url(password="wrong-" + password)
    closed = f"postgresql://soak:{password}@127.0.0.1:1/hist"  # nothing listens on port 1
    for where, code, what in (
        (with_port, EXIT_USAGE, 'password authentication failed for user "soak"'),
        (postgres_server.url("nodb"), EXIT_USAGE, 'database "nodb" does not exist'),
        (postgres_server.url(), EXIT_USAGE, "no history in postgresql://soak:***@127.0.0.1:"),
        (closed, EXIT_ENVIRONMENT, "port 1 failed: Connection refused"),
        (f"mysql://soak:{password}@db/hist", EXIT_USAGE, "not a mysql:// URL"),
    ):
        assert main(["history", where]) == code, where
        err = capsys.readouterr().err
        assert what in err and err.startswith("soak: ") and err.count("\n") == 1, err
        assert password not in err


def test_a_history_that_cannot_be_reached_loses_no_run(postgres_server, run_copies, capsys):
    (run,) = run_copies(1, "glibc-demo")
    closed = f"postgresql://soak:{postgres_server.password}@127.0.0.1:1/hist"
    outcome = conclude(replace(from_keywords(history=closed), out=str(run)), run, [], False)
    assert outcome.history is None and outcome.history_error is not None
    assert "Connection refused" in outcome.history_error
    assert postgres_server.password not in outcome.history_error
    assert (run / "summary.json").is_file()  # `soak history URL --add RUN` records it later


def test_without_psycopg_a_postgresql_history_says_what_to_install():
    blocked = (
        "import sys; sys.modules['psycopg'] = None; from soak.cli.main import main; "
        f"sys.exit(main(['history', 'postgresql://soak:{SECRET}@127.0.0.1:1/hist']))"
    )
    done = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True)
    assert done.returncode == EXIT_ENVIRONMENT
    assert done.stderr == (
        "soak: history postgresql://soak:***@127.0.0.1:1/hist: a PostgreSQL history needs "
        "psycopg 3, which is not installed (pip install 'soak[postgres]')\n"
    )


def test_a_history_of_a_newer_soak_is_refused(history_db, run_copies):
    (run,) = run_copies(1, "glibc-demo")
    assert main(["history", history_db.where, "--add", str(run)]) == 0
    if history_db.backend == "sqlite":
        history_db.execute("PRAGMA user_version = 99")
    else:
        history_db.execute("UPDATE soak_schema SET version = 99")
    for use in (history.runs, lambda where: history.record(where, load_result(run), run)):
        with pytest.raises(UsageError, match=r"written by a newer soak \(schema 99\)"):
            use(history_db.where)


def test_soak_run_refuses_a_history_it_cannot_write_before_it_measures(
    postgres_server, postgres_url, tmp_path, capsys
):
    """A wrong password stops `soak run` at once (exit 2, one line), before any server or
    run dir; a history that can be written is made then and there."""
    wrong = postgres_server.url(password="wrong-" + postgres_server.password)
    out = tmp_path / "run"
    code = main(["run", "--history", wrong, "--out", str(out), "--demo-size-mb", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and 'password authentication failed for user "soak"' in err
    assert err.count("\n") == 1 and postgres_server.password not in err
    assert not out.exists()
    history.check_writable(postgres_url)  # a fresh database: its tables, made before a run
    assert main(["history", postgres_url]) == 0
