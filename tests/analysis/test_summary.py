"""analyse_run (and summary.json written from it) on simulated run directories (conftest.py)."""

import json
import math
import tomllib

import pytest
import tomli_w

from soak.analysis import summary_json
from soak.analysis.analyse import analyse_run
from soak.analysis.numeric_csv import read_csv_frame
from soak.core.errors import UsageError
from soak.store.records import MemorySample, columns

MODEL_MB = 40.0  # the simulator's model size: a load adds this much


def leaking(mb):
    return lambda k: mb * k


def releasing(k):
    return 0.2 if k else 0.0


def by_name(result):
    return {v.name: v for v in result.variants}


def write_summary(run):
    """What `soak report` writes: summary.json from one analysis (returned as its dict)."""
    summary_json.write(run, analyse_run(run))
    return json.loads((run / "summary.json").read_text())


def all_floats(value):
    if isinstance(value, dict):
        return [f for v in value.values() for f in all_floats(v)]
    if isinstance(value, list):
        return [f for v in value for f in all_floats(v)]
    return [value] if isinstance(value, float) else []


def test_completed_run_has_the_spec_summary(make_run, sim_variant, assert_contract_summary):
    run = make_run(
        [
            # 50 requests/s: the 8 slow first requests after swaps stay under 1 % of swap windows
            sim_variant("glibc", "glibc", leaking(8.0), rps=50.0),
            sim_variant(
                "jemalloc", "jemalloc", releasing, error_statuses=[0, 503], swap_ms=20.0, rps=50.0
            ),
        ]
    )
    summary = write_summary(run)

    assert summary["schema"] == "soak.summary/1"
    assert summary["status"] == "completed"
    assert summary["backend"] == "process"
    assert summary["model"] == {"name": "ranker", "size_bytes": int(MODEL_MB * 2**20)}
    assert summary["threshold_mb"] == 1.0  # max(1 MiB, 1 % of 40 MiB)
    assert all(math.isfinite(f) for f in all_floats(summary))
    assert_contract_summary(summary)
    for v in summary["variants"]:
        assert v["swaps_completed"] == 8
        assert [s["index"] for s in v["swaps"]] == list(range(1, 9))
        assert [s["version"] for s in v["swaps"]] == list(range(2, 10))
        assert all(s["load_s"] == pytest.approx(3.0) for s in v["swaps"])
        assert all(s["settle_s"] == pytest.approx(4.5) for s in v["swaps"])
        assert v["memory"]["baseline_mb"] == pytest.approx(300.0, abs=0.2)
        assert v["latency"]["steady_p50_ms"] == pytest.approx(5.3, abs=0.3)
        assert v["latency"]["first_after_swap_ms"] == pytest.approx(120.4, abs=0.5)

    glibc, jemalloc = summary["variants"]
    assert glibc["memory"]["verdict"] == "leak"
    assert glibc["memory"]["retained_mb_per_swap"] == pytest.approx(8.0, abs=0.1)
    assert glibc["memory"]["retained_mb"] == pytest.approx(64.0, abs=0.5)
    assert glibc["memory"]["final_mb"] == pytest.approx(364.0, abs=0.5)
    assert glibc["memory"]["verdict_reason"].startswith("keeps 8.0 MiB more per swap")
    third = glibc["swaps"][2]
    assert third["settled_mb"] == pytest.approx(324.0, abs=0.3)
    assert third["retained_mb"] == pytest.approx(24.0, abs=0.3)
    assert third["increment_mb"] == pytest.approx(8.0, abs=0.3)
    assert third["peak_mb"] == pytest.approx(316.0 + MODEL_MB, abs=0.5)  # before + the load
    assert third["rss_settled_mb"] == pytest.approx(third["settled_mb"] + 120.0, abs=0.01)
    assert glibc["latency"]["swap_p99_ms"] == pytest.approx(31.3, abs=0.6)
    assert glibc["latency"]["errors"] == 0

    assert jemalloc["memory"]["verdict"] == "released"
    assert jemalloc["memory"]["retained_mb"] == pytest.approx(0.2, abs=0.2)
    assert jemalloc["latency"]["errors"] == 16  # 2 per swap, all inside the swap windows
    assert jemalloc["latency"]["swap_errors"] == 16
    assert jemalloc["latency"]["swap_p99_ms"] == pytest.approx(21.3, abs=0.6)
    assert [s["errors"] for s in jemalloc["swaps"]] == [2] * 8

    assert summary["comparison"]["least_memory"] == "jemalloc"
    # 20 ms against 30 ms in the swap windows: inside the latency margin (50 %), no claim
    assert summary["comparison"]["least_latency"] is None
    assert summary["comparison"]["allocator_independent"] is False
    assert summary["comparison"]["recommendation"].startswith("use jemalloc")
    assert summary["comparison"]["reference"] == "glibc"
    assert summary["comparison"]["ranking"] == ["jemalloc"]
    assert glibc["comparison"] is None  # the reference
    versus = jemalloc["comparison"]
    assert versus["reference"] == "glibc"
    assert versus["kept_mb"]["label"] == "better" and versus["kept_mb"]["shift"] < -40
    assert versus["swap_p99_ms"]["label"] == "same"
    assert versus["cpu_ms_per_request"]["shift"] is None  # no cpu_s in memory.csv


