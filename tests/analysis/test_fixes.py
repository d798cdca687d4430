"""Fixes and what they cost (docs/contract.md#fixes): the server's CPU, the variants against
the reference with their uncertainty, the recommendation, the memory a pod needs."""

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from soak.analysis import summary_json
from soak.analysis.analyse import analyse_run
from soak.analysis.attribution import attribute
from soak.analysis.inputs import read_run
from soak.analysis.result import VariantComparison
from soak.analysis.shift import (
    EXACT_MAX_PAIRS,
    _rank,
    _u_counts,
    compare_samples,
    hodges_lehmann,
    judge,
)
from soak.analysis.timeline import build_timeline
from soak.store.records import MIB

DATA = Path(__file__).parent / "data"
REAL_RUNS = DATA / "real_runs"


def releasing(k):
    return 0.2 if k else 0.0


def glibc_like(k):
    """Kept memory that piles up over the first swaps, then zigzags: a plateau."""
    return 15.0 * min(k, 3) + (7.0 if k % 2 else 0.0)


def by_name(result):
    return {v.name: v for v in result.variants}


# --- the Hodges–Lehmann shift ---------------------------------------------------------------


def test_u_counts_are_the_mann_whitney_null_distribution():
    assert _u_counts(1, 1) == [1, 1]
    assert _u_counts(2, 2) == [1, 1, 2, 1, 1]
    for n, m in ((3, 4), (5, 5), (7, 3)):
        counts = _u_counts(n, m)
        assert sum(counts) == math.comb(n + m, n)
        assert counts == counts[::-1]  # symmetric


def test_the_interval_needs_enough_values():
    assert _rank(3, 3, 0.95) == 0  # the most extreme ordering alone: 2/20 two-sided
    assert _rank(4, 4, 0.95) == 1  # 2/70: the smallest and largest difference
    assert _rank(3, 5, 0.95) == 1
    assert hodges_lehmann([1, 2, 3], [4, 5, 6]) == (-3.0, None, None)
    assert hodges_lehmann([], [1.0]) == (None, None, None)
    assert judge(-3.0, None, None, 0.0) is None  # too few values: no label, not "same"
    shift = compare_samples([1, 2, 3], [4, 5, 6], 0.5)
    assert shift.label is None and shift.shift == -3.0 and shift.n == 3


def test_exact_and_normal_ranks_agree_where_they_meet():
    for n, m in ((50, 50), (40, 60), (30, 80)):
        assert n * m <= EXACT_MAX_PAIRS
        exact = _rank(n, m, 0.95)
        sigma = math.sqrt(n * m * (n + m + 1) / 12)
        normal = math.floor(n * m / 2 - 1.959964 * sigma + 0.5)
        assert abs(exact - normal) <= 1


def test_the_interval_covers_a_known_shift_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    covered = 0
    trials = 400
    for _ in range(trials):
        x = rng.normal(10.0, 2.0, 8) + 1.5
        y = rng.normal(10.0, 2.0, 10)
        _, low, high = hodges_lehmann(x, y)
        covered += low <= 1.5 <= high
    assert 0.92 <= covered / trials <= 0.99
    x, y = rng.exponential(3.0, 200) + 4.0, rng.exponential(3.0, 150)  # skewed, large
    shift, low, high = hodges_lehmann(x, y)
    assert low < 4.0 < high and shift == pytest.approx(4.0, abs=0.5)


def test_labels_need_the_interval_and_the_margin():
    rng = np.random.default_rng(2)
    y = rng.normal(100.0, 5.0, 12)
    assert compare_samples(y + rng.normal(0, 0.1, 12), y, 10.0).label == "same"
    assert compare_samples(y + 50.0, y, 10.0).label == "worse"
    assert compare_samples(y - 50.0, y, 10.0).label == "better"
    # a clear but small difference: inside the practical margin
    small = compare_samples(y + 5.0, y + rng.normal(0, 0.01, 12), 10.0)
    assert small.low > 0 and small.label == "same"
    # a large shift in noise so wide that the interval covers 0
    wide = compare_samples(rng.normal(120.0, 80.0, 5), rng.normal(100.0, 80.0, 5), 10.0)
    assert wide.low < 0 < wide.high and wide.label == "same"


