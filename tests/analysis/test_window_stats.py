"""Order statistics of many windows at once are numpy's per window: the same floats.

The per-swap figures found for all swaps at once (latency p99s, settled levels, peaks,
CPU, the first answers after a swap) are held to the loops they replaced, kept here as
references.
"""

import dataclasses

import numpy as np
import pytest

from soak.analysis.cpu import MIN_WINDOW_SAMPLES, per_swap_cpu, steady_window
from soak.analysis.latency import (
    AFTER,
    BASELINE,
    FIRST_ANSWERS_S,
    MIN_WINDOW_REQUESTS,
    STEADY,
    SWAP,
    first_after_swap,
    latency_figures,
    request_windows,
    steady_window_latency,
    swap_window,
    swap_window_latency,
)
from soak.analysis.memory import MAX_SAMPLE_GAP_S
from soak.analysis.window_stats import maxima, medians, percentiles, sorted_windows
from soak.store.records import LEVEL_WINDOW_S, MIB


def random_windows(rng, n=3000, windows=400, disjoint=False):
    values = rng.lognormal(1.0, 0.6, n)
    scale = 10.0 ** rng.integers(0, 4, n)
    values = np.round(values * scale) / scale  # ties: values of few digits
    lo = rng.integers(0, n, windows)
    hi = lo + rng.choice([0, 1, 2, 3, 10, 57, 300], windows)  # some empty, some overlap
    if disjoint:  # one after the other, as a run's swaps are (sorted in place)
        edges = np.sort(rng.choice(n, 2 * windows, replace=False))
        lo, hi = edges[::2], edges[1::2]
        hi[::7] = lo[::7]  # some empty
    hi = np.minimum(hi, n)
    keep = rng.random(n) < 0.8
    return values, lo, hi, keep


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 99, 99.9, 100])
@pytest.mark.parametrize("disjoint", [False, True])
def test_percentiles_are_numpys(seed, q, disjoint):
    values, lo, hi, keep = random_windows(np.random.default_rng(seed), disjoint=disjoint)
    got = percentiles(sorted_windows(values, lo, hi, keep), q)
    for i, (a, b) in enumerate(zip(lo, hi, strict=True)):
        window = values[a:b][keep[a:b]]
        want = np.percentile(window, q) if len(window) else np.nan
        assert got[i] == want or (np.isnan(want) and np.isnan(got[i])), (i, window)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("disjoint", [False, True])
def test_medians_and_maxima_are_numpys(seed, disjoint):
    values, lo, hi, keep = random_windows(np.random.default_rng(seed), disjoint=disjoint)
    got_median = medians(sorted_windows(values, lo, hi, keep))
    got_max = maxima(values, lo, hi, keep)
    for i, (a, b) in enumerate(zip(lo, hi, strict=True)):
        window = values[a:b][keep[a:b]]
        if not len(window):
            assert np.isnan(got_median[i]) and np.isnan(got_max[i])
            continue
        assert got_median[i] == np.median(window)
        assert got_max[i] == np.max(window)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # inf - inf, numpy's too
def test_nan_and_inf_as_numpy_has_them():
    values = np.array([1.0, np.nan, 3.0, np.inf, 2.0, 5.0])
    lo, hi = np.array([0, 3, 4]), np.array([3, 5, 6])
    windows = sorted_windows(values, lo, hi)
    for q in (50, 99, 100):
        got = percentiles(windows, q)
        want = [np.percentile(values[a:b], q) for a, b in zip(lo, hi, strict=True)]
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(
        medians(windows), [np.median(values[a:b]) for a, b in zip(lo, hi, strict=True)]
    )


# --- the per-swap figures, against the loops they replaced ---


def between(series, start, end):
    """The requests intended in [start, end] (LatencySeries.between, as it was)."""
    lo = np.searchsorted(series.t, start, side="left")
    hi = np.searchsorted(series.t, end, side="right")
    return slice(int(lo), int(max(lo, hi)))