def test_killed_run_truncated_csvs_and_a_swap_that_never_settled(make_run, sim_variant):
    run = make_run(
        [
            sim_variant("glibc", "glibc", leaking(8.0)),
            sim_variant("jemalloc", "jemalloc", releasing, kill_at_s=100.0),
        ]
    )
    for name in ("memory.csv", "latency.csv", "events.csv"):
        assert not (run / "jemalloc" / name).read_bytes().endswith(b"\n")  # cut mid-row
    assert "running" in (run / "jemalloc" / "variant.json").read_text()

    result = analyse_run(run)
    jemalloc = by_name(result)["jemalloc"]
    assert result.status == "interrupted"
    assert jemalloc.status == "interrupted"
    # Swaps settle at 18 s + 12 s * (k - 1): 7 before the kill at 100 s, the 8th was going.
    assert jemalloc.swaps_completed == 7
    last = jemalloc.swaps[-1]
    assert (last.index, last.completed, last.settled_mb, last.retained_mb) == (8, False, None, None)
    assert last.load_s == pytest.approx(3.0)
    assert last.settle_s is None
    assert jemalloc.memory.verdict.verdict == "released"  # 5 swaps after the warmup suffice
    assert jemalloc.memory.final_mb == pytest.approx(jemalloc.swaps[6].settled_mb)


def test_run_killed_before_the_baseline_settled(make_run, sim_variant):
    run = make_run([sim_variant("glibc", "glibc", leaking(8.0), kill_at_s=5.0)])
    glibc = by_name(analyse_run(run))["glibc"]
    assert glibc.swaps_completed == 0
    assert glibc.swaps == ()
    assert glibc.memory.verdict.verdict == "inconclusive"
    assert glibc.memory.verdict.reason.startswith("no baseline")
    assert glibc.memory.baseline_mb is None
    assert glibc.memory.retained_mb_per_swap is None
    assert glibc.latency.steady_p99_ms is None
    assert glibc.latency.requests == 0


def test_server_died_mid_run(make_run, sim_variant):
    run = make_run(
        [
            sim_variant(
                "glibc",
                "glibc",
                leaking(8.0),
                die_in_swap=6,
                status="failed",
                reason="server exited: exit code -9",
            )
        ]
    )
    result = analyse_run(run)
    glibc = by_name(result)["glibc"]
    assert result.status == "failed"
    assert glibc.swaps_completed == 5
    assert glibc.server_exit == "exit code -9"
    assert glibc.memory.verdict.verdict == "inconclusive"
    assert glibc.memory.verdict.reason.startswith("the run ended early: exit code -9")
    assert glibc.memory.retained_mb_per_swap == pytest.approx(8.0, abs=0.1)
    assert glibc.swaps[-1].completed is False


