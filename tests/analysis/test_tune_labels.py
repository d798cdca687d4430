"""A recipe's label (soak/analysis/tune.py `recipe_label`): real and possibly as large as
matters, or not, on the intervals the tunes measured."""

import pytest

from soak.analysis.result import Shift
from soak.analysis.tune import HELPS, HURTS, NO_EFFECT, recipe_label


def _shift(shift, low, high, margin):
    return Shift(shift=shift, low=low, high=high, label=None, margin=margin)


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
