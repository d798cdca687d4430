"""The verdict rules on synthetic settled-memory series with known answers, and on recorded runs;
when `--swaps auto` stops on them."""

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pytest

from soak.analysis.swap_budget import SwapBudget
from soak.analysis.verdict import (
    FLAGGED,
    INCONCLUSIVE,
    LEAK,
    PLATEAU,
    RELEASED,
    SettledSeries,
    classify,
    classify_run,
    swap_noise,
    theil_sen,
)

SWAPS = list(range(1, 13))  # 12 swaps, 2 of them warmup: 10 judged
T = 1.0  # threshold, MiB per swap; kept memory is judged against 25 * T


def verdict_of(series, **kwargs):
    return classify(SWAPS[: len(series)], list(series), T, **kwargs)


def test_theil_sen_recovers_a_line_and_ignores_an_outlier():
    x = np.arange(10.0)
    y = 3.0 * x + 2.0
    assert theil_sen(x, y) == pytest.approx((3.0, 2.0))
    y[4] += 500.0  # one wild swap
    assert theil_sen(x, y) == pytest.approx((3.0, 2.0))


def test_swap_noise_sees_scatter_but_not_a_trend_or_a_bend():
    assert swap_noise(5.0 * np.minimum(np.arange(12), 6)) == pytest.approx(0.0)
    rng = np.random.default_rng(7)
    assert swap_noise(rng.normal(0, 2.0, 400)) == pytest.approx(2.0, rel=0.2)


def test_flat_is_released():
    v = verdict_of([0.0] * 12)
    assert v.verdict == RELEASED
    assert v.mb_per_swap == pytest.approx(0.0)
    assert v.swaps_judged == tuple(range(3, 13))


def test_linear_growth_is_a_leak_with_its_slope():
    v = verdict_of([7.9 * k for k in SWAPS])
    assert v.verdict == LEAK
    assert v.mb_per_swap == pytest.approx(7.9)
    assert "keeps 7.9 MiB more per swap, still growing in swaps 8–12" in v.reason


def test_growth_then_plateau_is_a_plateau():
    v = verdict_of([5.0 * min(k, 6) for k in SWAPS])
    assert v.verdict == PLATEAU
    assert v.level_mb == pytest.approx(30.0)  # measured from the baseline
    assert "keeps +30.0 MiB over the baseline after 12 swaps, over the 25.0 MiB bound" in v.reason


def test_kept_memory_is_measured_from_the_baseline_not_after_the_warmup_swaps():
    # glibc keeps its memory from the first swaps on: that is the finding, not a one-time cost.
    assert verdict_of([20.0, 35.0] + [35.0] * 10).verdict == PLATEAU
    assert verdict_of([20.0, 35.0] + [35.0] * 10, warmup_swaps=0).verdict == PLATEAU
    assert verdict_of([5.0, 10.0] + [10.0] * 10).verdict == RELEASED  # under 25 MiB


def test_one_time_costs_every_variant_pays_are_not_kept_memory():
    # Both variants pay +20 MiB at the first swap; only "glibc" keeps +60 MiB more.
    jemalloc = [20.0] * 12
    glibc = [20.0, 50.0, 80.0] + [80.0] * 9
    both = classify_run(
        {"glibc": SettledSeries(SWAPS, glibc), "jemalloc": SettledSeries(SWAPS, jemalloc)}, 2.0
    )
    assert both["jemalloc"].verdict == RELEASED
    assert both["glibc"].verdict == PLATEAU
    assert both["glibc"].control == "jemalloc"
    assert both["glibc"].one_time_mb == pytest.approx(20.0)
    assert both["glibc"].kept_mb == pytest.approx(60.0)
    assert "20.0 MiB of it one-time costs that jemalloc, the control, keeps too" in (
        both["glibc"].reason
    )
    # Judged alone and with the control, the same data differs only where one-time
    # costs decide.
    near = [20.0] + [65.0] * 11
    alone = classify(SWAPS, near, 2.0)
    with_control = classify_run(
        {"a": SettledSeries(SWAPS, near), "b": SettledSeries(SWAPS, jemalloc)}, 2.0
    )["a"]
    assert alone.verdict == PLATEAU  # 65 > 50
    assert with_control.verdict == RELEASED  # 65 - 20 = 45 < 50


def test_no_control_when_no_variant_is_released():
    run = classify_run(
        {
            "a": SettledSeries(SWAPS, [60.0] * 12),
            "b": SettledSeries(SWAPS, [90.0] * 12),
        },
        1.0,
    )
    assert {v.verdict for v in run.values()} == {PLATEAU}
    assert all(v.control is None and v.one_time_mb == 0 for v in run.values())


def test_slightly_noisy_flat_is_released():
    rng = np.random.default_rng(3)
    assert verdict_of(rng.normal(0.0, 0.1, 12)).verdict == RELEASED


