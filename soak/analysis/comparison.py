"""Compare the variants of a run with its reference, and say which fix to use.

The reference is the run's first variant (`--allocators fixes` and the default run
both put glibc first); every other variant is compared with it, figure by figure,
as a Hodges–Lehmann shift with its 95 % interval (soak/analysis/shift.py), lower is
better for all four:

- `kept_mb`: per swap, the settled memory over the baseline (`retained_mb`), over
  the swaps the verdict judges (after the warmup swaps);
- `cpu_ms_per_request`: per steady window, the server's CPU-ms per request (cpu.py);
- `steady_p99_ms`: per swap, the p99 of its steady window;
- `swap_p99_ms`: per swap, the p99 of its swap window.

A difference counts (`better` / `worse`) only when its interval excludes 0 *and* the
shift is beyond the figure's practical margin (MARGINS below), so that two identical
variants, which run one after the other while the machine drifts, compare `same`.

The recommendation ranks the variants that give memory back (kept memory `better`,
or `released` where the reference keeps memory: `plateau` or `leak`): by verdict,
then by memory given back (amounts within the kept-memory margin of the best
count as equal), then by what they cost (how many of CPU, steady and swap p99 are
`worse`, then by how much), and names the trade-off in one line each, with what to
change in production. No claim of speed rests on a difference inside the noise:
`least_latency` is the fastest of the variants `better` on swap p99 (the reference
when every other is `worse`), else None.

When every allocator leaks at about the same rate, the growth does not come
from the allocator, and saying so saves the user a useless change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from soak.analysis.result import Comparison, Shift, VariantComparison, VariantResult
from soak.analysis.shift import BETTER, SAME, WORSE, compare_samples
from soak.analysis.verdict import FLAGGED, INCONCLUSIVE, LEAK, PLATEAU, RELEASED, kept_bound_mb
from soak.store.records import MIB, Status

_RANK = {RELEASED: 0, PLATEAU: 1, LEAK: 2}
SIMILAR_SLOPE_RATIO = 1.5  # slopes within this factor of each other grow "alike"

# --- the practical margins: a difference smaller than these is `same` -------------------
# Chosen on tests/analysis/data/identical_default_runs (6 default runs of the 128 MiB demo
# model, glibc and jemalloc each, on a shared 2-core machine), comparing every run's
# variant with the same variant of every other run (identical setups, minutes to days
# apart: more drift than two variants of one run see, which run minutes apart):
#
# Kept memory, between two variants that both keep memory (flagged) or both give it back:
# max(the verdict's kept-memory bound, 25 thresholds = max(25 MiB, 25 % of the model), and
# KEPT_MARGIN_MODEL_SHARE of the model). glibc's settled memory sits at one of two levels
# up to about half the model apart (58 to 126 MiB on the 128 MiB demo model) for the whole
# run, which the interval (independent values) does not see: identical glibc variants of
# one run differed by up to 67.9 MiB (53 % of the model) with intervals that exclude 0
# (benchmarks/fixes.py --cases identical, 5 runs; fixture identical_default_runs: 55 MiB).
# Three quarters of the model leaves room above that.
# Between a variant that gives memory back (`released`) and one not shown to (flagged or
# inconclusive), the verdicts have already told them apart, so the shift needs only to
# pass the verdict's own bound: jemalloc against glibc of the same run is then `better`
# at any level glibc settled on (shifts -57 to -111 MiB on the demo model: the fixture
# and 3 runs of the preset).
KEPT_MARGIN_MODEL_SHARE = 0.75
# Latency: LATENCY_MARGIN_SHARE of the reference's median, at least LATENCY_MARGIN_FLOOR_MS.
# Latency drifts with the machine's load: the same default run repeated had steady p99s
# of 7.9-14 ms and swap p99s of 195-318 ms, a run-to-run sd of 17-18 % of their median
# (soak/regression.py, LATENCY_DRIFT), so the difference of two runs' p99s has an sd of
# about 25 %; 50 % is two of those. Identical pairs: swap p99 `same` in 69 of 72; steady
# p99 in 55 of 72 (one run's jemalloc had steady windows of 200-400 ms while the machine
# was busy): a steady-latency label is the least sure of the four. Below 10 % (a share
# often proposed) identical variants differed in 30 of 72 pairs.
LATENCY_MARGIN_SHARE = 0.5
LATENCY_MARGIN_FLOOR_MS = 1.0  # as soak/regression.py's floor: below it, no change is a finding
# CPU per request: CPU_MARGIN_SHARE of the reference's median, at least CPU_MARGIN_FLOOR_MS.
# The server's CPU time does not count the time it waits for the CPU, but it still drifts
# with the machine (caches, frequency, a neighbour on the other hyperthread): identical
# glibc variants of one run differed by up to 16 %, and the fixes ran 20-35 % below glibc,
# which ran first, in 2 of 3 runs of the preset and the same in the third
# (benchmarks/fixes.py). A smaller CPU cost than this is not told apart on a shared machine.
CPU_MARGIN_SHARE = 0.25
CPU_MARGIN_FLOOR_MS = 0.1

FIGURE_NAMES = {
    "kept_mb": "kept memory",
    "cpu_ms_per_request": "CPU per request",
    "steady_p99_ms": "steady p99",
    "swap_p99_ms": "swap p99",
}
COSTS = ("cpu_ms_per_request", "steady_p99_ms", "swap_p99_ms")


def samples(v: VariantResult, figure: str) -> list[float]:
    """The values a figure is compared on (module docstring)."""
    judged = set(v.memory.verdict.swaps_judged)  # once: a long run judges thousands
    take: dict[str, Callable[[VariantResult], list[float | None]]] = {
        "kept_mb": lambda v: [s.retained_mb for s in v.swaps if s.index in judged],
        "cpu_ms_per_request": lambda v: [s.steady_cpu_ms_per_request for s in v.swaps],
        "steady_p99_ms": lambda v: [s.steady_p99_ms for s in v.swaps],
        "swap_p99_ms": lambda v: [s.p99_ms for s in v.swaps],
        "first_after_swap_ms": lambda v: [s.first_after_ms for s in v.swaps],
    }
    return [x for x in take[figure](v) if x is not None]


def margin(
    figure: str,
    reference: Sequence[float],
    threshold_mb: float,
    model_mb: float,
    verdicts_differ: bool = False,
) -> float:
    """The practical margin of `figure` (see the constants above); `verdicts_differ`: one
    variant gives its memory back and the other keeps it."""
    if figure == "kept_mb":
        if verdicts_differ:
            return kept_bound_mb(threshold_mb)
        return max(kept_bound_mb(threshold_mb), KEPT_MARGIN_MODEL_SHARE * model_mb)
    median = float(np.median(reference)) if len(reference) else 0.0
    if figure == "cpu_ms_per_request":
        return max(CPU_MARGIN_FLOOR_MS, CPU_MARGIN_SHARE * abs(median))
    return max(LATENCY_MARGIN_FLOOR_MS, LATENCY_MARGIN_SHARE * abs(median))


def versus(
    v: VariantResult, reference: VariantResult, threshold_mb: float, model_size_bytes: int | None
) -> VariantComparison:
    """`v` against the reference on the four figures."""
    model_mb = (model_size_bytes or 0) / MIB
    # released against a variant not shown to give its memory back (flagged, inconclusive)
    verdicts_differ = (_verdict(v) == RELEASED) != (_verdict(reference) == RELEASED)
    shifts = {}
    for figure in VariantComparison.FIGURES:
        ref = samples(reference, figure)
        shifts[figure] = compare_samples(
            samples(v, figure), ref, margin(figure, ref, threshold_mb, model_mb, verdicts_differ)
        )
    return VariantComparison(reference=reference.name, **shifts)


def with_comparisons(
    variants: Sequence[VariantResult], threshold_mb: float, model_size_bytes: int | None
) -> tuple[VariantResult, ...]:
    """The variants, each but the reference (the first) compared with it."""
    if len(variants) < 2:
        return tuple(variants)
    reference = variants[0]
    return (
        reference,
        *(
            dataclasses.replace(v, comparison=versus(v, reference, threshold_mb, model_size_bytes))
            for v in variants[1:]
        ),
    )


def compare(variants: Sequence[VariantResult], threshold_mb: float) -> Comparison:
    """Which variant keeps the least memory, which is faster beyond the noise, and what to use.

    The variants carry their comparison with the reference (`with_comparisons`).
    """
    judged = [v for v in variants if v.status != Status.FAILED and _verdict(v) in _RANK]
    least_memory = min(judged, key=_memory_key, default=None)
    alike = _grows_alike(judged, threshold_mb) if len(judged) == len(variants) else False
    control = next((v.memory.verdict.control for v in variants if v.memory.verdict.control), None)
    reference = variants[0] if len(variants) >= 2 else None
    ranking = _ranking(variants, reference) if reference is not None and not alike else []
    return Comparison(
        least_memory=least_memory.name if least_memory else None,
        least_latency=_least_latency(variants),
        allocator_independent=alike,
        recommendation=_recommend(variants, judged, least_memory, alike, ranking),
        control=control,
        retained_vs_control_mb=tuple(
            (v.name, v.memory.verdict.kept_mb) for v in variants if control is not None
        ),
        reference=reference.name if reference is not None else None,
        ranking=tuple(v.name for v in ranking),
    )


def _least_latency(variants: Sequence[VariantResult]) -> str | None:
    """The fastest of the variants with a lower swap p99 than the reference's beyond the
    noise; the reference when every other one is slower beyond it; else None."""
    others = [v for v in variants[1:] if v.status != Status.FAILED]
    if not others:
        return None
    labels = {v.name: _label(v, "swap_p99_ms") for v in others}
    faster = [v for v in others if labels[v.name] == BETTER]
    if faster:
        return min(faster, key=_swap_p99).name
    if all(label == WORSE for label in labels.values()):
        return variants[0].name
    return None


def _ranking(variants: Sequence[VariantResult], reference: VariantResult) -> list[VariantResult]:
    """The variants that give memory back against the reference, best first."""
    found = [
        v
        for v in variants[1:]
        if v.status != Status.FAILED
        and _verdict(v) in _RANK
        and (
            _label(v, "kept_mb") == BETTER
            or (_verdict(v) == RELEASED and _verdict(reference) in FLAGGED)
        )
    ]
    if not found:
        return []
    best = min(_kept_shift(v) for v in found)

    def key(v: VariantResult) -> tuple[int, int, int, float, float]:
        kept = _shift(v, "kept_mb")
        step = kept.margin or 1.0
        given_back = int((_kept_shift(v) - best) // step)  # within one margin of the best: 0
        costs = [_shift(v, f) for f in COSTS]
        worse = sum(c.label == WORSE for c in costs)
        cost = sum(c.percent or 0.0 for c in costs)
        return (_RANK[_verdict(v)], given_back, worse, cost, _kept_shift(v))

    return sorted(found, key=key)


def _recommend(
    variants: Sequence[VariantResult],
    judged: list[VariantResult],
    best: VariantResult | None,
    alike: bool,
    ranking: list[VariantResult],
) -> str:
    """The headline, then one line per fix (ranking), joined by newlines."""
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
    if len(variants) == 1:
        return (
            f"{best.name}: {_verdict(best)} ({_memory_text(best)}); run other allocators "
            "or the fixes (e.g. --allocators fixes) to compare"
        )
    judged_names = {v.name for v in judged}
    unjudged = [v.name for v in variants if v.name not in judged_names]
    suffix = f"; no verdict for {', '.join(unjudged)}" if unjudged else ""
    reference = variants[0]
    if ranking:
        top = ranking[0]
        if len(ranking) == 1:
            head = f"use {top.name}: it gives back memory that {reference.name} keeps"
        else:
            head = (
                f"use {top.name}: of the {len(ranking)} variants that give back memory "
                f"{reference.name} keeps, it gives back the most at the least cost"
            )
        return "\n".join([head + suffix, *(tradeoff(v, reference) for v in ranking)])
    ref_text = f"{reference.name}, the reference: {_verdict(reference)}, {_memory_text(reference)}"
    if _verdict(reference) == RELEASED:
        return (
            f"keep {reference.name}: it releases ({_memory_text(reference)}); no variant "
            f"keeps less memory beyond the noise{suffix}"
        )
    if all(_verdict(v) == LEAK for v in judged):
        return f"every variant with a verdict leaks; none leaks less than {ref_text}{suffix}"
    return f"no variant gives back memory beyond the noise ({ref_text}){suffix}"


def tradeoff(v: VariantResult, reference: VariantResult) -> str:
    """One line: what `v` gives back against the reference, what it costs, what to change."""
    kept = _shift(v, "kept_mb")
    ref = reference.name
    if kept.label == BETTER and kept.shift is not None:
        memory = f"keeps {-kept.shift:.0f} MiB less than {ref} ({_verdict(v)})"
    else:
        differs = f"{kept.shift:+.0f} MiB, " if kept.shift is not None else ""
        memory = (
            f"{_verdict(v)} where {ref} keeps memory (kept memory {differs}not beyond the noise)"
        )
    parts = [f"{v.name}: {memory}", cost_text(v, "cpu_ms_per_request", numbers=True)]
    parts += [cost_text(v, f) for f in ("steady_p99_ms", "swap_p99_ms")]
    if v.production_change:
        parts.append(f"in production: {v.production_change}")
    return "; ".join(parts)


def cost_text(v: VariantResult, figure: str, numbers: bool = False) -> str:
    """'CPU per request +3 % (±2)', 'swap p99 the same', 'steady p99 +60 % (±20), worse'.

    `numbers`: the shift even when it is `same` (CPU: the cost people ask about).
    """
    name = FIGURE_NAMES[figure]
    s = _shift(v, figure)
    if s.shift is None:
        return f"{name} not measured"
    amount = _amount(s, figure)
    if s.label is None:
        return f"{name} {amount} (too few values to tell)"
    if s.label == SAME:
        if numbers:
            return f"{name} {amount}"
        if s.low is not None and s.high is not None and (s.low > 0 or s.high < 0):
            return f"{name} {amount}, inside the margin"  # shown, but no claim rests on it
        return f"{name} the same"
    return f"{name} {amount}, {s.label}"


def _amount(s: Shift, figure: str) -> str:
    unit = "MiB" if figure == "kept_mb" else "ms"
    pct, half = s.percent, s.percent_half_width
    if pct is not None:
        return f"{pct:+.0f} %" + (f" (±{half:.0f})" if half is not None else "")
    assert s.shift is not None
    half_abs = (s.high - s.low) / 2 if s.high is not None and s.low is not None else None
    return f"{s.shift:+.2f} {unit}" + (f" (±{half_abs:.2f})" if half_abs is not None else "")


def _shift(v: VariantResult, figure: str) -> Shift:
    if v.comparison is None:
        return Shift(None, None, None, None)
    return v.comparison.figure(figure)


def _label(v: VariantResult, figure: str) -> str | None:
    return _shift(v, figure).label


def _kept_shift(v: VariantResult) -> float:
    shift = _shift(v, "kept_mb").shift
    return shift if shift is not None else 0.0


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
    if v.status == Status.FAILED:
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
