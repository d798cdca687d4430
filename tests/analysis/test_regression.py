"""Noise-aware regression: worse than the reference by more than percentage, floor and noise."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from soak.analysis import summary_json
from soak.analysis.analyse import analyse_run
from soak.analysis.load import load_result
from soak.analysis.noise import memory_scatter
from soak.analysis.regression import (
    NOISE_Z,
    RETAINED_MB,
    Measured,
    Regression,
    compare,
    measured,
)
from soak.analysis.result import RunResult
from soak.gate.check import Limits, check, history_references
from soak.history import store as history

DATA = Path(__file__).parent / "data" / "identical_default_runs"
DEFAULT_RUN_TOML = """\
swaps = "auto"
[[variants]]
name = "glibc"
allocator = "glibc"
[[variants]]
name = "jemalloc"
allocator = "jemalloc"
"""


def leaking(mb):
    return lambda k: mb * k


def releasing(k):
    return 0.2 if k else 0.0


def wandering(k):
    """jemalloc's lazy purge: settled memory wanders by several MiB from swap to swap."""
    return [0.0, 11.4, 1.4, 10.6, 11.4, 11.6, 6.6, 9.4, 11.7, 16.5][k]


def test_allowed_is_the_largest_of_percentage_floor_and_noise():
    r = Regression("je", RETAINED_MB, 20.0, 10.0, 10, 1.28, 1.2, 1.6, 1, False)
    assert r.noise == pytest.approx(NOISE_Z * 2.0)  # 3 * sqrt(1.2^2 + 1.6^2)
    assert r.allowed == pytest.approx(6.0) and r.regressed  # +10 > 6
    assert replace(r, r=4.0).allowed == pytest.approx(NOISE_Z * (1.2**2 + 16) ** 0.5)
    assert replace(r, pct=110).allowed == pytest.approx(11.0)
    assert replace(r, floor=12.0).allowed == 12.0 and not replace(r, floor=12.0).regressed
    assert not replace(r, new=None).regressed and replace(r, new=None).unknown


def test_noise_from_the_run_and_spread_from_the_reference_runs(make_run, sim_variant):
    run = make_run([sim_variant("je", "jemalloc", wandering, swaps=9)])
    v = analyse_run(run).variants[0]
    scatter = memory_scatter(v)
    assert scatter is not None and scatter >= (v.memory.verdict.noise_mb or 0)
    figures = measured(v)
    assert figures["retained_mb"].noise == pytest.approx(scatter, abs=5e-4)  # as stored
    assert figures["retained_mb_per_swap"].noise < scatter  # the slope's standard error
    assert figures["swap_p99_ms"].noise is not None
    # Against itself: both runs' noise; latency adds the drift one run cannot show.
    slope, _, steady, _ = compare(v, [figures])
    u = figures["retained_mb_per_swap"].noise
    assert slope.noise == pytest.approx(NOISE_Z * 2**0.5 * u) and not slope.regressed
    assert not slope.spread_measured and slope.drift == 0.0
    assert steady.drift == pytest.approx(0.2 * steady.ref)
    # From 3 reference runs on, their measured spread is the reference's uncertainty.
    runs = [{**figures, "retained_mb_per_swap": Measured(x, 99.0)} for x in (0.0, 1.0, 2.0)]
    slope, _, steady, _ = compare(v, runs)
    assert slope.ref == 1.0 and slope.spread_measured and slope.r == pytest.approx(1.0)
    assert slope.noise == pytest.approx(NOISE_Z * (u**2 + 1.0) ** 0.5)
    assert steady.drift == 0.0 and steady.r == 0.0  # three equal p99s: no spread


def test_a_planted_leak_regresses_against_a_clean_run(make_run, sim_variant, capsys):
    clean = make_run([sim_variant("jemalloc", "jemalloc", wandering, swaps=9)])
    leak = make_run([sim_variant("jemalloc", "jemalloc", leaking(16.0), swaps=9)])
    lines = check(analyse_run(leak), Limits(baseline_dir=clean), analyse_run(clean), run_dir=leak)
    assert [line.split()[1] for line in lines] == ["retained_mb_per_swap", "retained_mb"]
    slope = lines[0]
    assert slope.startswith("jemalloc: retained_mb_per_swap 16 MiB regressed from ")
    assert " MiB allowed (the largest of 10 % of it " in slope
    assert (
        ", noise 3 x " in slope and " (this run's " in slope and ", the reference's own " in slope
    )
    assert slope.endswith(f" in {leak} vs the baseline run {clean}")
    # ... and the clean run does not regress against the leak (it is better)
    assert check(analyse_run(clean), Limits(baseline_dir=leak), analyse_run(leak)) == []