def test_noisy_flat_near_the_baseline_is_released_and_never_flagged():
    # Scatter 4x the threshold around the baseline: kept memory is clearly under the
    # bound, so the answer is released, growth or not within the noise.
    results = [verdict_of(np.random.default_rng(seed).normal(0.0, 4.0, 12)) for seed in range(200)]
    verdicts = Counter(v.verdict for v in results)
    assert verdicts[RELEASED] >= 190
    assert verdicts[PLATEAU] == 0
    assert verdicts[LEAK] <= 10  # the one-sided 95 % margin


def test_inconclusive_only_when_neither_question_is_answered_and_it_says_what_decides():
    # Wild swings around the bound: neither growth nor kept memory can be told.
    v = verdict_of([0.0, 60.0, 5.0, 55.0, 2.0, 50.0])
    assert v.verdict == INCONCLUSIVE
    assert v.growth == "unsure" and v.kept == "unsure"
    assert "too noisy to tell" in v.reason
    assert v.more_swaps is not None and v.more_swaps >= 1
    assert f"about {v.more_swaps} more swaps would decide" in v.reason


def test_noisy_leak_well_above_the_threshold_is_still_a_leak():
    verdicts = Counter(
        verdict_of(3.0 * np.array(SWAPS) + np.random.default_rng(seed).normal(0, 1.0, 12)).verdict
        for seed in range(100)
    )
    assert verdicts[LEAK] == 100


def test_a_leak_that_starts_late_is_a_leak():
    v = verdict_of([0.0] * 8 + [2.0, 4.0, 6.0, 8.0])  # overall slope 0.8, below T
    assert v.verdict == LEAK
    assert "started growing late" in v.reason


def test_slope_just_above_threshold_without_noise_is_judged():
    assert verdict_of([1.2 * k for k in SWAPS]).verdict == LEAK
    assert verdict_of([0.8 * k for k in SWAPS]).verdict == RELEASED  # below T, kept 9.6 < 25


def test_too_few_swaps_is_inconclusive():
    v = verdict_of([0.0, 8.0, 16.0, 24.0])  # 2 swaps after the warmup
    assert v.verdict == INCONCLUSIVE
    assert v.reason == "only 2 swaps after the 2 warmup swaps; need 3"
    assert v.mb_per_swap == pytest.approx(8.0)  # still a figure for the summary
    assert verdict_of([]).mb_per_swap is None


def test_server_died_is_inconclusive_but_keeps_the_slope():
    v = verdict_of([8.0 * k for k in SWAPS], died="exit code -9")
    assert v.verdict == INCONCLUSIVE
    assert v.reason.startswith("the run ended early: exit code -9")
    assert v.mb_per_swap == pytest.approx(8.0)


def test_memory_below_the_baseline_is_released():
    v = verdict_of([0.0, 0.0] + [-12.0] * 10)
    assert v.verdict == RELEASED
    assert "keeps -12.0 MiB over the baseline" in v.reason


def test_glibc_staircase_is_a_leak_not_noise():
    # Retained MiB after 8 swaps, measured: the stand-in with a planted 4 MiB per load
    # (--debug_retain_mb_per_load=4) under glibc, 16 MiB demo model. Fragmentation adds
    # irregular jumps (+19.7, +18.7) on top of the steady 4 MiB.
    measured = [11.9, 28.4, 48.2, 54.1, 72.8, 77.7, 81.8, 85.9]
    v = verdict_of(measured)
    assert v.verdict == LEAK
    assert v.later_mb_per_swap == pytest.approx(4.1, abs=0.1)


# Settled memory (RssAnon, MiB) after swaps 0..N of real default runs (`soak run`, 128 MiB
# demo model, threshold 1.28 MiB per swap). Swap 0 is the baseline.
RECORDED = {
    # issue 9, run A and run B: glibc, judged inconclusive by the old rules
    "glibc A": [369.5, 423.6, 431.3, 431.4, 371.3, 370.6, 425.2, 381.9, 435.5, 478.8, 478.9, 478.9],
    "glibc B": [369.5, 423.7, 477.6, 477.8, 429.1, 441.9, 429.2, 483.1, 450.0, 513.7, 455.1, 455.1],
    "glibc C": [
        365.9,
        369.7,
        423.8,
        478.4,
        445.5,
        514.5,
        489.0,
        522.3,
        491.7,
        532.6,
        463.7,
        532.6,
        437.3,
    ],
    "jemalloc C": [
        371.1,
        382.6,
        386.3,
        387.3,
        386.0,
        385.7,
        382.3,
        390.4,
        394.6,
        381.2,
        377.3,
        385.9,
        380.0,
    ],
    # jemalloc with the settle floor of its 10 s dirty decay
    "jemalloc D": [
        370.9,
        382.3,
        372.3,
        381.6,
        382.4,
        382.5,
        377.5,
        380.3,
        382.6,
        387.4,
        385.2,
        377.7,
        375.7,
    ],
    # a default run of session 4: settled memory wandered up over swaps 3-6 (+1.9 -> +16.2)
    "jemalloc E": [375.4, 383.4, 385.7, 377.3, 384.0, 386.7, 391.7, 387.9],
}
RECORDED_T = 1.28


