"""The command line explains itself: --version, help with defaults, no reference outside the
repo, one line for where a run went, the gate's history options."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest

import soak.cli.runner
from soak import __version__
from soak.analysis.analyse import analyse_run
from soak.cli.main import build_parser, main
from soak.cli.runner import conclude
from soak.history import store as history

ROOT = Path(__file__).resolve().parents[2]


def releasing(k):
    return 0.2 if k else 0.0


def leaking(k):
    return 16.0 * k


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f"{name} {n}", s) for n, s in _subparsers(sub))


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"soak {__version__}"


def test_help_names_no_file_outside_the_repo_and_every_default():
    parser = build_parser()
    texts = {"soak": parser.format_help()}
    texts.update({name: sub.format_help() for name, sub in _subparsers(parser)})
    for name, text in texts.items():
        assert "SPEC" not in text, name
    assert "143 stopped (SIGTERM)" in " ".join(texts["soak"].split())
    for name in ("check", "history", "demo-model"):
        sub = dict(_subparsers(parser))[name]
        for action in sub._actions:
            if action.option_strings and action.dest not in ("help",):
                assert "(default: " in (action.help or ""), f"soak {name} {action.dest}"


def test_the_readme_and_gitignore_say_where_things_go():
    readme = (ROOT / "README.md").read_text()
    assert ". .venv/bin/activate" in readme and "export PATH=$PWD/.venv/bin:$PATH" in readme
    assert "soak-runs/" in readme and "history.sqlite" in readme
    assert "~/.cache/soak/demo-model-128mb-v3-r2/" in readme and "385 MB" in readme
    assert "per crossed limit" not in readme.replace("one line per crossed limit", "")
    assert "soak-runs/" in (ROOT / ".gitignore").read_text().split()
    assert "SPEC" not in readme


def test_the_code_cites_the_contract_in_the_repository():
    """Comments cite docs/ pages, not a document the repository does not hold."""
    for package in ("soak", "soak_model_server", "docker"):
        for path in (ROOT / package).rglob("*"):
            if (
                path.is_file()
                and path.suffix in (".py", ".c", ".sh", "")
                and "SPEC" in (path.read_text(errors="replace"))
            ):
                raise AssertionError(f"{path} cites SPEC")


@pytest.fixture
def fake_run(monkeypatch, make_run, sim_variant):
    """`soak run` replaced by a simulated run (the rest of the command is real)."""
    sim = make_run([sim_variant("jemalloc", "jemalloc", releasing)])

    def run_soak(config, progress):
        shutil.copytree(sim, config.out)
        return conclude(config, Path(config.out), [], False)

    monkeypatch.setattr(soak.cli.runner, "run_soak", run_soak)


def test_a_run_says_once_where_it_went(fake_run, tmp_path, capsys):
    out = tmp_path / "runs" / "one"
    assert main(["run", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sum(str(out) in line for line in lines) == 1
    assert lines[-2].startswith(f"run completed: {out / 'report.html'} (metric anon_bytes")
    db = tmp_path / "runs" / "history.sqlite"
    assert lines[-1] == f"recorded in {db} (soak history {db})"


def test_check_against_a_history_without_comparable_runs_notes_it(fake_run, tmp_path, capsys):
    out = tmp_path / "runs" / "first"
    main(["run", "--quiet", "--out", str(out)])
    capsys.readouterr()
    assert main(["check", str(out), "--against-history", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("soak check: note: jemalloc: no comparable run in ")
    assert lines[0].endswith("not compared")
    assert lines[-1] == f"soak check: within limits (jemalloc) in {out}"


def test_check_against_history_fails_a_planted_leak(make_run, sim_variant, history_db, capsys):
    db = history_db.where
    for _ in range(3):
        run = make_run([sim_variant("jemalloc", "jemalloc", releasing)])
        history.record(db, analyse_run(run), run)
    leak = make_run(
        [sim_variant("jemalloc", "jemalloc", leaking)],
        server_args=["--debug_retain_mb_per_load=16"],
    )
    history.record(db, analyse_run(leak), leak)
    code = main(["check", str(leak), "--against-history", "5", "--history", db])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1 and len(lines) == 2
    assert all(line.startswith("jemalloc: retained_mb") for line in lines)
    assert lines[0].endswith(f"vs the median of the last 3 comparable runs in {history_db.shown}")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--max-regression", "5"], "--max-regression needs --baseline"),
        (["--history", "h.sqlite"], "--history needs --against-history"),
        (["--against-history", "0"], "--against-history must be >= 1"),
    ],
)
def test_check_usage_errors_are_one_line(make_run, sim_variant, capsys, args, message):
    run = make_run([sim_variant("jemalloc", "jemalloc", releasing)])
    assert main(["check", str(run), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1


def test_the_readme_example_is_what_soak_report_prints(tmp_path, capsys):
    """The README's `soak run` block is real: its rows come from `soak report` on the run
    dir it names (tests/analysis/data/real_runs/identical-glibc-cpu), as it says."""
    readme = (ROOT / "README.md").read_text()
    source = "tests/analysis/data/real_runs/identical-glibc-cpu"
    assert f"cp -r {source}\n/tmp/example && soak report /tmp/example" in readme
    block = readme.split("```\nvariant ", 1)[1].split("```", 1)[0]
    shown = [line for line in ("variant " + block).splitlines() if line and line != "..."]
    example = tmp_path / "example"
    shutil.copytree(ROOT / source, example)
    assert main(["report", str(example)]) == 0
    printed = capsys.readouterr().out.replace(str(example), "/tmp/example")
    for line in shown:
        assert line in printed.splitlines(), line
