"""The pytest plugin as a user's project sees it (pytester): options, marker, skipping,
kept run dirs, the session summary, and the assertions on a run's figures.

The runs are simulated (the simulator of conftest.py writes the run dir that
`soak run` would), except one tiny real run with a planted leak.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import soak.cli.runner
from soak.cli.runner import conclude
from soak.driver.demo_model import write_demo_model

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestAssertRewriteWarning")

USER_TESTS = """
def test_hot_reload_releases_memory(soak_run):
    result = soak_run(allocators=["jemalloc"], swaps=8)
    result.assert_released(max_retained_mb_per_swap=2)
    result.assert_latency(max_swap_p99_ms=200)


def test_planted_leak(soak_run):
    result = soak_run(
        allocators=["jemalloc"], swaps=8, server_args=["--debug_retain_mb_per_load=16"]
    )
    result.assert_released(max_retained_mb_per_swap=2)


def test_quick():
    assert True
"""


def leaking(k):
    return 16.0 * k


def releasing(k):
    return 0.2 if k else 0.0


@pytest.fixture
def simulated(monkeypatch, make_run, sim_variant):
    """`soak run` replaced by the simulator: a planted leak leaks, anything else is clean.

    Returns the configs the user's tests ran with.
    """
    clean = make_run([sim_variant("jemalloc", "jemalloc", releasing)])
    leak = make_run([sim_variant("jemalloc", "jemalloc", leaking)])
    configs = []

    def run_soak(config, progress):
        configs.append(config)
        planted = any("debug_retain" in a for a in config.server_args)
        shutil.copytree(leak if planted else clean, config.out)
        return conclude(config, Path(config.out), [], False)

    monkeypatch.setattr(soak.cli.runner, "run_soak", run_soak)
    return configs


def test_a_plain_pytest_skips_soak_tests(pytester, simulated):
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest("-rs")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(["*a soak test: run it with --soak or -m soak*"])
    assert simulated == []
    assert "soak runs" not in result.stdout.str()


def test_soak_tests_run_when_asked(pytester, simulated):
    pytester.makepyfile(test_user=USER_TESTS)
    out = pytester.path / "soak-out"
    result = pytester.runpytest("--soak", f"--soak-out={out}")
    result.assert_outcomes(passed=2, failed=1)
    text = result.stdout.str()
    leak_dir = next(out.glob("test_planted_leak-*"))
    # the failure names variant, figure, limit and run dir, once per crossed limit
    result.stdout.fnmatch_lines(
        [
            f"*jemalloc: verdict leak (keeps 16.0 MiB more per swap* in {leak_dir}",
            f"*jemalloc: retained_mb_per_swap 16* MiB > --max-retained-mb-per-swap 2 MiB in "
            f"{leak_dir}",
        ]
    )
    assert "Traceback" not in text and "def test_planted_leak" not in text  # no pytrace
    # the failed test's run dir is kept and named; the passed test's is removed
    result.stdout.fnmatch_lines(["*soak run dirs (kept)*", str(leak_dir)])
    assert leak_dir.is_dir() and not list(out.glob("test_hot_reload_releases_memory-*"))
    # the summary at the end lists both runs and the history they went to
    result.stdout.fnmatch_lines(
        [
            "*= soak runs =*",
            "test_user.py::test_hot_reload_releases_memory: run completed: jemalloc released "
            "+0.* MiB: removed (passed)",
            f"test_user.py::test_planted_leak: run completed: jemalloc leak +128.* MiB: {leak_dir}",
            f"recorded in {out / 'history.sqlite'} (soak history {out / 'history.sqlite'})",
        ]
    )


def test_minus_m_soak_selects_them_and_minus_m_not_soak_leaves_them_out(pytester, simulated):
    pytester.makepyfile(test_user=USER_TESTS)
    pytester.runpytest("-m", "soak").assert_outcomes(passed=1, failed=1, deselected=1)
    pytester.runpytest("-m", "not soak").assert_outcomes(passed=1, deselected=2)


def test_options_reach_the_runs(pytester, simulated):
    pytester.makepyfile(test_user=USER_TESTS)
    out, db = pytester.path / "runs", pytester.path / "h" / "history.sqlite"
    result = pytester.runpytest(
        "--soak",
        "--soak-backend=docker",
        "--soak-image=my/serving:1",
        f"--soak-out={out}",
        f"--soak-history={db}",
        "--soak-keep",
        "-k",
        "releases",
    )
    result.assert_outcomes(passed=1, deselected=2)
    (config,) = simulated
    assert (config.backend, config.image, config.history) == ("docker", "my/serving:1", str(db))
    assert len(list(out.glob("test_hot_reload_releases_memory-*"))) == 1  # kept
    assert db.is_file()


def test_the_options_and_the_marker_are_documented(pytester):
    help_text = pytester.runpytest("--help").stdout.str()
    for option in ("--soak ", "--soak-backend", "--soak-image", "--soak-out", "--soak-keep"):
        assert option in help_text
    assert "--soak-history" in help_text
    pytester.runpytest("--markers").stdout.fnmatch_lines(["@pytest.mark.soak: a soak test*"])


def test_ini_soak_true_runs_them(pytester, simulated):
    pytester.makeini("[pytest]\nsoak = true\n")
    pytester.makepyfile(test_user=USER_TESTS)
    pytester.runpytest().assert_outcomes(passed=2, failed=1)


def test_assert_no_regression_against_the_history(pytester, simulated, history_db, monkeypatch):
    monkeypatch.setenv("SOAK_HISTORY", history_db.where)  # as a scheduler gives it
    pytester.makepyfile(
        test_user="""
