"""A run directory's raw data -> summary.json (SPEC §3).

`analyse_run` is pure (reads only); `write_summary` also writes the file. Both
work on a run that is still going, was interrupted, or crashed: what did not
happen is reported as missing (null), never guessed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

from soak import __version__
from soak.analysis.comparison import compare
from soak.analysis.inputs import RunSettings, VariantInputs, read_run
from soak.analysis.latency import latency_figures, swap_window_latency
from soak.analysis.memory import MemorySeries, SwapMemory, swap_memory
from soak.analysis.projection import project
from soak.analysis.timeline import Timeline, build_timeline
from soak.analysis.verdict import (
    INCONCLUSIVE,
    SettledSeries,
    Verdict,
    classify_run,
    default_threshold_mb,
)
from soak.store.run_dir import RunDir

SCHEMA = "soak.summary/1"


def analyse_run(run_dir: Path) -> dict:
    """The summary dict of a run directory; UsageError if it is not one."""
    inputs = read_run(Path(run_dir))
    settings = inputs.settings
    size = next((v.model_size_bytes for v in inputs.variants if v.model_size_bytes), None)
    threshold = settings.threshold_mb or default_threshold_mb(size)
    verdicts = classify_run(
        {v.name: _settled_series(v, settings) for v in inputs.variants},
        threshold,
        settings.warmup_swaps,
    )
    variants = [analyse_variant(v, settings, threshold, verdicts[v.name]) for v in inputs.variants]
    summary = {
        "schema": SCHEMA,
        "status": run_status([v["status"] for v in variants]),
        "backend": settings.backend,
        "model": {"name": settings.model_name, "size_bytes": size},
        "variants": variants,
        "run_dir": str(run_dir),
        "metric": settings.metric,
        "threshold_mb": threshold,
        "warmup_swaps": settings.warmup_swaps,
        "swaps_planned": settings.swaps,
        "comparison": compare(variants, threshold),
        "soak_version": __version__,
    }
    return _clean(summary)


def write_summary(run_dir: Path) -> dict:
    """Analyse and write RUN_DIR/summary.json (atomically); returns the summary."""
    summary = analyse_run(run_dir)
    path = RunDir(Path(run_dir)).summary_json
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return summary


def run_status(statuses: list[str]) -> str:
    """Any failed variant fails the run; else any interrupted one (or none at all)."""
    if not statuses:
        return "interrupted"
    for status in ("failed", "interrupted"):
        if status in statuses:
            return status
    return "completed"


def _settled_series(v: VariantInputs, settings: RunSettings) -> SettledSeries:
    timeline = build_timeline(v.events)
    swaps = swap_memory(MemorySeries(v.memory, settings.metric), timeline)
    settled = [s for s in swaps if s.completed and s.retained_mb is not None]
    died = None
    if timeline.server_exit is not None:
        died = timeline.server_exit.detail or "the server exited"
    return SettledSeries(
        [s.index for s in settled],
        [s.retained_mb for s in settled if s.retained_mb is not None],
        died,
    )


def analyse_variant(
    v: VariantInputs, settings: RunSettings, threshold_mb: float, verdict: Verdict
) -> dict:
    timeline = build_timeline(v.events)
    series = MemorySeries(v.memory, settings.metric)
    swaps = swap_memory(series, timeline)
    settled = [s for s in swaps if s.completed and s.retained_mb is not None]
    verdict = _verdict(v, series, timeline, settings, verdict)

    baseline_mb = series.level_mb(timeline.baseline_t)
    final_mb = settled[-1].settled_mb if settled else baseline_mb
    basis, total_mb = _total_memory(series, timeline, settled)
    window_latency = swap_window_latency(v.latency, timeline)
    return {
        "name": v.name,
        "allocator": v.allocator,
        "allocator_verified": v.allocator_verified,
        "status": v.status,
        "swaps_completed": sum(s.completed for s in swaps),
        "memory": {
            "metric": settings.metric,
            "baseline_mb": baseline_mb,
            "peak_mb": series.peak_mb(),
            "final_mb": final_mb,
            "retained_mb": _minus(final_mb, baseline_mb),
            "retained_mb_per_swap": verdict.mb_per_swap,
            "verdict": verdict.verdict,
            "verdict_reason": verdict.reason,
            "threshold_mb": threshold_mb,
            "later_mb_per_swap": verdict.later_mb_per_swap,
            "level_mb": verdict.level_mb,
            "noise_mb": verdict.noise_mb,
            "swaps_judged": list(verdict.swaps_judged),
            "growth": verdict.growth,
            "kept": verdict.kept,
            "kept_mb": verdict.kept_mb,
            "kept_bound_mb": verdict.kept_bound_mb,
            "one_time_mb": verdict.one_time_mb,
            "control": verdict.control,
            "more_swaps": verdict.more_swaps,
            "rss_baseline_mb": series.level_mb(timeline.baseline_t, "rss_bytes"),
            "rss_final_mb": settled[-1].rss_settled_mb if settled else None,
            "total_basis": basis,
            "total_final_mb": total_mb,
            "settle_timeouts": sum(s.settle_timed_out for s in swaps),
        },
        "latency": dataclasses.asdict(latency_figures(v.latency, timeline)),
        "swaps": [_swap_entry(s, *window_latency.get(s.index, (None, 0))) for s in swaps],
        "library": v.library,
        "reason": v.reason,
        "server_exit": timeline.server_exit.detail if timeline.server_exit else None,
        "projection": project(
            verdict.verdict,
            verdict.mb_per_swap,
            total_mb,
            basis,
            settings.memory_limit_bytes,
            settings.swaps_per_day,
        ),
    }


def _verdict(
    v: VariantInputs,
    series: MemorySeries,
    timeline: Timeline,
    settings: RunSettings,
    verdict: Verdict,
) -> Verdict:
    """The run's verdict for this variant, unless it has no usable data at all."""
    if v.status == "failed" and timeline.server_exit is None:
        why = f"the variant failed: {v.reason or 'no reason recorded'}"
    elif v.memory.empty:
        why = "no readable samples in memory.csv (missing, empty, or without a t column)"
    elif not series.has(settings.metric):
        why = f"no {settings.metric} samples in memory.csv"
    elif timeline.baseline_t is None:
        why = "no baseline: memory never settled after the first load"
    else:
        return verdict
    return dataclasses.replace(verdict, verdict=INCONCLUSIVE, reason=why)