def old_window_labels(series, timeline):
    labels = np.full(len(series.t), STEADY, dtype=np.int8)
    for swap in timeline.swaps:
        labels[between(series, *swap_window(swap))] = SWAP
    if timeline.stopped_t is not None:
        labels[series.t >= timeline.stopped_t] = AFTER
    labels[series.t < timeline.baseline_t] = BASELINE
    return labels


def old_percentile(values, q):
    return float(np.percentile(values, q)) if len(values) else None


def old_swap_window_latency(series, timeline):
    out = {}
    for swap in timeline.swaps:
        start, end = swap_window(swap)
        if timeline.baseline_t is not None:
            start = max(start, timeline.baseline_t)
        inside = between(series, start, end)
        ok = series.ok[inside]
        latency = series.latency_ms[inside]
        out[swap.index] = (old_percentile(latency[ok], 99), int(np.sum(~ok)))
    return out


def old_steady_window_latency(series, timeline):
    labels = old_window_labels(series, timeline)
    out = {}
    for swap in timeline.swaps:
        start = swap_window(swap)[1]
        end = swap.next_staged_t if swap.next_staged_t is not None else timeline.stopped_t
        inside = between(series, start, np.inf if end is None else end)
        chosen = (labels[inside] == STEADY) & series.ok[inside]
        latency = series.latency_ms[inside][chosen]
        enough = len(latency) >= MIN_WINDOW_REQUESTS
        out[swap.index] = old_percentile(latency, 99) if enough else None
    return out


def old_level_mb(series, t, column):
    if t is None or not series.has(column):
        return None
    values = series.values(column)
    lo, hi = np.searchsorted(series.t, [t - LEVEL_WINDOW_S, t], side="right")
    window = values[lo:hi]
    window = window[np.isfinite(window)]
    if len(window) == 0:
        before = values[:hi][np.isfinite(values[:hi])]
        times = series.t[:hi][np.isfinite(values[:hi])]
        if len(before) == 0 or t - times[-1] > MAX_SAMPLE_GAP_S:
            return None
        window = before[-1:]
    return float(np.median(window)) / MIB


def old_peak_mb(series, start, end):
    lo = 0 if start is None else np.searchsorted(series.t, start, side="left")
    hi = len(series.t) if end is None else np.searchsorted(series.t, end, side="right")
    values = series.values(series.metric)[lo:hi]
    values = values[np.isfinite(values)]
    return float(values.max()) / MIB if len(values) else None


@pytest.mark.parametrize("seed", range(3))
def test_per_swap_latency_is_the_old_loops(long_run, seed):
    timeline, requests, _, _ = long_run(seed=seed)
    windows = request_windows(requests, timeline)
    assert swap_window_latency(requests, timeline, windows) == old_swap_window_latency(
        requests, timeline
    )
    assert np.array_equal(windows.labels, old_window_labels(requests, timeline))
    steady = steady_window_latency(requests, timeline, windows)
    assert steady == old_steady_window_latency(requests, timeline)
    assert sum(p is not None for p in steady.values()) > len(steady) / 2


@pytest.mark.parametrize("seed", range(3))
def test_levels_and_peaks_are_the_old_loops(long_run, seed):
    timeline, _, memory, _ = long_run(seed=seed)
    times = [s.settled_t for s in timeline.swaps] + [None, 1115.0, 1129.0, 1131.0, 980.0]
    assert memory.levels_mb(times) == [old_level_mb(memory, t, "rss_bytes") for t in times]
    assert memory.levels_mb(times, "anon_bytes") == [None] * len(times)
    starts = [s.staged_t for s in timeline.swaps] + [None, 1101.0]
    ends = [s.end_t for s in timeline.swaps] + [None, 1129.0]
    want = [old_peak_mb(memory, a, b) for a, b in zip(starts, ends, strict=True)]
    assert memory.peaks_mb(starts, ends) == want