def test_identical_default_runs_compare_the_same_and_jemalloc_keeps_less():
    """The margins, on the real default runs: every run's jemalloc against glibc of the same
    run, and jemalloc against jemalloc of other runs (identical setups)."""
    from soak.analysis.comparison import margin, samples, versus

    results = {
        p.stem: summary_json.from_dict(json.loads(p.read_text()))
        for p in sorted((DATA / "identical_default_runs").glob("*.json"))
    }
    model_mb = 128.0
    for result in results.values():
        names = {v.name: v for v in result.variants}
        if {"glibc", "jemalloc"} <= set(names):
            compared = versus(names["jemalloc"], names["glibc"], result.threshold_mb, 128 << 20)
            assert compared.kept_mb.label == "better"
    jemallocs = [r.variant("jemalloc") for r in results.values()]
    for a in jemallocs:
        for b in jemallocs:
            if a is b:
                continue
            for figure in ("kept_mb", "swap_p99_ms"):
                ref = samples(b, figure)
                got = compare_samples(samples(a, figure), ref, margin(figure, ref, 1.28, model_mb))
                assert got.label in ("same", None) or figure == "swap_p99_ms"
    # swap p99 across runs days apart: the same in most pairs (drift beyond one run's)
    labels = [
        compare_samples(
            samples(a, "swap_p99_ms"),
            samples(b, "swap_p99_ms"),
            margin("swap_p99_ms", samples(b, "swap_p99_ms"), 1.28, model_mb),
        ).label
        for a in jemallocs
        for b in jemallocs
        if a is not b
    ]
    assert labels.count("same") >= 0.8 * len(labels)


# --- the server's CPU -----------------------------------------------------------------------


def test_cpu_per_request_of_a_server_burning_a_known_amount(make_run, sim_variant):
    run = make_run(
        [sim_variant("glibc", "glibc", releasing, cpu_ms_per_request=3.0, cpu_s_per_load=1.5)]
    )
    glibc = by_name(analyse_run(run))["glibc"]
    cpu = glibc.cpu
    assert cpu.windows == 8 and cpu.swaps == 8
    assert cpu.steady_ms_per_request == pytest.approx(3.0, rel=0.02)
    low, high = cpu.steady_ms_per_request_spread
    assert low <= cpu.steady_ms_per_request <= high and high - low < 0.1
    # a swap: its load, and the requests from staging until settled (8 s at 20 rps)
    assert cpu.swap_cpu_s == pytest.approx(1.5 + 8 * 20 * 0.003, abs=0.05)
    assert all(s.steady_cpu_ms_per_request is not None for s in glibc.swaps)


def test_cpu_counts_the_idle_server_and_leaves_out_the_trim_experiment(make_run, sim_variant):
    # 2 ms of CPU per idle second at 20 requests a second: 0.1 ms more per request
    sim = sim_variant("glibc", "glibc", releasing, cpu_ms_per_request=3.0, cpu_idle_ms_per_s=2.0)
    end = 2.0 + 7 * 12.0 + 8.0 + 8.0  # the last swap settled at this offset
    sim.extra_events = [
        (end + 1.0, 8, "swaps_done", 9, "as planned"),
        (end + 1.2, 8, "release", 9, "malloc_trim(0)"),
        (end + 1.7, 8, "released", 9, "300.0"),
    ]
    glibc = by_name(analyse_run(make_run([sim])))["glibc"]
    assert glibc.cpu.steady_ms_per_request == pytest.approx(3.1, rel=0.02)
    assert glibc.swaps[-1].steady_cpu_ms_per_request == pytest.approx(3.1, rel=0.03)


def test_runs_without_cpu_s_have_no_cpu_figures(tmp_path):
    run = Path(shutil.copytree(REAL_RUNS / "planted-glibc", tmp_path / "planted"))
    glibc = analyse_run(run).variant("glibc")
    assert glibc.cpu.steady_ms_per_request is None and glibc.cpu.swap_cpu_s is None
    assert glibc.cpu.steady_ms_per_request_spread is None and glibc.cpu.windows == 0
    assert all(s.cpu_s is None for s in glibc.swaps)