def _total_memory(series: MemorySeries, timeline: Timeline, settled: list[SwapMemory]):
    """What a memory limit applies to, at the last settled point: (column, MiB)."""
    if series.has("cgroup_working_set_bytes"):
        column = "cgroup_working_set_bytes"
        last = settled[-1].cgroup_working_set_settled_mb if settled else None
    else:
        column = "rss_bytes"
        last = settled[-1].rss_settled_mb if settled else None
    return column, last if settled else series.level_mb(timeline.baseline_t, column)


def _swap_entry(s: SwapMemory, p99_ms: float | None, errors: int) -> dict:
    return {
        "index": s.index,
        "version": s.version,
        "load_s": s.load_s,
        "settle_s": s.settle_s,
        "settled_mb": s.settled_mb,
        "peak_mb": s.peak_mb,
        "retained_mb": s.retained_mb,
        "increment_mb": s.increment_mb,
        "completed": s.completed,
        "settle_timed_out": s.settle_timed_out,
        "load_failed": s.load_failed,
        "rss_settled_mb": s.rss_settled_mb,
        "cgroup_anon_settled_mb": s.cgroup_anon_settled_mb,
        "cgroup_working_set_settled_mb": s.cgroup_working_set_settled_mb,
        "p99_ms": p99_ms,
        "errors": errors,
    }


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _clean(value):
    """JSON-safe: floats rounded to 3 places, NaN and infinities as null."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float):
        return round(value, 3) if math.isfinite(value) else None
    return value
