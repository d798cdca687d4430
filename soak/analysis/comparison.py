"""Compare the variants of a run and say which one to use.

Memory first (that is what a soak run is for): a variant that releases beats
one that plateaus, which beats one that leaks; within a verdict, less retained
memory (the level it settles at; per swap, for leaks) wins. Latency second:
the lowest p99 during swaps.
When every allocator leaks at about the same rate, the growth does not come
from the allocator, and saying so saves the user a useless change.
"""

from __future__ import annotations

from collections.abc import Sequence

from soak.analysis.result import Comparison, VariantResult
from soak.analysis.verdict import INCONCLUSIVE, LEAK, PLATEAU, RELEASED

_RANK = {RELEASED: 0, PLATEAU: 1, LEAK: 2}
SIMILAR_SLOPE_RATIO = 1.5  # slopes within this factor of each other grow "alike"


def compare(variants: Sequence[VariantResult], threshold_mb: float) -> Comparison:
    """Which variant keeps the least memory, which is fastest, and what to use."""
    judged = [v for v in variants if v.status != "failed" and _verdict(v) in _RANK]
    timed = [v for v in variants if v.status != "failed" and v.latency.swap_p99_ms is not None]
    least_memory = min(judged, key=_memory_key, default=None)
    least_latency = min(timed, key=_swap_p99, default=None)
    alike = _grows_alike(judged, threshold_mb) if len(judged) == len(variants) else False
    control = next((v.memory.verdict.control for v in variants if v.memory.verdict.control), None)
    return Comparison(
        least_memory=least_memory.name if least_memory else None,
        least_latency=least_latency.name if least_latency else None,
        allocator_independent=alike,
        recommendation=_recommend(variants, judged, least_memory, least_latency, alike),
        control=control,
        retained_vs_control_mb=tuple(
            (v.name, v.memory.verdict.kept_mb) for v in variants if control is not None
        ),
    )


def _recommend(
    variants: Sequence[VariantResult],
    judged: list[VariantResult],
    best: VariantResult | None,
    fastest: VariantResult | None,
    alike: bool,
) -> str:
    if not variants:
        return "no recommendation: the run has no variant data"
    if best is None:
        why = "; ".join(f"{v.name}: {_why(v)}" for v in variants)
        return f"no recommendation: no variant has a verdict ({why})"
    if alike:
        slopes = ", ".join(f"{v.name} {_slope(v):.1f}" for v in judged)
        return (
            f"every allocator keeps about the same memory per swap (MiB: {slopes}): the growth "
            "is not the allocator's, so changing allocator won't help; look at the model "
            "and the server's load path"
        )
    judged_names = {v.name for v in judged}
    unjudged = [v.name for v in variants if v.name not in judged_names]
    return _choice(variants, best, fastest) + (
        f"; no verdict for {', '.join(unjudged)}" if unjudged else ""
    )


def _choice(
    variants: Sequence[VariantResult], best: VariantResult, fastest: VariantResult | None
) -> str:
    keeps = f"it keeps the least memory ({_verdict(best)}, {_memory_text(best)})"
    if len(variants) == 1:
        return (
            f"{best.name}: {_verdict(best)} ({_memory_text(best)}); run other allocators "
            "(e.g. --allocators glibc,jemalloc) to compare"
        )
    if _verdict(best) == LEAK:
        least = f"{best.name} leaks least ({_memory_text(best)})"
        return f"every variant with a verdict leaks; {least}"
    if fastest is None or fastest is best:
        p99 = f" and has the lowest swap p99 ({_swap_p99(best):.0f} ms)" if fastest else ""
        return f"use {best.name}: {keeps}{p99}"
    theirs = best.latency.swap_p99_ms
    versus = f" vs {theirs:.0f} ms" if theirs is not None else ""
    return (
        f"use {best.name}: {keeps}; {fastest.name} has the lower swap p99 "
        f"({_swap_p99(fastest):.0f} ms{versus})"
    )


def _grows_alike(judged: list[VariantResult], threshold_mb: float) -> bool:
    """All (2+ allocators) leak, at rates within SIMILAR_SLOPE_RATIO or one threshold."""
    if len({v.allocator for v in judged}) < 2 or any(_verdict(v) != LEAK for v in judged):
        return False
    slopes = [_slope(v) for v in judged]
    low, high = min(slopes), max(slopes)
    return high - low <= threshold_mb or high <= SIMILAR_SLOPE_RATIO * low


def _memory_key(v: VariantResult) -> tuple[int, float]:
    """Verdict first; then the slope of a leak, else the level memory settles at.

    The level (median over the swaps), not the last swap's memory: glibc's
    settled memory jumps by tens of MiB from one swap to the next.
    """
    figure = _slope(v) if _verdict(v) == LEAK else v.memory.verdict.level_mb
    return (_RANK[_verdict(v)], figure if figure is not None else float("inf"))


def _memory_text(v: VariantResult) -> str:
    if _verdict(v) == LEAK:
        return f"{_slope(v):.1f} MiB per swap"
    level = v.memory.verdict.level_mb
    kept = f"{level:+.1f} MiB" if level is not None else "? MiB"
    return f"settles at {kept} over {v.swaps_completed} swaps"


def _why(v: VariantResult) -> str:
    if v.status == "failed":
        return f"failed ({v.reason or 'no reason given'})"
    return v.memory.verdict.reason or INCONCLUSIVE


def _verdict(v: VariantResult) -> str:
    return v.memory.verdict.verdict


def _slope(v: VariantResult) -> float:
    """The slope of a leak (a leak always has one)."""
    slope = v.memory.retained_mb_per_swap
    return slope if slope is not None else float("nan")


def _swap_p99(v: VariantResult) -> float:
    p99 = v.latency.swap_p99_ms
    return p99 if p99 is not None else float("inf")
