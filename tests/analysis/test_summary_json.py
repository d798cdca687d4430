"""summary.json <-> RunResult: the same figures as before the typed result, and read back.

data/summary_*.json were written by the analysis as it was before the typed
result (main at 894716f, `analyse_run` returning the summary dict) on the run
directories that CASES simulate, with "run_dir" replaced by "RUN_DIR". The
writer must lay out the same dict, key for key and figure for figure. When a
change of the analysis is meant to change figures (e.g. the verdict rules),
rewrite them with SOAK_REWRITE_SUMMARY_FIXTURES=1 and review the diff.
"""

import json
import os
from pathlib import Path

import pytest

from soak.analysis import summary_json
from soak.analysis.analyse import analyse_run
from soak.analysis.result import SCHEMA

DATA = Path(__file__).parent / "data"
REWRITE = os.environ.get("SOAK_REWRITE_SUMMARY_FIXTURES") == "1"


def leaking(mb):
    return lambda k: mb * k


def releasing(k):
    return 0.2 if k else 0.0


def plateau(k):
    return 6.0 * min(k, 3)


def cases(sim):
    """name -> (variants, run.toml settings); the same as when the fixtures were written."""
    return {
        "two_variants": (
            [
                sim("glibc", "glibc", leaking(8.0), rps=50.0),
                sim(
                    "jemalloc",
                    "jemalloc",
                    releasing,
                    error_statuses=[0, 503],
                    swap_ms=20.0,
                    rps=50.0,
                ),
            ],
            {"memory_limit_bytes": 2 << 30, "swaps_per_day": 24},
        ),
        "docker_cgroup": (
            [
                sim("glibc", "glibc", leaking(8.0), cgroup=True),
                sim("jemalloc", "jemalloc", plateau, cgroup=True),
            ],
            {"backend": "docker", "memory_limit_bytes": 1 << 30, "swaps_per_day": 48},
        ),
        "killed_and_failed": (
            [
                sim("glibc", "glibc", leaking(8.0), kill_at_s=100.0),
                sim(
                    "tcmalloc",
                    "tcmalloc",
                    releasing,
                    status="failed",
                    reason="libtcmalloc_minimal.so.4 not in the server's memory maps",
                ),
                sim(
                    "mimalloc",
                    "mimalloc",
                    leaking(3.0),
                    die_in_swap=6,
                    status="failed",
                    reason="server exited: exit code -9",
                ),
            ],
            {},
        ),
        "before_baseline": ([sim("glibc", "glibc", leaking(8.0), kill_at_s=5.0)], {}),
    }


CASE_NAMES = ["two_variants", "docker_cgroup", "killed_and_failed", "before_baseline"]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_summary_json_has_the_figures_it_had_before(name, make_run, sim_variant):
    sims, settings = cases(sim_variant)[name]
    run = make_run(sims, **settings)
    summary_json.write(run, analyse_run(run))
    written = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert written["run_dir"] == str(run)
    written["run_dir"] = "RUN_DIR"
    fixture = DATA / f"summary_{name}.json"
    if REWRITE:
        fixture.write_text(json.dumps(written, indent=2) + "\n", encoding="utf-8")
    expected = json.loads(fixture.read_text(encoding="utf-8"))
    assert written == expected
    assert json.dumps(written) == json.dumps(expected)  # the same key order too


@pytest.mark.parametrize("name", CASE_NAMES)
def test_summary_json_reads_back_into_the_same_result(name, make_run, sim_variant):
    sims, settings = cases(sim_variant)[name]
    run = make_run(sims, **settings)
    result = analyse_run(run)
    summary_json.write(run, result)
    assert summary_json.read(run) == result.without_plot_data()
    assert all(v.timeline is not None for v in result.variants)


def test_a_summary_of_an_earlier_version_reads_with_defaults(tmp_path):
    """Only the keys docs/contract.md#summaryjson lists (what the first versions wrote): the rest
    is None/default."""
    old = {
        "schema": SCHEMA,
        "status": "completed",
        "backend": "process",
        "model": {"name": "ranker", "size_bytes": 200 << 20},
        "variants": [
            {
                "name": "glibc",
                "allocator": "glibc",
                "allocator_verified": True,
                "status": "completed",
                "swaps_completed": 1,
                "memory": {
                    "metric": "anon_bytes",
                    "baseline_mb": 300.0,
                    "peak_mb": 340.0,
                    "final_mb": 308.0,
                    "retained_mb": 8.0,
                    "retained_mb_per_swap": 8.0,
                    "verdict": "leak",
                },
                "latency": {
                    "steady_p50_ms": 5.0,
                    "steady_p99_ms": 6.0,
                    "swap_p99_ms": 30.0,
                    "max_ms": 40.0,
                    "errors": 0,
                    "first_after_swap_ms": 120.0,
                },
                "swaps": [
                    {
                        "index": 1,
                        "version": 2,
                        "load_s": 3.0,
                        "settle_s": 4.5,
                        "settled_mb": 308.0,
                        "peak_mb": 340.0,
                        "retained_mb": 8.0,
                    }
                ],
            }
        ],
    }
    (tmp_path / "summary.json").write_text(json.dumps(old), encoding="utf-8")
    result = summary_json.read(tmp_path)
    assert (result.metric, result.warmup_swaps, result.swaps_planned) == ("anon_bytes", 2, None)
    assert result.threshold_mb == 2.0  # max(1 MiB, 1 % of the model)
    glibc = result.variant("glibc")
    assert glibc.memory.retained_mb_per_swap == 8.0
    assert glibc.memory.verdict.verdict == "leak"
    assert glibc.memory.verdict.reason == ""
    assert glibc.memory.threshold_mb == 2.0
    assert glibc.latency.swap_p50_ms is None and glibc.latency.requests == 0
    assert glibc.latency.protocol == "rest"  # before --protocol, requests went over REST
    swap = glibc.swaps[0]
    assert swap.completed and swap.p99_ms is None and swap.errors == 0
    assert glibc.projection is None and glibc.timeline is None
    assert result.comparison.recommendation == ""
    assert summary_json.to_dict(result)["variants"][0]["memory"]["verdict"] == "leak"
    assert result.max_swaps is None and result.comparison.control is None
    assert glibc.memory.verdict.kept is None and glibc.swaps_done is None
    # a run of `--swaps auto` records no planned count (early auto runs wrote "auto")
    (tmp_path / "summary.json").write_text(
        json.dumps(old | {"swaps_planned": "auto", "max_swaps": 30}), encoding="utf-8"
    )
    auto = summary_json.read(tmp_path)
    assert (auto.swaps_planned, auto.max_swaps) == (None, 30)


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[]", '{"schema": "other/1"}', '{"schema": "soak.summary/1", "variants": 3}'],
)
def test_what_is_not_a_summary(tmp_path, text):
    (tmp_path / "summary.json").write_text(text, encoding="utf-8")
    with pytest.raises(summary_json.NotASummary):
        summary_json.read(tmp_path)


def test_the_latency_figures_say_which_protocol(make_run, sim_variant):
    sims, _ = cases(sim_variant)["two_variants"]
    run = make_run(sims, protocol="grpc")
    summary_json.write(run, analyse_run(run))
    written = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert {v["latency"]["protocol"] for v in written["variants"]} == {"grpc"}
    assert summary_json.read(run).variants[0].latency.protocol == "grpc"
