"""Selected order statistics of pairwise differences and slopes: the floats that making and
sorting all pairs gives, found in memory that grows with the samples, not with the pairs."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from soak.analysis import pairwise, shift, verdict


def _made(monkeypatch: pytest.MonkeyPatch, selected: bool) -> None:
    """Force the selection (small bounds, several rounds) or the pairs made and sorted."""
    monkeypatch.setattr(pairwise, "MAX_MADE_PAIRS", 0 if selected else 10**12)
    monkeypatch.setattr(shift, "MAX_MADE_PAIRS", 0 if selected else 10**12)
    monkeypatch.setattr(verdict, "MAX_MADE_PAIRS", 0 if selected else 10**12)
    monkeypatch.setattr(pairwise, "FEW_PAIRS", 500)
    monkeypatch.setattr(pairwise, "SAMPLE", 256)


def _levels(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Settled MiB as runs show them: noisy, in whole pages, or repeating exactly."""
    if kind == "pages":
        return np.round(rng.normal(300, 20, n) * 256) / 256
    if kind == "repeating":
        return np.tile(np.round(rng.normal(0, 50, 9), 3), n // 9 + 1)[:n]
    return rng.normal(0, 30, n) + 0.05 * np.arange(n)


@pytest.mark.parametrize("kind", ["noisy", "pages", "repeating"])
def test_selected_equals_sorted(monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    rng = np.random.default_rng(7)
    a, b = _levels(kind, 700, rng), _levels(kind, 450, rng)
    x = np.sort(rng.choice(3000, 700, replace=False)).astype(float)
    _made(monkeypatch, selected=False)
    expected = (shift.hodges_lehmann(a, b), verdict.theil_sen(x, a))
    _made(monkeypatch, selected=True)
    assert (shift.hodges_lehmann(a, b), verdict.theil_sen(x, a)) == expected


def test_a_long_run_is_not_made_into_pairs() -> None:
    """20 000 swaps are 200 M pairs (1.6 GB of slopes); selecting them stays small."""
    rng = np.random.default_rng(1)
    x, y = np.arange(3.0, 20_003.0), rng.normal(0, 30, 20_000)
    tracemalloc.start()
    try:
        slope, _ = verdict.theil_sen(x, y)
        shift.hodges_lehmann(y, y[:15_000] + 1.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert abs(slope) < 0.01
    assert peak < 64 << 20
