"""A recipe's label (soak/analysis/tune.py `recipe_label`): real and possibly as large as
matters, or not, on the intervals the tunes measured."""

import pytest

from soak.analysis.result import Shift
from soak.analysis.shift import judge
from soak.analysis.tune import HELPS, HURTS, NO_EFFECT, recipe_label


def _shift(shift, low, high, margin):
    """A Shift as compare_samples makes it: labelled by soak run's rule (judge)."""
    return Shift(
        shift=shift, low=low, high=high, label=judge(shift, low, high, margin), margin=margin
    )


@pytest.mark.parametrize(
    ("shift", "low", "high", "margin", "label"),
    [
        # split-4's CPU per request in two tunes: the interval's far end clears the margin
        (1.8, 1.5, 2.1, 0.88, HURTS),
        (0.5, 0.2, 1.9, 0.84, HURTS),
        (-53.6, -54.7, -30.4, 30.0, HELPS),  # warmup's first request
        (0.4, 0.2, 0.7, 0.87, NO_EFFECT),  # real, but shown smaller than the margin
        (63.6, -29.1, 169.2, 96.0, NO_EFFECT),  # not shown: the interval holds 0
        (-0.4, -0.9, -0.3, 0.8, HELPS),  # reaches past the margin by its low end
        (-0.4, -0.7, -0.3, 0.8, NO_EFFECT),
    ],
)
def test_label_by_the_interval_against_zero_and_the_margin(shift, low, high, margin, label):
    assert recipe_label(_shift(shift, low, high, margin)) == label


def test_no_interval_no_label():
    assert recipe_label(_shift(-300.0, None, None, 10.0)) is None
    assert recipe_label(_shift(None, None, None, 10.0)) is None


def test_the_advice_acts_on_clear_effects_and_names_the_rest():
    """A variant that helps by more than the margin is taken even if it may hurt another
    figure by less than the margin; one whose help only grazes the margin is not."""
    from soak.analysis.tune import Effect, TunedVariant, advise

    def variant(name, *effects):
        return TunedVariant(name, "glibc", (), (), 1, "completed", None, tuple(effects))

    warmup = variant(
        "warmup",
        Effect("first_after_swap_ms", _shift(-60.0, -71.0, -43.0, 9.0)),
        Effect("steady_p99_ms", _shift(2.1, 0.9, 12.4, 3.0)),  # hurts, by less than 3.0
    )
    assert warmup.helps == ["first_after_swap_ms"] and warmup.hurts == []
    assert warmup.may_hurt == ["steady_p99_ms"]
    chosen, advice = advise((variant("no-warmup"), warmup))
    assert chosen == "warmup"
    assert advice == (
        "take warmup: it helps first request after a swap; it may hurt steady p99, "
        "by less than the margin as measured"
    )
    grazing = variant("load-threads-2", Effect("swap_p99_ms", _shift(-6.3, -11.2, -0.6, 10.0)))
    assert grazing.effects[0].label == HELPS and grazing.helps == []
    assert advise((variant("load-threads-0"), grazing))[0] is None


def test_a_first_request_is_judged_against_the_spread_of_any_one_request():
    """On a real default run (jemalloc against glibc): the first request's margin is at
    least glibc's steady p99, the median over its swaps."""
    from pathlib import Path

    import numpy as np

    from soak.analysis.comparison import samples
    from soak.analysis.load import load_result
    from soak.analysis.tune import effects

    run = load_result(Path(__file__).parent / "data" / "real_runs" / "default-run")
    glibc, jemalloc = run.variants
    first = next(
        e
        for e in effects(jemalloc, glibc, run.threshold_mb, run.model.size_bytes)
        if e.figure == "first_after_swap_ms"
    )
    steady = float(np.median(samples(glibc, "steady_p99_ms")))
    first_ms = float(np.median(samples(glibc, "first_after_swap_ms")))
    assert steady > 0.5 * first_ms  # the case: half a first request is the smaller margin
    assert first.shift.margin == steady
