"""Verdicts proven on real runs: a planted leak is a leak, a clean jemalloc run is released.

The stand-in's --debug_retain_mb_per_load=16 keeps 16 MiB of written heap per
load forever. Both runs use jemalloc with its background purge thread and a 1 s
decay, so freed pages go back to the OS within the settle window (default
jemalloc purges lazily, and a small test model then wanders by several MiB
from swap to swap), and the same 4 MiB-per-swap threshold, so the gate sees
both sides of it.
"""

import csv
import json
import subprocess
import sys
import time

import pytest
import tomli_w

from soak.plugin.result import SoakResult

PLANTED_MB = 16
JEMALLOC_PROMPT_PURGE = {
    "name": "jemalloc",
    "allocator": "jemalloc",
    "env": {"MALLOC_CONF": "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0"},
}
# settle_window 2 s (default 5 s): with the 1 s decay, memory has settled 3 s after a swap
SETTINGS = {
    "swaps": 8,
    "rps": 10,
    "steady_s": 1,
    "threshold_mb": 4,
    "settle_window": 2,
    "quiet": True,
}
# The killed run: jemalloc-bg is the prompt purge above; stopped after 3 settled events,
# without a verdict, so a 2 s settle window.
KILLED = ["--allocators", "jemalloc-bg", "--swaps", "8", "--rps", "10", "--steady", "1"]
KILLED += ["--settle-window", "2", "--quiet"]


# the tests of the one planted-leak run: one scheduling unit, so it runs once
LEAK_RUN = pytest.mark.xdist_group("ground-truth-leak-run")


@pytest.fixture(scope="module")
def leak_run(small_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("leak")
    config = tmp / "soak.toml"
    leaking = {**JEMALLOC_PROMPT_PURGE, "server_args": [f"--debug_retain_mb_per_load={PLANTED_MB}"]}
    config.write_text(tomli_w.dumps({"model": str(small_model), **SETTINGS, "variants": [leaking]}))
    result = subprocess.run(
        [sys.executable, "-m", "soak", "run", "--config", str(config), "--out", str(tmp / "run")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    return tmp / "run"


@pytest.mark.slow
@LEAK_RUN
def test_planted_leak_is_a_leak_with_its_slope(leak_run):
    variant = json.loads((leak_run / "summary.json").read_text())["variants"][0]
    memory = variant["memory"]
    assert memory["verdict"] == "leak", memory
    assert memory["retained_mb_per_swap"] == pytest.approx(PLANTED_MB, abs=4)
    assert memory["retained_mb"] > 6 * PLANTED_MB


@pytest.mark.slow
@LEAK_RUN
def test_planted_leak_is_live_growth_in_jemallocs_allocated_bytes(leak_run):
    """The probe's stats.allocated grows by the planted 16 MiB per load, swap by swap."""
    with open(leak_run / "jemalloc" / "breakdown.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["point"] in ("baseline", "settled")]
    allocated = [int(r["in_use_bytes"]) for r in rows]
    steps = [(b - a) / 2**20 for a, b in zip(allocated, allocated[1:], strict=False)]
    assert len(steps) == 8 and all(abs(s - PLANTED_MB) <= 0.1 * PLANTED_MB for s in steps), steps
    variant = json.loads((leak_run / "summary.json").read_text())["variants"][0]
    attribution = variant["attribution"]
    assert attribution["probe"] == "on" and attribution["allocator"] == "jemalloc"
    assert attribution["live_mb_per_swap"] == pytest.approx(PLANTED_MB, rel=0.1)


@pytest.mark.slow
@LEAK_RUN
def test_gate_fails_the_leak_with_one_line_per_limit(leak_run, soak_cli):
    result = soak_cli(
        "check", str(leak_run), "--max-retained-mb-per-swap", "4", "--max-retained-mb", "50"
    )
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and all("jemalloc" in line for line in lines), result.stdout
    assert soak_cli("check", str(leak_run), "--max-retained-mb-per-swap", "40").returncode == 0


@pytest.mark.slow
@LEAK_RUN
def test_plugin_assertion_names_variant_figure_limit_and_run_dir(leak_run):
    result = SoakResult.from_run_dir(leak_run)
    with pytest.raises(pytest.fail.Exception) as failure:
        result.assert_released(max_retained_mb_per_swap=4)
    message = str(failure.value)
    assert "jemalloc" in message and "4" in message and str(leak_run) in message


@pytest.mark.slow
def test_clean_jemalloc_run_is_released_through_the_pytest_gate(small_model, soak_run, soak_cli):
    result = soak_run(model=str(small_model), variants=[JEMALLOC_PROMPT_PURGE], **SETTINGS)
    memory = result.variant("jemalloc").memory
    assert memory.verdict.verdict == "released", memory
    result.assert_released(max_retained_mb_per_swap=4)
    result.assert_latency(max_errors=0)
    assert soak_cli("check", str(result.run_dir), "--max-retained-mb-per-swap", "4").returncode == 0


@pytest.mark.slow
def test_swaps_auto_stops_a_clean_run_once_it_is_decided(small_model, soak_run):
    settings = {**SETTINGS, "swaps": "auto", "max_swaps": 14}
    result = soak_run(model=str(small_model), variants=[JEMALLOC_PROMPT_PURGE], **settings)
    jemalloc = result.variant("jemalloc")
    assert jemalloc.memory.verdict.verdict == "released", jemalloc.memory.verdict.reason
    assert jemalloc.memory.verdict.growth == "below"  # ruled out, not merely within the noise
    assert 6 <= jemalloc.swaps_completed < 14
    done = jemalloc.swaps_completed
    assert jemalloc.swaps_done == f"decided after {done} swaps: released on its own"
    assert (result.result.swaps_planned, result.result.max_swaps) == (None, 14)


@pytest.mark.slow
def test_report_of_a_killed_run_shows_what_was_measured(
    small_model, tmp_path, soak_cli, background_run, processes_mentioning
):
    out = tmp_path / "run"
    run = background_run(out, "--model", str(small_model), *KILLED)
    run.wait_settled("jemalloc-bg", 3)
    run.proc.kill()  # no cleanup, no summary: a crash
    run.proc.wait(timeout=30)
    time.sleep(1)
    assert processes_mentioning(str(out)) == []  # the server died with soak
    assert not (out / "summary.json").exists()

    result = soak_cli("report", str(out))
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    variant = summary["variants"][0]
    assert summary["status"] == "interrupted" and variant["status"] == "interrupted"
    assert variant["swaps_completed"] >= 2 and variant["memory"]["baseline_mb"] > 0
    assert (out / "report.html").stat().st_size > 10_000
