"""The pytest plugin's assertions on analysed simulated runs: each about its own figures."""

import re

import pytest

from soak.analysis import summary_json
from soak.analysis.analyse import analyse_run
from soak.plugin.result import SoakResult


def leaking(k):
    return 8.0 * k


def releasing(k):
    return 0.2 if k else 0.0


def failure(assertion, **limits) -> list[str]:
    """The lines of the failure that `assertion(**limits)` raises."""
    with pytest.raises(pytest.fail.Exception) as raised:
        assertion(**limits)
    return str(raised.value).splitlines()


@pytest.fixture
def leak(make_run, sim_variant):
    """A run whose one variant leaks 8 MiB per swap, with fast, error-free requests."""
    run = make_run([sim_variant("glibc", "glibc", leaking)])
    return SoakResult(run, analyse_run(run))


def test_assert_latency_does_not_fail_on_a_memory_leak(leak):
    assert leak.variant("glibc").memory.verdict.verdict == "leak"
    leak.assert_latency()  # no limits: nothing about memory to fail on
    leak.assert_latency(max_swap_p99_ms=1000, max_errors=0)
    lines = failure(leak.assert_latency, max_swap_p99_ms=1)
    assert len(lines) == 1
    assert lines[0].startswith("glibc: swap_p99_ms ")
    assert lines[0].endswith(f" > --max-swap-p99-ms 1 ms in {leak.run_dir}")


def test_assert_released_reports_a_leak_once(leak):
    lines = failure(leak.assert_released)
    assert len(lines) == 1
    assert lines[0].startswith("glibc: verdict leak (keeps 8.0 MiB more per swap")
    assert lines[0].endswith(f"in {leak.run_dir}")
    # a crossed limit is a line of its own, the leak still one
    lines = failure(leak.assert_released, max_retained_mb_per_swap=2)
    assert len(lines) == 2
    assert lines[0].startswith("glibc: verdict leak")
    slope = re.match(
        r"glibc: retained_mb_per_swap ([0-9.]+) MiB > --max-retained-mb-per-swap 2 MiB", lines[1]
    )
    assert float(slope.group(1)) == pytest.approx(8.0, abs=0.1)


def test_assert_released_does_not_fail_on_latency(make_run, sim_variant):
    run = make_run([sim_variant("jemalloc", "jemalloc", releasing, error_statuses=[0, 503])])
    result = SoakResult(run, analyse_run(run))
    result.assert_released(max_retained_mb_per_swap=1, max_retained_mb=1)
    assert failure(result.assert_latency, max_errors=0) == [
        f"jemalloc: errors 16 > --max-errors 0 in {run}"
    ]


def test_a_failed_variant_is_one_line_in_either_assertion(make_run, sim_variant):
    run = make_run(
        [
            sim_variant("glibc", "glibc", releasing),
            sim_variant(
                "tcmalloc", "tcmalloc", releasing, status="failed", reason="allocator not loaded"
            ),
        ]
    )
    result = SoakResult(run, analyse_run(run))
    expected = [f"tcmalloc: variant failed (allocator not loaded) in {run}"]
    assert failure(result.assert_released) == expected
    assert failure(result.assert_latency) == expected
    result.assert_released(variant="glibc")


def test_result_of_an_earlier_run_from_its_summary_json(make_run, sim_variant):
    run = make_run([sim_variant("glibc", "glibc", leaking)])
    summary_json.write(run, analyse_run(run))
    result = SoakResult.from_run_dir(run)
    assert result.variant("glibc").memory.retained_mb_per_swap == pytest.approx(8.0, abs=0.1)
    result.assert_latency()
    assert len(failure(result.assert_released)) == 1