def recorded(name: str, swaps: int | None = None) -> SettledSeries:
    levels = RECORDED[name]
    retained = [level - levels[0] for level in levels[1:]][:swaps]
    return SettledSeries(list(range(1, len(retained) + 1)), retained)


@pytest.mark.parametrize("name", ["glibc A", "glibc B", "glibc C"])
def test_recorded_glibc_runs_are_flagged(name):
    s = recorded(name)
    assert classify(s.swaps, s.retained_mb, RECORDED_T).verdict in FLAGGED


@pytest.mark.parametrize("name", ["glibc A", "glibc B", "glibc C"])
def test_recorded_glibc_runs_are_never_released_at_any_length(name):
    # glibc gives everything back for a swap or two now and then (run A, swaps 4-5):
    # no prefix of a run may read that as released.
    for n in range(1, len(RECORDED[name])):
        s = recorded(name, n)
        assert classify(s.swaps, s.retained_mb, RECORDED_T).verdict != RELEASED, n


@pytest.mark.parametrize("name", ["jemalloc C", "jemalloc D"])
def test_recorded_jemalloc_runs_are_released(name):
    for n in (8, 12):
        s = recorded(name, n)
        v = classify(s.swaps, s.retained_mb, RECORDED_T)
        assert v.verdict == RELEASED, (n, v.reason)


def test_the_control_never_makes_a_finding_less_sure():
    # A default run (`--swaps auto`): glibc decided plateau on its own after 7 swaps;
    # taking off jemalloc's +11.4 MiB must not leave it inconclusive.
    glibc = [3.7, 14.4, 58.2, 15.2, 69.2, 76.9, 120.2]
    jemalloc = [8.7, 11.2, 20.1, 10.9, 16.5, 7.5, 11.4, 11.3, 12.4]
    alone = classify(range(1, 8), glibc, RECORDED_T)
    assert alone.verdict == PLATEAU
    run = classify_run(
        {
            "glibc": SettledSeries(range(1, 8), glibc),
            "jemalloc": SettledSeries(range(1, 10), jemalloc),
        },
        RECORDED_T,
    )
    assert run["glibc"].verdict == PLATEAU
    assert run["glibc"].control == "jemalloc"
    assert run["glibc"].kept_mb == pytest.approx(alone.level_mb - run["jemalloc"].level_mb)


def test_recorded_run_with_control():
    run = classify_run({"glibc": recorded("glibc C"), "jemalloc": recorded("jemalloc C")}, 1.28)
    assert run["glibc"].verdict == PLATEAU
    assert run["jemalloc"].verdict == RELEASED
    assert run["glibc"].control == "jemalloc"
    assert run["glibc"].kept_mb == pytest.approx(run["glibc"].level_mb - run["jemalloc"].level_mb)


def auto(levels: Sequence[float], max_swaps: int = 30) -> str | None:
    """A recorded run fed to `--swaps auto` swap by swap: why it stopped, or None."""
    budget = SwapBudget(None, max_swaps, RECORDED_T, warmup_swaps=2)
    for k, level in enumerate(levels):
        budget.record(k, level)
        if k and (reason := budget.stop_reason(k)):
            return reason
    return None


def test_auto_does_not_stop_on_a_leak_whose_later_swaps_do_not_show_it():
    # jemalloc E after 7 swaps: growth shown (3.3 MiB per swap), a stop not, so a 7-swap run
    # calls it a leak; but its later swaps do not show it still growing, so auto swaps on.
    s = recorded("jemalloc E")
    v = classify(s.swaps, s.retained_mb, RECORDED_T)
    assert (v.verdict, v.growth, v.later_growth) == (LEAK, "above", "unsure")
    assert auto(RECORDED["jemalloc E"]) is None


@pytest.mark.parametrize(
    "name, verdict",
    [
        ("glibc B", PLATEAU),
        ("glibc C", PLATEAU),
        ("jemalloc C", RELEASED),
        ("jemalloc D", RELEASED),
    ],
)
def test_auto_stops_recorded_runs_once_decided(name, verdict):
    assert auto(RECORDED[name]) == f"decided after 7 swaps: {verdict} on its own"


@pytest.mark.parametrize("mb_per_swap, by", [(4.0, 10), (2.0, 20)])
def test_auto_stops_a_leak_once_its_later_swaps_still_grow(mb_per_swap, by):
    noise = np.random.default_rng(3).normal(0, 4.0, 31)  # jemalloc-like scatter, sd 4 MiB
    levels = [370 + mb_per_swap * k + e for k, e in enumerate(noise)]
    reason = auto(levels)
    assert reason is not None and reason.endswith(f"{LEAK} on its own")
    assert int(reason.split()[2]) <= by
