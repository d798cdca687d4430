"""SQLite and PostgreSQL holding the same runs: `soak history` and `soak check
--against-history` say the same, whether the runs were added or imported."""

from __future__ import annotations

from soak.analysis.load import load_result
from soak.cli.main import main
from soak.history import store as history
from soak.history.location import parse


def _said(capsys, where: str, *args: str) -> tuple[int, str]:
    """`soak ARGS` run in this process: its exit code and output, the history named
    HISTORY (SQLite's path and PostgreSQL's masked URL are the one difference)."""
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return code, (captured.out + captured.err).replace(str(parse(where)), "HISTORY")


def test_history_and_check_say_the_same_on_sqlite_and_postgresql(
    postgres_database, run_copies, tmp_path, capsys
):
    nights = run_copies(4, "identical-glibc-cpu")  # comparable with each other
    others = run_copies(3, "planted-glibc", "default-run", "glibc-demo")
    sqlite, added, imported = (
        str(tmp_path / "history.sqlite"),
        postgres_database(),
        postgres_database(),
    )
    for where in (sqlite, added):
        for run in [*nights, *others]:
            assert main(["history", where, "--add", str(run)]) == 0
    assert main(["history", imported, "--import", sqlite]) == 0
    said = {}
    for where in (sqlite, added, imported):
        against = ("--against-history", "5", "--history", where)
        said[where] = [
            _said(capsys, where, "history", where),
            _said(capsys, where, "history", where, "--variant", "glibc-a", "--last", "2"),
            _said(capsys, where, "check", str(nights[-1]), *against),
            _said(capsys, where, "check", str(others[0]), *against),
        ]
    assert said[added] == said[sqlite] and said[imported] == said[sqlite]
    listing, last_two, night, planted = said[sqlite]
    assert listing[0] == 0 and listing[1].startswith("HISTORY: 7 runs, model model")
    assert last_two[1].count("completed  leak") == 2
    assert night == (0, f"soak check: within limits (glibc-a, glibc-b, jemalloc) in {nights[-1]}\n")
    assert planted[0] == 0 and "glibc: no comparable run in HISTORY" in planted[1]
    # the night was compared, with the three runs before it, on each backend
    result = load_result(nights[-1])
    v = result.variants[0]
    assert v.identity is not None and result.identity is not None
    for where in (sqlite, added, imported):
        found = history.comparable(
            where, v.name, v.identity.config_hash, "model", result.identity.model_path, 5,
            run_dir=nights[-1],
        )  # fmt: skip
        assert [run.run_dir for run, _ in found] == [str(n.resolve()) for n in nights[:3]]