def test_latency_regresses_beyond_its_window_to_window_spread(make_run, sim_variant):
    before = make_run([sim_variant("je", "jemalloc", releasing, steady_ms=5.0)])
    slower = make_run([sim_variant("je", "jemalloc", releasing, steady_ms=15.0)])
    jitter = make_run([sim_variant("je", "jemalloc", releasing, steady_ms=5.6)])
    base = analyse_run(before)
    lines = check(analyse_run(slower), Limits(baseline_dir=before), base)
    assert len(lines) == 1 and lines[0].startswith("je: steady_p99_ms ")
    assert check(analyse_run(jitter), Limits(baseline_dir=before), base) == []  # < the 1 ms floor


def test_a_figure_the_run_lacks_cannot_be_compared(make_run, sim_variant):
    before = make_run([sim_variant("je", "jemalloc", releasing)])
    short = make_run([sim_variant("je", "jemalloc", releasing, swaps=3)])  # 1 swap judged
    lines = check(analyse_run(short), Limits(baseline_dir=before), analyse_run(before))
    assert lines == [
        f"je: retained_mb_per_swap unknown, cannot be compared with the baseline run {before} "
        f"in {short}"
    ]


# --- identical default runs, recorded on this machine ---------------------------------------
# The default `soak run` (128 MiB demo model, glibc and jemalloc) repeated, analysed and
# kept as summary.json: jemalloc's retained memory +4.8 to +15 MiB, its steady p99 7.9 to
# 11.7 ms, its swap p99 195 to 266 ms from one identical run to the next.


def _recorded() -> dict[str, object]:
    return {
        p.stem: summary_json.from_dict(json.loads(p.read_text())) for p in sorted(DATA.glob("*"))
    }


def test_identical_default_runs_never_regress_against_each_other():
    runs = _recorded()
    assert len(runs) >= 5
    crossed = []
    for (a, new), (b, old) in itertools.permutations(runs.items(), 2):
        for line in check(new, Limits(baseline_dir=Path(b)), old, run_dir=a):  # type: ignore[arg-type]
            crossed.append(line)
    assert crossed == []


def _old_run_dir(run_dir: Path, name: str, environment: dict | None = None) -> RunResult:
    """A run dir as an older soak left it (its summary.json has no identity, environment or
    noise) with one setup's run.toml: read back as the gate and the history read it."""
    run_dir.mkdir()
    (run_dir / "summary.json").write_text((DATA / f"{name}.json").read_text())
    (run_dir / "run.toml").write_text(DEFAULT_RUN_TOML)
    if environment is not None:
        (run_dir / "environment.json").write_text(json.dumps(environment))
    return load_result(run_dir)


def test_identical_default_runs_never_regress_against_their_history(tmp_path, history_db):
    db = history_db.where
    dirs = {}
    for n, name in enumerate(_recorded()):
        run_dir = tmp_path / name
        result = _old_run_dir(run_dir, name)
        assert result.identity is not None and result.variants[0].identity is not None
        history.record(db, result, run_dir)
        history_db.execute(  # in the order they ran
            "UPDATE runs SET started_t = :t WHERE run_dir = :run", t=n, run=str(run_dir)
        )
        dirs[name] = (run_dir, result)
    compared = 0
    for run_dir, result in dirs.values():
        variants = list(result.variants)  # type: ignore[attr-defined]
        references, _ = history_references(result, run_dir, variants, 5, db)  # type: ignore[arg-type]
        compared += len(references)
        assert check(result, Limits(against_history=5), references=references) == []  # type: ignore[arg-type]
    # every variant of every run but the first has references
    assert compared == sum(len(result.variants) for _, result in list(dirs.values())[1:])


def test_references_from_another_machine_are_named(tmp_path, history_db):
    """--against-history compares with runs of this machine; others are said (not failed)."""
    names = list(_recorded())[:3]
    db = history_db.where
    hosts = ["ci-small", "ci-small", "ci-big"]  # the last is the run being checked
    dirs = []
    for n, (name, host) in enumerate(zip(names, hosts, strict=True)):
        run_dir = tmp_path / f"run{n}"
        cores = 2 if host == "ci-small" else 16
        env = {"host": host, "cores": cores, "memory_total_bytes": cores << 32}
        result = _old_run_dir(run_dir, name, env)
        history.record(db, result, run_dir)
        history_db.execute(
            "UPDATE runs SET started_t = :t WHERE run_dir = :run", t=n, run=str(run_dir)
        )
        dirs.append((run_dir, result))
    second, last = dirs[1], dirs[2]
    _, notes = history_references(second[1], second[0], list(second[1].variants), 5, db)
    assert not any("another machine" in note for note in notes)
    _, notes = history_references(last[1], last[0], list(last[1].variants), 5, db)
    other = [note for note in notes if "another machine" in note]
    # every reference came from the small machine
    assert other and all(re.search(r"(\d+) of \1 reference runs", n) for n in other)
    assert all("came from another machine (ci-small, 2 cores, 8 GiB;" in n for n in other)
    assert all("this run: ci-big, 16 cores, 64 GiB" in n for n in other)