# --- variants against the reference --------------------------------------------------------


def test_two_identical_variants_compare_the_same_on_every_figure(make_run, sim_variant):
    for seed_shift in range(5):
        sims = [
            sim_variant(
                name,
                "glibc",
                glibc_like,
                cpu_ms_per_request=3.0,
                cpu_idle_ms_per_s=1.0,
                noise_mb=3.0,
                cpu_drift=drift,
            )
            for name, drift in (("glibc", 0.0), ("glibc-again", 0.04 * seed_shift))
        ]
        result = analyse_run(make_run(sims))
        versus = result.variant("glibc-again").comparison
        assert versus.reference == "glibc"
        assert {versus.figure(f).label for f in VariantComparison.FIGURES} == {"same"}
        assert result.comparison.least_latency is None
        assert result.comparison.ranking == ()
        assert "no variant gives back memory beyond the noise" in result.comparison.recommendation


def test_a_planted_leak_is_worse_on_memory(make_run, sim_variant):
    result = analyse_run(
        make_run(
            [
                sim_variant("jemalloc", "jemalloc", releasing, noise_mb=1.0),
                sim_variant("planted", "jemalloc", lambda k: 16.0 * k, noise_mb=1.0),
            ]
        )
    )
    kept = result.variant("planted").comparison.kept_mb
    assert kept.label == "worse"
    assert kept.shift == pytest.approx(16.0 * 5.5, abs=2.0)  # the median of swaps 3..8
    assert kept.low > 0


def test_the_recommendation_ranks_the_fixes_and_names_their_cost(make_run, sim_variant):
    sims = [
        sim_variant("glibc", "glibc", glibc_like, cpu_ms_per_request=3.0),
        sim_variant(
            "glibc-mmap",
            "glibc",
            releasing,
            cpu_ms_per_request=3.9,  # +30 %: large tensors cost an mmap and page faults
            table={"env": {"MALLOC_MMAP_THRESHOLD_": "131072"}},
        ),
        sim_variant("jemalloc", "jemalloc", releasing, cpu_ms_per_request=3.06),
        sim_variant(
            "glibc-trim",
            "glibc",
            releasing,
            cpu_ms_per_request=3.0,
            swap_ms=120.0,
            table={"release_after_unload": True},
        ),
        sim_variant("glibc-arenas2", "glibc", glibc_like, cpu_ms_per_request=3.0),
    ]
    result = analyse_run(make_run(sims))
    c = result.comparison
    assert c.reference == "glibc"
    # all three give back what glibc keeps; jemalloc costs nothing beyond the margins
    assert c.ranking == ("jemalloc", "glibc-mmap", "glibc-trim")
    lines = c.recommendation.splitlines()
    assert lines[0].startswith("use jemalloc: of the 3 variants that give back memory glibc keeps")
    jemalloc, mmap, trim = lines[1:]
    assert jemalloc.startswith("jemalloc: keeps 48 MiB less")
    assert "less than glibc (released); CPU per request +2 % (±0); " in jemalloc
    assert "steady p99 the same; swap p99 the same" in jemalloc
    assert "in production: preload libjemalloc.so.2" in jemalloc
    assert "CPU per request +30 % (±0), worse" in mmap
    assert "in production: ENV MALLOC_MMAP_THRESHOLD_=131072" in mmap
    assert "swap p99 +2" in trim and ", worse" in trim  # 120 ms against glibc's 30
    assert "malloc_trim(0) after each model unload" in trim
    assert c.least_latency is None  # nobody is faster than glibc beyond the noise
    arenas = result.variant("glibc-arenas2")
    assert arenas.comparison.kept_mb.label == "same"
    assert result.variant("glibc-trim").production_change.startswith("call malloc_trim(0)")
    assert result.variant("glibc").production_change == "nothing: the server as it is"
    assert result.variant("glibc").comparison is None