def old_per_swap_cpu(series, requests, timeline):
    """per_swap_cpu as it was: a loop over the swaps."""

    def growth(t, cpu, start, end, min_samples):
        lo = int(np.searchsorted(t, start, side="left"))
        hi = int(np.searchsorted(t, end, side="right"))
        if hi - lo < min_samples:
            return None
        grown = float(cpu[hi - 1] - cpu[lo])
        return None if grown < 0 else (grown, float(t[lo]), float(t[hi - 1]))

    known = np.isfinite(series.values("cpu_s"))
    t, cpu = series.t[known], series.values("cpu_s")[known]
    out = {}
    for swap in timeline.swaps:
        swap_s = None
        if swap.settled_t is not None:
            grown = growth(t, cpu, swap.staged_t, swap.settled_t, 2)
            swap_s = grown[0] if grown is not None else None
        steady = None
        window = steady_window(swap, timeline)
        if window is not None:
            grown = growth(t, cpu, *window, MIN_WINDOW_SAMPLES)
            if grown is not None:
                seconds, first_t, last_t = grown
                lo, hi = np.searchsorted(requests.t, [first_t, last_t], side="right")
                n = int(max(0, hi - lo))
                if n >= MIN_WINDOW_REQUESTS:
                    steady = seconds * 1000.0 / n
        out[swap.index] = (swap_s, steady)
    return out


@pytest.mark.parametrize("seed", range(3))
def test_per_swap_cpu_is_the_old_loop(long_run, seed):
    timeline, requests, memory, _ = long_run(seed=seed)
    got = per_swap_cpu(memory, requests, timeline)
    assert got == old_per_swap_cpu(memory, requests, timeline)
    assert sum(a is not None for a, _ in got.values()) > len(got) / 2
    assert sum(b is not None for _, b in got.values()) > len(got) / 2


def old_first_after_swap(series, timeline):
    """first_after_swap as it was: a loop over the swaps."""
    t_end = series.t + series.latency_ms / 1000
    longest = float(np.max(t_end - series.t)) if len(series) else 0.0
    firsts = []
    for swap in timeline.swaps:
        available = swap.available_t
        if available is None:
            continue
        near = between(series, available - max(longest, 0.0) - 1.0, available + FIRST_ANSWERS_S)
        t, ends = series.t[near], t_end[near]
        answers = series.ok[near] & (ends >= available)
        if not answers.any():
            continue
        waits = ends[answers] - np.maximum(t[answers], available)
        i = int(np.argmax(waits))
        firsts.append((swap.index, float(t[answers][i]), float(waits[i] * 1000)))
    return firsts


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("rps", [0.5, 20.0])  # few requests: swaps without an answer
def test_first_after_swap_is_the_old_loop(long_run, seed, rps):
    timeline, requests, _, _ = long_run(seed=seed, rps=rps)
    firsts = first_after_swap(requests, timeline)
    assert firsts == old_first_after_swap(requests, timeline)
    assert 0 < len(firsts) < len(timeline.swaps)
    assert first_after_swap(requests, dataclasses.replace(timeline, swaps=[])) == []


@pytest.mark.parametrize("seed", range(3))
def test_latency_figures_are_one_percentile_call_each(long_run, seed):
    timeline, requests, _, _ = long_run(seed=seed)
    figures = latency_figures(requests, request_windows(requests, timeline))
    labels = old_window_labels(requests, timeline)
    steady, swap = labels == STEADY, labels == SWAP
    ok, latency = requests.ok, requests.latency_ms
    want = {
        "steady_p50_ms": np.percentile(latency[steady & ok], 50),
        "steady_p99_ms": np.percentile(latency[steady & ok], 99),
        "steady_max_ms": np.percentile(latency[steady & ok], 100),
        "swap_p50_ms": np.percentile(latency[swap & ok], 50),
        "swap_p99_ms": np.percentile(latency[swap & ok], 99),
        "swap_max_ms": np.percentile(latency[swap & ok], 100),
        "max_ms": np.percentile(latency[(steady | swap) & ok], 100),
    }
    assert {name: getattr(figures, name) for name in want} == want
