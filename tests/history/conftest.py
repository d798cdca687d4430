"""Fixtures of the shared history's tests: distinct copies of real run dirs, and `soak`
as a process of its own (the session's PostgreSQL server and `history_db` are in
tests/conftest.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REAL_RUNS = Path(__file__).resolve().parents[1] / "analysis" / "data" / "real_runs"


@pytest.fixture(scope="session")
def analysed_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recorded real runs with the summary.json `soak run` would have left (analysed
    once per session, so that recording a copy reads it instead of analysing again)."""
    from soak.analysis.analyse import analyse_run
    from soak.analysis.summary_json import write

    base = tmp_path_factory.mktemp("real_runs")
    for source in sorted(REAL_RUNS.iterdir()):
        shutil.copytree(source, base / source.name)
        write(base / source.name, analyse_run(base / source.name))
    return base


@pytest.fixture
def run_copies(analysed_runs: Path, tmp_path: Path) -> Callable[..., list[Path]]:
    """run_copies(n, *names) -> n distinct run dirs (each a run of its own): copies of the
    recorded real runs `names` in turn (default: all of them), analysed."""
    made: list[Path] = []

    def make(n: int, *names: str) -> list[Path]:
        sources = [analysed_runs / name for name in names] or sorted(analysed_runs.iterdir())
        out = []
        for i in range(n):
            source = sources[i % len(sources)]
            run = tmp_path / "runs" / f"run{len(made):02d}-{source.name}"
            shutil.copytree(source, run)
            made.append(run)
            out.append(run)
        return out

    return make


@pytest.fixture
def soak_process() -> Callable[..., subprocess.Popen]:
    """soak_process(*args, env={...}) -> `soak ARGS` running (stdout, stderr piped)."""

    def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "soak", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )

    return start


def variant_count(run: Path) -> int:
    """How many variants a recorded real run has (its dirs with a memory.csv)."""
    return sum(1 for d in run.iterdir() if (d / "memory.csv").is_file())


@pytest.fixture
def assert_whole() -> Callable[..., None]:
    """assert_whole(history_db, runs): the history holds exactly these run dirs, each once
    and with all its variants, and no variant without its run."""

    def check(db, runs: list[Path]) -> None:
        rows = db.execute(
            "SELECT r.run_dir, count(v.name) FROM runs r "
            "LEFT JOIN variants v ON v.run_id = r.id GROUP BY r.id, r.run_dir"
        )
        assert sorted(rows) == sorted((str(run.resolve()), variant_count(run)) for run in runs)
        orphans = "SELECT count(*) FROM variants WHERE run_id NOT IN (SELECT id FROM runs)"
        assert db.execute(orphans) == [(0,)]
        if db.backend == "sqlite":
            assert db.execute("PRAGMA integrity_check") == [("ok",)]

    return check