def test_least_latency_only_from_a_difference_beyond_the_noise(make_run, sim_variant):
    result = analyse_run(
        make_run(
            [
                sim_variant("glibc", "glibc", releasing, swap_ms=90.0),
                sim_variant("jemalloc", "jemalloc", releasing, swap_ms=20.0),
                sim_variant("tcmalloc", "tcmalloc", releasing, swap_ms=80.0),
            ]
        )
    )
    assert result.variant("jemalloc").comparison.swap_p99_ms.label == "better"
    assert result.variant("tcmalloc").comparison.swap_p99_ms.label == "same"
    assert result.comparison.least_latency == "jemalloc"
    assert "keep glibc: it releases" in result.comparison.recommendation


def test_trimmed_events_change_no_swap_and_no_attribution(make_run, sim_variant, tmp_path):
    def sims(trimmed):
        sim = sim_variant("glibc-trim", "glibc", releasing, table={"release_after_unload": True})
        if trimmed:  # right after each old version reached END (swap k: 2 + 12 (k-1) + 3.5)
            sim.extra_events = [
                (2.0 + 12.0 * (k - 1) + 8.0 + 3.6, k, "trimmed", k, "malloc_trim(0)")
                for k in range(1, 9)
            ]
        return [sim]

    plain, trimmed = analyse_run(make_run(sims(False))), analyse_run(make_run(sims(True)))
    a, b = plain.variant("glibc-trim"), trimmed.variant("glibc-trim")
    assert [s.settled_mb for s in a.swaps] == [s.settled_mb for s in b.swaps]
    assert a.memory.verdict == b.memory.verdict and a.latency == b.latency
    events = read_run(Path(trimmed.run_dir)).variants[0].events
    assert sum(e.event == "trimmed" for e in events) == 8
    timeline = build_timeline(events)
    assert timeline.release is None and len(timeline.swaps) == 8
    assert attribute([], events, "on", b.memory.verdict, "anon_bytes").release_call is None


# --- the memory a pod needs ------------------------------------------------------------------


def peak_rss_mb(run: Path) -> float:
    with open(run / "glibc" / "memory.csv", newline="") as f:
        return max(int(row["rss_bytes"]) for row in csv.DictReader(f)) / MIB


@pytest.mark.parametrize("name", ["glibc-demo", "planted-glibc"])
def test_pod_memory_is_never_below_the_peak_rss_of_a_real_run(name, tmp_path):
    run = Path(shutil.copytree(REAL_RUNS / name, tmp_path / name))
    glibc = analyse_run(run).variant("glibc")
    pod = glibc.pod_memory
    assert pod.basis == "rss_bytes"
    assert pod.peak_mb == pytest.approx(peak_rss_mb(run), abs=1e-3)  # the run's highest RSS
    assert glibc.pod_memory_mb >= peak_rss_mb(run)  # never below it, rounded or not
    # what 30 swaps keep beyond the run's at the growth's upper bound
    assert pod.plan_swaps == 30 and pod.more_swaps == 30 - glibc.swaps_completed
    assert pod.mb_per_swap >= (glibc.memory.retained_mb_per_swap or 0.0)
    # (the rate as summary.json holds it, to 3 places)
    assert pod.mb == pytest.approx(pod.peak_mb + pod.more_swaps * pod.mb_per_swap, abs=0.05)


def test_plan_swaps_from_run_toml(make_run, sim_variant):
    run = make_run([sim_variant("glibc", "glibc", lambda k: 16.0 * k)], plan_swaps=8)
    pod = analyse_run(run).variant("glibc").pod_memory
    assert pod.plan_swaps == 8 and pod.more_swaps == 0 and pod.mb == pod.peak_mb


# --- summary.json ------------------------------------------------------------------------------


