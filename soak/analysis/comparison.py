"""Compare the variants of a run and say which one to use.

Memory first (that is what a soak run is for): a variant that releases beats
one that plateaus, which beats one that leaks; within a verdict, less retained
memory (per swap, for leaks) wins. Latency second: the lowest p99 during swaps.
When every allocator leaks at about the same rate, the growth does not come
from the allocator, and saying so saves the user a useless change.
"""

from __future__ import annotations

from soak.analysis.verdict import INCONCLUSIVE, LEAK, PLATEAU, RELEASED

_RANK = {RELEASED: 0, PLATEAU: 1, LEAK: 2}
SIMILAR_SLOPE_RATIO = 1.5  # slopes within this factor of each other grow "alike"


def compare(variants: list[dict], threshold_mb: float) -> dict:
    """The `comparison` section of summary.json from its variant entries."""
    judged = [v for v in variants if v["status"] != "failed" and _verdict(v) in _RANK]
    timed = [v for v in variants if v["status"] != "failed" and _swap_p99(v) is not None]
    least_memory = min(judged, key=_memory_key, default=None)
    least_latency = min(timed, key=_swap_p99, default=None)
    alike = _grows_alike(judged, threshold_mb) if len(judged) == len(variants) else False
    return {
        "least_memory": least_memory["name"] if least_memory else None,
        "least_latency": least_latency["name"] if least_latency else None,
        "allocator_independent": alike,
        "recommendation": _recommend(variants, judged, least_memory, least_latency, alike),
    }


def _recommend(variants, judged, best, fastest, alike) -> str:
    if not variants:
        return "no recommendation: the run has no variant data"
    if not judged:
        why = "; ".join(f"{v['name']}: {_why(v)}" for v in variants)
        return f"no recommendation: no variant has a verdict ({why})"
    if alike:
        slopes = ", ".join(f"{v['name']} {_slope(v):.1f}" for v in judged)
        return (
            f"every allocator keeps about the same memory per swap (MiB: {slopes}): the growth "
            "is not the allocator's, so changing allocator won't help; look at the model "
            "and the server's load path"
        )
    unjudged = [v["name"] for v in variants if v not in judged]
    return _choice(variants, best, fastest) + (
        f"; no verdict for {', '.join(unjudged)}" if unjudged else ""
    )


def _choice(variants, best, fastest) -> str:
    keeps = f"it keeps the least memory ({_verdict(best)}, {_memory_text(best)})"
    if len(variants) == 1:
        return (
            f"{best['name']}: {_verdict(best)} ({_memory_text(best)}); run other allocators "
            "(e.g. --allocators glibc,jemalloc) to compare"
        )
    if _verdict(best) == LEAK:
        least = f"{best['name']} leaks least ({_memory_text(best)})"
        return f"every variant with a verdict leaks; {least}"
    if fastest is None or fastest is best:
        p99 = f" and has the lowest swap p99 ({_swap_p99(best):.0f} ms)" if fastest else ""
        return f"use {best['name']}: {keeps}{p99}"
    theirs = _swap_p99(best)
    versus = f" vs {theirs:.0f} ms" if theirs is not None else ""
    return (
        f"use {best['name']}: {keeps}; {fastest['name']} has the lower swap p99 "
        f"({_swap_p99(fastest):.0f} ms{versus})"
    )


def _grows_alike(judged: list[dict], threshold_mb: float) -> bool:
    """All (2+ allocators) leak, at rates within SIMILAR_SLOPE_RATIO or one threshold."""
    if len({v["allocator"] for v in judged}) < 2 or any(_verdict(v) != LEAK for v in judged):
        return False
    slopes = [_slope(v) for v in judged]
    low, high = min(slopes), max(slopes)
    return high - low <= threshold_mb or high <= SIMILAR_SLOPE_RATIO * low


def _memory_key(v: dict) -> tuple:
    figure = _slope(v) if _verdict(v) == LEAK else v["memory"]["retained_mb"]
    return (_RANK[_verdict(v)], figure if figure is not None else float("inf"))


def _memory_text(v: dict) -> str:
    if _verdict(v) == LEAK:
        return f"{_slope(v):.1f} MiB per swap"
    return f"{v['memory']['retained_mb']:+.1f} MiB after {v['swaps_completed']} swaps"


def _why(v: dict) -> str:
    if v["status"] == "failed":
        return f"failed ({v.get('reason') or 'no reason given'})"
    return v["memory"].get("verdict_reason") or INCONCLUSIVE


def _verdict(v: dict) -> str:
    return v["memory"]["verdict"]


def _slope(v: dict) -> float:
    return v["memory"]["retained_mb_per_swap"]


def _swap_p99(v: dict) -> float | None:
    return v["latency"]["swap_p99_ms"]
