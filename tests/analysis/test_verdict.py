"""The verdict rules on synthetic settled-memory series with known answers."""

from collections import Counter

import numpy as np
import pytest

from soak.analysis.verdict import (
    INCONCLUSIVE,
    LEAK,
    PLATEAU,
    RELEASED,
    classify,
    swap_noise,
    theil_sen,
)

SWAPS = list(range(1, 13))  # 12 swaps, 2 of them warmup: 10 judged
T = 1.0  # threshold, MiB per swap


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
    assert "kept 7.9 MiB per swap, still growing in swaps 8–12" in v.reason


def test_growth_then_plateau_is_a_plateau():
    v = verdict_of([5.0 * min(k, 6) for k in SWAPS])
    assert v.verdict == PLATEAU
    assert v.level_mb == pytest.approx(20.0)  # 30 above the baseline, 20 above swap 2
    assert "stopped growing" in v.reason


def test_first_swaps_are_warmup():
    # All the growth happens in the 2 warmup swaps (first-time costs): what follows is flat.
    series = [20.0, 35.0] + [35.0] * 10
    assert verdict_of(series).verdict == RELEASED
    assert verdict_of(series, warmup_swaps=0).verdict == PLATEAU  # held above the baseline
    assert verdict_of([20.0, 35.0] + [45.0] * 10).verdict == PLATEAU  # grew after warmup


def test_slightly_noisy_flat_is_released():
    rng = np.random.default_rng(3)
    assert verdict_of(rng.normal(0.0, 0.1, 12)).verdict == RELEASED


def test_very_noisy_flat_is_mostly_released_or_inconclusive_and_rarely_a_leak():
    # Scatter 4x the threshold around a flat level: growth is often too noisy to rule
    # out (inconclusive); when it is ruled out, no retention can be shown (released).
    results = [verdict_of(np.random.default_rng(seed).normal(0.0, 4.0, 12)) for seed in range(200)]
    verdicts = Counter(v.verdict for v in results)
    assert verdicts[RELEASED] + verdicts[INCONCLUSIVE] >= 160
    assert verdicts[LEAK] <= 10  # the one-sided 95 % margin
    assert verdicts[PLATEAU] <= 25
    noisy = next(v for v in results if v.verdict == INCONCLUSIVE)
    assert "too noisy" in noisy.reason
    within = next(v for v in results if v.verdict == RELEASED)
    assert "within the noise" in within.reason


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
    assert verdict_of([0.8 * k for k in SWAPS]).verdict == PLATEAU  # below T per swap


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
    assert "12.0 MiB below the post-warmup level" in v.reason


def test_glibc_staircase_is_a_leak_not_noise():
    # Retained MiB after 8 swaps, measured: the stand-in with a planted 4 MiB per load
    # (--debug_retain_mb_per_load=4) under glibc, 16 MiB demo model. Fragmentation adds
    # irregular jumps (+19.7, +18.7) on top of the steady 4 MiB.
    measured = [11.9, 28.4, 48.2, 54.1, 72.8, 77.7, 81.8, 85.9]
    v = verdict_of(measured)
    assert v.verdict == LEAK
    assert v.later_mb_per_swap == pytest.approx(4.1, abs=0.1)
    assert v.noise_mb < 1.5  # the jumps are not scatter