def test_summary_json_holds_the_fixes_and_reads_them_back(make_run, sim_variant):
    run = make_run(
        [
            sim_variant("glibc", "glibc", glibc_like, cpu_ms_per_request=3.0),
            sim_variant("jemalloc", "jemalloc", releasing, cpu_ms_per_request=3.1),
        ],
        memory_limit_bytes=1 << 30,
        swaps_per_day=24,
    )
    result = analyse_run(run)
    summary_json.write(run, result)
    assert summary_json.read(run) == result.without_plot_data()
    written = json.loads((run / "summary.json").read_text())
    glibc, jemalloc = written["variants"]
    assert set(glibc["cpu"]) >= {
        "steady_ms_per_request",
        "steady_ms_per_request_spread",
        "swap_cpu_s",
    }
    assert len(glibc["cpu"]["steady_ms_per_request_spread"]) == 2
    assert glibc["pod_memory_mb"] >= glibc["memory"]["peak_mb"]
    assert glibc["comparison"] is None
    for figure in ("kept_mb", "cpu_ms_per_request", "steady_p99_ms", "swap_p99_ms"):
        assert set(jemalloc["comparison"][figure]) >= {"shift", "low", "high", "label"}
        assert jemalloc["comparison"][figure]["label"] in ("better", "same", "worse")
    assert jemalloc["production_change"].startswith("preload libjemalloc.so.2")
    assert written["comparison"]["reference"] == "glibc"
    assert jemalloc["projection"]["fits"] is True


def test_a_summary_from_before_the_fixes_reads_with_none(tmp_path):
    shutil.copy(DATA / "summary_before_fixes.json", tmp_path / "summary.json")
    result = summary_json.read(tmp_path)
    for v in result.variants:
        assert v.cpu.steady_ms_per_request is None and v.cpu.steady_ms_per_request_spread is None
        assert v.pod_memory is None and v.pod_memory_mb is None
        assert v.comparison is None and v.production_change is None
        assert all(s.cpu_s is None for s in v.swaps)
        assert v.projection.fits is None
    assert result.comparison.reference is None and result.comparison.ranking == ()
    again = summary_json.from_dict(summary_json.to_dict(result))
    assert again == result


# --- the history -------------------------------------------------------------------------------


def test_the_history_keeps_cpu_and_pod_memory_and_migrates_schema_2(
    make_run, sim_variant, tmp_path
):
    import sqlite3

    from soak.history import schema
    from soak.history import store as history

    run = make_run([sim_variant("glibc", "glibc", releasing, cpu_ms_per_request=3.0)])
    result = analyse_run(run)
    glibc = result.variant("glibc")

    old = tmp_path / "old.sqlite"
    v2_columns = [c for c in schema.VARIANT_COLUMNS if c not in schema.ADDED_VARIANT_COLUMNS[3]]
    run_columns = [c for c in schema.RUN_COLUMNS if c != "run_dir"]
    recorded = history.recorded_run(result, run)
    with sqlite3.connect(old) as con:  # a history of schema 2, one run in it
        con.execute(
            f"CREATE TABLE runs (id INTEGER PRIMARY KEY, run_dir TEXT NOT NULL UNIQUE, "
            f"{', '.join(run_columns)}, environment TEXT, recorded_t REAL NOT NULL)"
        )
        con.execute(
            f"CREATE TABLE variants (run_id INTEGER NOT NULL REFERENCES runs(id) "
            f"ON DELETE CASCADE, {', '.join(v2_columns)}, PRIMARY KEY (run_id, name))"
        )
        con.execute("PRAGMA user_version = 2")
        cursor = con.execute(
            f"INSERT INTO runs (run_dir, {', '.join(run_columns)}, environment, recorded_t) "
            f"VALUES (?, {', '.join('?' * len(run_columns))}, '{{}}', 0)",
            ["/elsewhere/run", *(getattr(recorded, c) for c in run_columns)],
        )
        con.execute(
            f"INSERT INTO variants (run_id, {', '.join(v2_columns)}) "
            f"VALUES (?, {', '.join('?' * len(v2_columns))})",
            [cursor.lastrowid, *(getattr(recorded.variants[0], c) for c in v2_columns)],
        )
    assert history.runs(old)[0].variants[0].cpu_ms_per_request is None  # read as it is
    history.record(old, result, run)  # a writer migrates it
    assert sqlite3.connect(old).execute("PRAGMA user_version").fetchone()[0] == 4
    both = {r.run_dir: r.variants[0] for r in history.runs(old)}
    assert both["/elsewhere/run"].pod_memory_mb is None
    new = both[str(run.resolve())]
    assert new.cpu_ms_per_request == glibc.cpu.steady_ms_per_request
    assert new.swap_cpu_s == glibc.cpu.swap_cpu_s and new.pod_memory_mb == glibc.pod_memory_mb
    from soak.report.terminal import history_table

    assert "CPU ms/req" in history_table(history.runs(old), old)