def test_variant_whose_allocator_did_not_load(make_run, sim_variant):
    run = make_run(
        [
            sim_variant("glibc", "glibc", releasing),
            sim_variant(
                "tcmalloc",
                "tcmalloc",
                releasing,
                status="failed",
                reason="libtcmalloc_minimal.so.4 not in the server's memory maps",
            ),
        ]
    )
    result = analyse_run(run)
    tcmalloc = by_name(result)["tcmalloc"]
    assert result.status == "failed"
    assert tcmalloc.allocator_verified is False
    assert tcmalloc.memory.verdict.verdict == "inconclusive"
    assert "not in the server's memory maps" in tcmalloc.memory.verdict.reason
    assert result.comparison.least_memory == "glibc"
    assert "no verdict for tcmalloc" in result.comparison.recommendation


def test_same_growth_under_every_allocator_is_not_the_allocators(make_run, sim_variant):
    run = make_run(
        [
            sim_variant("glibc", "glibc", leaking(8.0)),
            sim_variant("jemalloc", "jemalloc", leaking(8.4)),
        ]
    )
    comparison = analyse_run(run).comparison
    assert comparison.allocator_independent is True
    assert "changing allocator won't help" in comparison.recommendation


def test_projection_to_the_memory_limit_from_the_cgroup_working_set(make_run, sim_variant):
    run = make_run(
        [sim_variant("glibc", "glibc", leaking(8.0), cgroup=True)],
        backend="docker",
        memory_limit_bytes=1 << 30,
        swaps_per_day=48,
    )
    glibc = by_name(analyse_run(run))["glibc"]
    projection, pod = glibc.projection, glibc.pod_memory
    assert projection.basis == pod.basis == "cgroup_working_set_bytes"
    assert projection.limit_mb == 1024.0
    # The simulator's working set is 1.1 x anon; its peak is the last swap's: 1.1 x (300 +
    # 7 x 8 + the 40 MiB model loaded beside the old one) MiB.
    assert projection.current_mb == pod.peak_mb == pytest.approx(1.1 * 396.0, abs=1.0)
    # the growth's upper bound: the verdict's slope (retained heap counts one for one in
    # the working set) and a little noise
    assert pod.rate == "upper bound"
    assert glibc.memory.retained_mb_per_swap <= pod.mb_per_swap < 8.5
    assert pod.more_swaps == 30 - 8
    assert pod.mb == pytest.approx(pod.peak_mb + 22 * pod.mb_per_swap, abs=0.01)
    expected_swaps = (1024.0 - projection.current_mb) / pod.mb_per_swap
    assert projection.swaps_to_limit == pytest.approx(expected_swaps, abs=0.01)
    assert projection.days_to_limit == pytest.approx(expected_swaps / 48, abs=0.01)
    assert projection.fits is (pod.mb <= 1024.0)
    assert f"reaches 1024 MiB after about {expected_swaps:.0f} more swaps" in projection.note
    assert glibc.swaps[0].cgroup_anon_settled_mb == pytest.approx(
        1.02 * glibc.swaps[0].settled_mb, abs=0.01
    )