import pytest

@pytest.mark.parametrize("night", range(3))
def test_nightly(soak_run, night):
    soak_run(allocators=["jemalloc"], swaps=8).assert_no_regression(against_history=5)


def test_leak_against_the_history(soak_run):
    result = soak_run(allocators=["jemalloc"], swaps=8,
                      server_args=["--debug_retain_mb_per_load=16"])
    result.assert_latency()  # latency is fine
    result.assert_no_regression(against_history=5)


def test_leak_against_a_baseline_run(soak_run):
    clean = soak_run(allocators=["jemalloc"], swaps=8)
    leak = soak_run(allocators=["jemalloc"], swaps=8,
                    server_args=["--debug_retain_mb_per_load=16"])
    clean.assert_no_regression(baseline=leak)
    leak.assert_no_regression(baseline=clean, max_regression_pct=50)
"""
    )
    result = pytester.runpytest("--soak")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*jemalloc: retained_mb_per_swap 16 MiB regressed from *: +16 MiB > * MiB allowed "
            "(the largest of 10 % of it *) in *test_leak_against_the_history-* vs the median "
            f"of the last 3 comparable runs in {history_db.shown}",
            "*jemalloc: retained_mb 128 MiB regressed from 0.3* MiB*",
            "*jemalloc: retained_mb_per_swap 16 MiB regressed from *(the largest of 50 % of it*"
            "vs the baseline run *test_leak_against_a_baseline_run-*",
        ]
    )


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built before `pytester` starts (a wider scope comes first): pytester drops the modules
    first imported during its test from sys.modules, and TensorFlow's cannot be imported
    twice in one process (a later test importing them again aborts)."""
    return write_demo_model(tmp_path_factory.mktemp("tiny") / "model", versions=2, size_mb=8)


REAL_USER_TESTS = """
def soak_tiny(soak_run, server_args):
    return soak_run(
        model={model!r},
        variants=[{{
            "name": "jemalloc",
            "allocator": "jemalloc",
            "env": {{"MALLOC_CONF": "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0"}},
            "server_args": server_args,
        }}],
        swaps=5, rps=10, steady_s=1, threshold_mb=4, settle_window=2,
    )


def test_clean_model_releases_memory(soak_run):
    result = soak_tiny(soak_run, [])
    result.assert_latency(max_errors=0)
    result.assert_released(max_retained_mb_per_swap=4)


def test_hot_reload_releases_memory(soak_run):
    result = soak_tiny(soak_run, ["--debug_retain_mb_per_load=16"])
    result.assert_latency(max_errors=0)
    result.assert_released(max_retained_mb_per_swap=4)
"""


@pytest.mark.slow
def test_real_runs_pass_a_clean_model_and_fail_a_planted_leak(pytester, tiny_model):
    """Two tiny real runs (8 MiB model, 5 swaps): the user's test passes on the clean model
    and fails on the planted leak, naming variant, figure, limit and run dir."""
    pytester.makepyfile(test_user=REAL_USER_TESTS.format(model=str(tiny_model)))
    out = pytester.path / "runs"
    # in a subprocess, as a user runs pytest (an in-process run would import TensorFlow's
    # modules inside pytester, which drops them afterwards; see tiny_model)
    result = pytester.runpytest_subprocess("--soak", f"--soak-out={out}")
    result.assert_outcomes(passed=1, failed=1)
    (run_dir,) = out.glob("test_hot_reload_releases_memory-*")
    result.stdout.fnmatch_lines(
        [
            # the probe inside the server sees the planted leak as live heap growth
            f"*jemalloc: verdict leak of live memory (keeps 1*.* MiB more per swap*; live heap "
            f"grows 1*.* MiB per swap (the allocator's in-use bytes)*) in {run_dir}",
            f"*jemalloc: retained_mb_per_swap 1*.* MiB > --max-retained-mb-per-swap 4 MiB in "
            f"{run_dir}",
            "*= soak runs =*",
            "test_user.py::test_clean_model_releases_memory: run completed: jemalloc released *"
            ": removed (passed)",
            "test_user.py::test_hot_reload_releases_memory: run completed: jemalloc leak of "
            f"live memory *"
            f"{run_dir}",
        ]
    )
    assert (run_dir / "summary.json").is_file() and (out / "history.sqlite").is_file()
    assert not list(out.glob("test_clean_model_releases_memory-*"))  # a passed run is removed