# --- the terminal table and the report -----------------------------------------------------------


def test_the_table_and_the_report_show_what_fixes_cost(make_run, sim_variant):
    from markupsafe import escape

    from soak.report.outputs import write_outputs
    from soak.report.terminal import COLUMNS, summary_table

    run = make_run(
        [
            sim_variant("glibc", "glibc", glibc_like, cpu_ms_per_request=3.0),
            sim_variant(
                "glibc-mmap",
                "glibc",
                releasing,
                cpu_ms_per_request=3.9,
                table={"env": {"MALLOC_MMAP_THRESHOLD_": "131072"}},
            ),
        ]
    )
    result = write_outputs(run)
    mmap = result.variant("glibc-mmap")
    table = summary_table(result)
    header = table.splitlines()[0]
    assert "CPU ms/req" in header and "pod MiB" in header and len(COLUMNS) == 14
    row = next(line for line in table.splitlines() if line.startswith("glibc-mmap "))
    assert "3.90" in row and f"{mmap.pod_memory_mb:.0f}" in row
    assert "glibc-mmap: vs glibc: kept memory -" in table and "] better" in table
    assert "CPU per request +0.90 ms [+0.90, +0.90] worse" in table
    assert "recommendation: use glibc-mmap: it gives back memory that glibc keeps" in table
    assert "  1. glibc-mmap: keeps " in table and "CPU per request +30 % (±0), worse" in table

    page = (run / "report.html").read_text(encoding="utf-8")
    assert "<h2>What fixes it and what it costs</h2>" in page
    assert "ENV MALLOC_MMAP_THRESHOLD_=131072" in page
    assert "<span class=c-better>better</span>" in page and "the reference" in page
    assert "<span class=c-worse>worse</span>" in page
    for line in result.comparison.recommendation.splitlines():
        assert str(escape(line)) in page
    # the kept-vs-CPU plot: settled per swap, memory x2, windows, latency x2, and it
    assert page.count('<img alt="" src="data:image/svg+xml;base64,') == 7


# --- a real run with the server's CPU ------------------------------------------------------------

# Recorded by `soak run` (stand-in, process backend, the 128 MiB demo model, 8 swaps, 20 rps)
# with two identical glibc variants and jemalloc; server.log, the report and summary.json
# left out.


def test_real_identical_variants_compare_the_same_and_cost_what_they_cost(tmp_path):
    run = Path(shutil.copytree(REAL_RUNS / "identical-glibc-cpu", tmp_path / "run"))
    result = analyse_run(run)
    a, b, jemalloc = result.variants
    assert (a.name, b.name, jemalloc.name) == ("glibc-a", "glibc-b", "jemalloc")
    for v in result.variants:
        assert v.cpu.windows == 8 and v.cpu.swaps == 8
        assert 1.0 < v.cpu.steady_ms_per_request < 10.0
        low, high = v.cpu.steady_ms_per_request_spread
        assert low <= v.cpu.steady_ms_per_request <= high
        assert 0.1 < v.cpu.swap_cpu_s < 10.0
        with open(run / v.name / "memory.csv", newline="") as f:
            peak = max(int(row["rss_bytes"]) for row in csv.DictReader(f)) / MIB
        assert v.pod_memory_mb >= peak
    assert {b.comparison.figure(f).label for f in VariantComparison.FIGURES} == {"same"}
    assert jemalloc.comparison.kept_mb.label == "better"
    assert result.comparison.ranking == ("jemalloc",)
    assert result.comparison.recommendation.splitlines()[1].startswith(
        "jemalloc: keeps 86 MiB less than glibc-a (released); CPU per request +17 %"
    )
    summary_json.write(run, result)
    assert summary_json.read(run) == result.without_plot_data()
