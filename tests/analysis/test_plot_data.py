"""The report's plot data and figures stay bounded however long the run (plot_data.py)."""

import base64
import re

import numpy as np
import pytest

from soak.analysis.latency import request_windows
from soak.analysis.plot_data import (
    MAX_BARS,
    MAX_MARKERS,
    MAX_POINTS,
    MAX_SCATTER_POINTS,
    reduce_points,
    variant_timeline,
)
from soak.report import plots


def old_reduce_points(x, y, limit):
    """reduce_points as it was: a loop over np.array_split's bins."""
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) <= limit:
        return x, y
    picks = []
    for b in np.array_split(np.arange(len(x)), limit // 2):
        lo, hi = b[np.argmin(y[b])], b[np.argmax(y[b])]
        picks += sorted((lo, hi))
    chosen = np.array(picks)
    return x[chosen], y[chosen]


@pytest.mark.parametrize("n", [10, 2000, 2001, 2999, 4000, 6007, 100_003])
def test_reduce_points_is_the_old_loop(n):
    rng = np.random.default_rng(n)
    x = np.sort(rng.uniform(0, 1000, n))
    y = np.round(rng.normal(0, 3, n))  # many ties: the first of equal values is taken
    y[rng.random(n) < 0.01] = np.nan
    for limit in (2000, 20, 7):
        got, want = reduce_points(x, y, limit), old_reduce_points(x, y, limit)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


def timeline_of(run):
    timeline, requests, memory, breakdown = run
    windows = request_windows(requests, timeline)
    return variant_timeline(memory, requests, timeline, windows, breakdown)


def drawn(uri: str) -> int:
    """Shapes and markers in a figure's SVG."""
    svg = base64.b64decode(uri.split(",", 1)[1]).decode()
    return len(re.findall(r"<(?:path|use|rect|image)\b", svg))


def test_a_long_run_is_plotted_from_bounded_data(long_run):
    timeline = timeline_of(long_run(swaps=3000, rps=1.0))
    assert len(timeline.staged_s) == 3000
    assert all(len(line.x) <= MAX_POINTS for line in timeline.memory)
    assert len(timeline.latency_ok.x) <= MAX_SCATTER_POINTS
    assert 0 < len(timeline.latency_errors.x) <= MAX_MARKERS
    assert timeline.first_after_swap is not None
    assert 0 < len(timeline.first_after_swap.x) <= MAX_MARKERS
    assert all(len(part.x) == MAX_BARS + 1 for part in timeline.breakdown)


def test_figures_do_not_grow_with_the_run(long_run):
    """Drawn shapes: as many for 6000 swaps as for 3000 (a bound, not one per swap)."""
    shorter, longer = (timeline_of(long_run(swaps=n, rps=4.0)) for n in (3000, 6000))
    for draw in (
        lambda t: plots.memory_timeline(t, 0.0, 0),
        lambda t: plots.latency_timeline(t, 0),
        lambda t: plots.attribution(t, 0, None),
    ):
        few, many = drawn(draw(shorter)), drawn(draw(longer))
        assert many <= few * 1.05 + 20, (few, many)
    # one area per part and a dot per run of swaps: not a patch per part and bar (3 x 200)
    assert drawn(plots.attribution(longer, 0, None)) < MAX_BARS + 100
