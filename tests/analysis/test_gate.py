"""`soak check`: gate lines and exit codes on simulated runs."""

import argparse
import re
from pathlib import Path

import pytest

from soak.analysis import summary_json
from soak.analysis.analyse import analyse_run
from soak.analysis.load import load_result
from soak.core.errors import EXIT_GATE_FAILED, EXIT_OK, UsageError
from soak.gate.check import Limits, add_check_arguments, check, run_check


def leaking(mb):
    return lambda k: mb * k


def releasing(k):
    return 0.2 if k else 0.0


def figure(line: str, prefix: str) -> float:
    """The number after `prefix` (a regex) at the start of a gate line."""
    return float(re.match(prefix + r" ([-0-9.]+)", line).group(1))


def soak_check(*argv) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)  # as soak/cli.py does
    add_check_arguments(parser)
    return run_check(parser.parse_args([str(a) for a in argv]))


@pytest.fixture
def two_variants(make_run, sim_variant):
    run = make_run(
        [
            sim_variant("glibc", "glibc", leaking(8.0), rps=50.0),
            sim_variant(
                "jemalloc", "jemalloc", releasing, error_statuses=[0, 503], swap_ms=20.0, rps=50.0
            ),
        ]
    )
    summary_json.write(run, analyse_run(run))
    return run


def test_limits_within_exit_0(two_variants, capsys):
    code = soak_check(
        two_variants,
        "--max-retained-mb-per-swap",
        9,
        "--max-retained-mb",
        70,
        "--max-swap-p99-ms",
        100,
        "--max-errors",
        20,
    )
    assert code == EXIT_OK
    assert capsys.readouterr().out.startswith("soak check: within limits (glibc, jemalloc)")


def test_each_crossed_limit_is_one_line(two_variants, capsys):
    code = soak_check(
        two_variants, "--max-retained-mb-per-swap", 2, "--max-swap-p99-ms", 25, "--max-errors", 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert code == EXIT_GATE_FAILED
    assert len(lines) == 3
    slope, p99, errors = lines
    assert figure(slope, "glibc: retained_mb_per_swap") == pytest.approx(8.0, abs=0.1)
    assert " MiB > --max-retained-mb-per-swap 2 MiB" in slope
    assert figure(p99, "glibc: swap_p99_ms") == pytest.approx(31.3, abs=0.6)
    assert " ms > --max-swap-p99-ms 25 ms" in p99
    assert errors.startswith("jemalloc: errors 16 > --max-errors 0")
    assert all(line.endswith(f"in {two_variants}") for line in lines)


def test_variant_option_checks_only_that_variant(two_variants, capsys):
    assert soak_check(two_variants, "--variant", "jemalloc", "--max-retained-mb-per-swap", 2) == 0
    with pytest.raises(UsageError, match=r"no variant 'tcmalloc'.*glibc, jemalloc"):
        soak_check(two_variants, "--variant", "tcmalloc")


def test_no_limits_fails_memory_never_given_back(two_variants, make_run, sim_variant, capsys):
    assert soak_check(two_variants) == EXIT_GATE_FAILED
    assert capsys.readouterr().out.startswith("glibc: verdict leak (keeps 8.0 MiB more per swap")
    assert soak_check(two_variants, "--variant", "jemalloc") == EXIT_OK
    capsys.readouterr()
    # kept memory that stopped growing (glibc's arenas) is flagged just the same
    run = make_run([sim_variant("glibc", "glibc", lambda k: 60.0 * min(k, 2))])
    assert soak_check(run) == EXIT_GATE_FAILED
    out = capsys.readouterr().out
    assert out.startswith("glibc: verdict plateau (keeps +120.")
    assert out.count("\n") == 1


def test_no_limits_fails_an_undecided_verdict_unless_allowed(make_run, sim_variant, capsys):
    run = make_run([sim_variant("glibc", "glibc", releasing, swaps=3)])  # 1 swap after warmup
    assert soak_check(run) == EXIT_GATE_FAILED
    out = capsys.readouterr().out
    assert out.startswith("glibc: verdict inconclusive (only 1 swap after the 2 warmup swaps")
    assert "--allow-inconclusive passes it" in out
    assert soak_check(run, "--allow-inconclusive") == EXIT_OK


def test_unmeasured_figure_fails_closed(make_run, sim_variant):
    run = make_run([sim_variant("glibc", "glibc", releasing, swaps=3)])  # 1 swap after warmup
    lines = check(analyse_run(run), Limits(maxima={"max_retained_mb_per_swap": 2.0}))
    assert len(lines) == 1
    assert lines[0].startswith("glibc: retained_mb_per_swap unknown (verdict inconclusive: only 1 ")
    assert "--max-retained-mb-per-swap 2 cannot be checked" in lines[0]


def test_failed_variant_crosses_the_gate(make_run, sim_variant):
    run = make_run(
        [
            sim_variant(
                "tcmalloc", "tcmalloc", releasing, status="failed", reason="allocator not loaded"
            )
        ]
    )
    lines = check(analyse_run(run), Limits(maxima={"max_errors": 100}))
    assert lines == [f"tcmalloc: variant failed (allocator not loaded) in {run}"]
    renamed = check(analyse_run(run), Limits(), run_dir="runs/nightly")  # as the caller names it
    assert renamed == ["tcmalloc: variant failed (allocator not loaded) in runs/nightly"]


def test_regression_against_a_baseline_run(make_run, sim_variant, capsys):
    before = make_run([sim_variant("glibc", "glibc", leaking(2.0))])
    after = make_run([sim_variant("glibc", "glibc", leaking(8.0))])
    assert soak_check(after, "--baseline", before, "--max-regression", 10) == EXIT_GATE_FAILED
    lines = capsys.readouterr().out.splitlines()
    assert figure(lines[0], "glibc: retained_mb_per_swap") == pytest.approx(8.0, abs=0.1)
    assert figure(lines[0], ".* regressed from") == pytest.approx(2.0, abs=0.1)
    assert " MiB allowed (the largest of 10 % of it 0.2, floor 1, noise 3 x " in lines[0]
    assert lines[0].endswith(f" in {after} vs the baseline run {before}")
    assert any(line.startswith("glibc: retained_mb ") for line in lines)
    assert not any("p99" in line for line in lines)  # same latency: no regression there
    assert soak_check(before, "--baseline", before) == EXIT_OK  # itself: nothing worse
    assert soak_check(after, "--baseline", before, "--max-regression", 1000) == EXIT_OK


def test_bad_gate_usage(two_variants, make_run, sim_variant):
    with pytest.raises(UsageError, match="--max-regression needs --baseline"):
        soak_check(two_variants, "--max-regression", 5)
    with pytest.raises(UsageError, match="must be >= 0"):
        soak_check(two_variants, "--max-errors", -1)
    other = make_run([sim_variant("mimalloc", "mimalloc", releasing)])
    with pytest.raises(UsageError, match="no variant of .* is in the baseline run"):
        soak_check(two_variants, "--baseline", other)
    with pytest.raises(UsageError, match="not a directory"):
        soak_check(two_variants.parent / "nope")


def test_check_analyses_a_run_without_summary(make_run, sim_variant):
    run = make_run([sim_variant("glibc", "glibc", leaking(8.0), kill_at_s=85.0)])
    result = load_result(run)
    assert not (run / "summary.json").exists()  # a check only reads
    assert result.variants[0].swaps_completed == 6
    assert result.run_dir == str(run)