def test_every_verdict_is_projected_from_the_pod_memory(make_run, sim_variant):
    run = make_run([sim_variant("glibc", "glibc", leaking(8.0))])
    assert by_name(analyse_run(run))["glibc"].projection is None  # no limit given
    run = make_run(
        [sim_variant("glibc", "glibc", lambda k: 15.0 * min(k, 3))], memory_limit_bytes=1 << 30
    )
    glibc = by_name(analyse_run(run))["glibc"]
    assert glibc.memory.verdict.verdict == "plateau"
    assert glibc.memory.verdict.growth == "below"  # ruled out: the measured slope, ~0
    assert glibc.pod_memory.rate == "measured"
    assert glibc.pod_memory.mb == pytest.approx(glibc.pod_memory.peak_mb, abs=0.5)
    assert glibc.projection.fits is True
    assert glibc.projection.note.startswith("fits: needs")
    run = make_run([sim_variant("glibc", "glibc", leaking(8.0))], memory_limit_bytes=400 << 20)
    glibc = by_name(analyse_run(run))["glibc"]
    assert glibc.projection.fits is False  # the 8th swap peaked at 120 + 396 MiB of RSS
    assert glibc.projection.swaps_to_limit == 0.0
    assert glibc.projection.note.startswith("already at or above the limit")


def test_threshold_and_warmup_from_run_toml(make_run, sim_variant):
    run = make_run([sim_variant("glibc", "glibc", leaking(8.0))], threshold_mb=20.0, warmup_swaps=3)
    result = analyse_run(run)
    glibc = by_name(result)["glibc"]
    assert result.threshold_mb == 20.0
    assert glibc.memory.verdict.swaps_judged == (4, 5, 6, 7, 8)
    # 8 MiB per swap is under 20, and 64 MiB kept under the bound of 25 thresholds
    assert glibc.memory.verdict.verdict == "released"
    assert "under the 500.0 MiB bound" in glibc.memory.verdict.reason


def test_a_listed_variant_that_never_ran(make_run, sim_variant):
    run = make_run([sim_variant("glibc", "glibc", releasing)])
    config = tomllib.loads((run / "run.toml").read_text())
    config["variants"].append({"name": "mimalloc", "allocator": "mimalloc"})
    (run / "run.toml").write_text(tomli_w.dumps(config))
    result = analyse_run(run)
    assert [v.name for v in result.variants] == ["glibc", "mimalloc"]
    mimalloc = by_name(result)["mimalloc"]
    assert (mimalloc.status, mimalloc.reason, mimalloc.swaps_completed) == (
        "interrupted",
        "did not run",
        0,
    )
    assert result.status == "interrupted"


def test_not_a_run_directory(tmp_path):
    with pytest.raises(UsageError, match="not a directory"):
        analyse_run(tmp_path / "missing")
    with pytest.raises(UsageError, match="not a soak run directory"):
        analyse_run(tmp_path)
    (tmp_path / "run.toml").write_text("swaps = [unclosed\n")
    with pytest.raises(UsageError, match="run.toml"):
        analyse_run(tmp_path)


def test_csv_reader_drops_half_rows_and_garbage(tmp_path):
    path = tmp_path / "memory.csv"
    path.write_text(
        "t,rss_bytes,anon_bytes,swap\n"
        "1.0,100,50,0\n"
        "2.0,oops,50,0\n"
        "1.5,110,55,0\n"
        "3.0,12",  # cut off by a kill
        encoding="utf-8",
    )
    frame = read_csv_frame(path, columns(MemorySample))
    assert frame["t"].tolist() == [1.0, 1.5]  # sorted by time
    assert frame["anon_bytes"].tolist() == [50, 55]
    assert frame["cgroup_anon_bytes"].isna().all()
    assert read_csv_frame(tmp_path / "absent.csv", columns(MemorySample)).empty


def test_memory_csv_without_times_is_reported_not_guessed(make_run, sim_variant):
    run = make_run([sim_variant("glibc", "glibc", leaking(8.0))])
    memory = run / "glibc" / "memory.csv"
    rows = [line.split(",", 1)[1] for line in memory.read_text().splitlines()]
    memory.write_text("\n".join(rows) + "\n")  # header rss_bytes,anon_bytes,swap
    glibc = by_name(analyse_run(run))["glibc"]
    assert glibc.memory.verdict.verdict == "inconclusive"
    assert "without a t column" in glibc.memory.verdict.reason
    assert glibc.latency.steady_p99_ms is not None  # the other files still count
