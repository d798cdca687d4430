"""A run directory's raw data -> one `RunResult` (soak/analysis/result.py).

`analyse_run` reads run.toml, variant.json and the CSVs once and does all the
analysis: per-swap figures, verdicts, latency, the server's CPU (cpu.py), the
pod's memory and its projection to the limit, each variant against the reference
and the recommendation (comparison.py), why memory is kept (attribution.py: its
clause is added to a leak's or plateau's reason), and the plot data of the report.
It is pure (reads only) and works on a run that is still going, was interrupted, or
crashed: what did not happen is reported as missing (None), never guessed.
summary_json.py writes the result to disk.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path
from typing import Any, TypeVar

from soak import __version__
from soak.analysis.attribution import attribute, explain
from soak.analysis.comparison import compare, with_comparisons
from soak.analysis.cpu import cpu_figures, per_swap_cpu
from soak.analysis.identity import production_change, run_identity, variant_identity
from soak.analysis.inputs import VariantInputs, read_run
from soak.analysis.latency import (
    LatencySeries,
    RequestWindows,
    latency_figures,
    request_windows,
    steady_window_latency,
    swap_window_latency,
)
from soak.analysis.memory import MemorySeries, swap_memory
from soak.analysis.noise import noise_of
from soak.analysis.plot_data import variant_timeline
from soak.analysis.pod_memory import pod_memory
from soak.analysis.projection import project
from soak.analysis.result import (
    MemoryResult,
    Model,
    RunResult,
    SwapResult,
    VariantResult,
    VariantTimeline,
)
from soak.analysis.swap_budget import AUTO
from soak.analysis.tfs_metrics import per_swap_ms
from soak.analysis.timeline import Timeline, build_timeline
from soak.analysis.verdict import (
    INCONCLUSIVE,
    SettledSeries,
    Verdict,
    classify_run,
    default_threshold_mb,
)
from soak.config.settings import RunConfig
from soak.store.records import Status

DECIMALS = 3  # figures are rounded to this many places, as summary.json holds them


def analyse_run(run_dir: Path) -> RunResult:
    """The analysis of a run directory; UsageError if it is not one."""
    inputs = read_run(Path(run_dir))
    settings = inputs.config
    size = next((v.model_size_bytes for v in inputs.variants if v.model_size_bytes), None)
    threshold = settings.threshold_mb or default_threshold_mb(size)
    measured = [_measure(v, settings) for v in inputs.variants]
    verdicts = classify_run(
        {m.inputs.name: m.settled_series() for m in measured}, threshold, settings.warmup_swaps
    )
    variants = with_comparisons(
        [analyse_variant(m, settings, threshold, verdicts[m.inputs.name]) for m in measured],
        threshold,
        size,
    )
    result = RunResult(
        status=run_status([v.status for v in variants]),
        backend=settings.backend,
        model=Model(settings.model_name, size),
        variants=variants,
        run_dir=str(run_dir),
        metric=settings.metric,
        threshold_mb=threshold,
        warmup_swaps=settings.warmup_swaps,
        swaps_planned=settings.swaps
        if inputs.recorded and isinstance(settings.swaps, int)
        else None,
        max_swaps=settings.max_swaps if settings.swaps == AUTO else None,
        comparison=compare(variants, threshold),
        soak_version=__version__,
        started_t=min(
            (m.timeline.started_t for m in measured if m.timeline.started_t), default=None
        ),
        finished_t=max((t for m in measured if (t := m.last_t) is not None), default=None),
        identity=run_identity(settings, inputs.environment),
        environment=inputs.environment,
    )
    result = rounded(result)  # explained from the figures as summary.json holds them
    return dataclasses.replace(result, variants=tuple(_completed(v) for v in result.variants))


def run_status(statuses: list[str]) -> str:
    """Any failed variant fails the run; else any interrupted one (or none at all)."""
    if not statuses:
        return Status.INTERRUPTED
    for status in (Status.FAILED, Status.INTERRUPTED):
        if status in statuses:
            return status
    return Status.COMPLETED


@dataclasses.dataclass(frozen=True)
class _Measured:
    """One variant's data, read and cut into swaps: what its verdict and figures come from."""

    inputs: VariantInputs
    timeline: Timeline
    series: MemorySeries
    requests: LatencySeries
    windows: RequestWindows
    swaps: tuple[SwapResult, ...]

    @property
    def last_t(self) -> float | None:
        """The variant's last event (its stop, normally)."""
        return max((e.t for e in self.inputs.events), default=None)

    @property
    def settled(self) -> list[SwapResult]:
        return [s for s in self.swaps if s.completed and s.retained_mb is not None]

    def settled_series(self) -> SettledSeries:
        exit_ = self.timeline.server_exit
        return SettledSeries(
            [s.index for s in self.settled],
            [s.retained_mb for s in self.settled if s.retained_mb is not None],
            (exit_.detail or "the server exited") if exit_ is not None else None,
        )


def _measure(v: VariantInputs, settings: RunConfig) -> _Measured:
    timeline = build_timeline(v.events)
    series = MemorySeries(v.memory, settings.metric)
    requests = LatencySeries(v.latency)
    windows = request_windows(requests, timeline)
    window_latency = swap_window_latency(requests, timeline, windows)
    steady_latency = steady_window_latency(requests, timeline, windows)
    load_ms, warmup_ms = (per_swap_ms(v.metrics, f) for f in ("tfs_load_ms", "tfs_warmup_ms"))
    cpu = per_swap_cpu(series, requests, timeline)
    firsts = {index: ms for index, _, ms in windows.firsts}
    # SwapResult(**...) is dataclasses.replace without its checks: a long run has thousands
    swaps = tuple(
        SwapResult(
            **vars(s)
            | {
                "p99_ms": p99,
                "errors": errors,
                "steady_p99_ms": steady_latency.get(s.index),
                "tfs_load_ms": load_ms.get(s.index),
                "tfs_warmup_ms": warmup_ms.get(s.index),
                "cpu_s": cpu_s,
                "steady_cpu_ms_per_request": steady_cpu,
                "first_after_ms": firsts.get(s.index),
            }
        )
        for s in swap_memory(series, timeline)
        for p99, errors in [window_latency.get(s.index, (None, 0))]
        for cpu_s, steady_cpu in [cpu.get(s.index, (None, None))]
    )
    return _Measured(v, timeline, series, requests, windows, swaps)


def analyse_variant(
    m: _Measured, settings: RunConfig, threshold_mb: float, verdict: Verdict
) -> VariantResult:
    """A variant's result, given its verdict from the run's verdicts (classify_run)."""
    v, timeline, series, requests, swaps = m.inputs, m.timeline, m.series, m.requests, m.swaps
    settled = m.settled
    verdict = _usable(verdict, v, series, timeline, settings)
    attribution = attribute(v.breakdown, v.events, v.probe, verdict, settings.metric)

    baseline_mb = series.level_mb(timeline.baseline_t)
    final_mb = settled[-1].settled_mb if settled else baseline_mb
    basis, total_mb = _total_memory(series, timeline, settled)
    swaps_completed = sum(s.completed for s in swaps)
    pod = pod_memory(series, verdict, swaps_completed, settings.plan_swaps, timeline.stopped_t)
    return VariantResult(
        name=v.name,
        allocator=v.allocator,
        allocator_verified=v.allocator_verified,
        status=v.status,
        swaps_completed=swaps_completed,
        memory=MemoryResult(
            metric=settings.metric,
            baseline_mb=baseline_mb,
            peak_mb=series.peak_mb(),
            final_mb=final_mb,
            retained_mb=_minus(final_mb, baseline_mb),
            verdict=verdict,
            threshold_mb=threshold_mb,
            rss_baseline_mb=series.level_mb(timeline.baseline_t, "rss_bytes"),
            rss_final_mb=settled[-1].rss_settled_mb if settled else None,
            total_basis=basis,
            total_final_mb=total_mb,
            settle_timeouts=sum(s.settle_timed_out for s in swaps),
        ),
        latency=dataclasses.replace(
            latency_figures(requests, m.windows, settings.protocol), split=v.split
        ),
        swaps=swaps,
        library=v.library,
        reason=v.reason,
        server_exit=timeline.server_exit.detail if timeline.server_exit else None,
        projection=project(pod, basis, settings.memory_limit_bytes, settings.swaps_per_day),
        timeline=variant_timeline(series, requests, timeline, m.windows, v.breakdown),
        swaps_done=timeline.swaps_done,
        attribution=attribution,
        cpu=cpu_figures(swaps),
        pod_memory=pod,
        production_change=production_change(v.spec),
        identity=variant_identity(settings, v.name, v.allocator, v.spec),
    )


def _completed(v: VariantResult) -> VariantResult:
    """What comes from the figures as summary.json holds them: the run's noise in them, and
    the verdict's reason with what the probe says about it (the verdict stays as it is)."""
    v = dataclasses.replace(v, noise=rounded(noise_of(v)))
    verdict = v.memory.verdict
    why = explain(v.attribution, verdict, v.allocator, v.memory.threshold_mb, v.live_leak)
    if why is None:
        return v
    explained = dataclasses.replace(verdict, reason=f"{verdict.reason}; {why}")
    return dataclasses.replace(v, memory=dataclasses.replace(v.memory, verdict=explained))


def _usable(
    verdict: Verdict,
    v: VariantInputs,
    series: MemorySeries,
    timeline: Timeline,
    settings: RunConfig,
) -> Verdict:
    """The verdict, unless the variant has no usable data at all."""
    if v.status == Status.FAILED and timeline.server_exit is None:
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


def _total_memory(
    series: MemorySeries, timeline: Timeline, settled: list[SwapResult]
) -> tuple[str, float | None]:
    """What a memory limit applies to, at the last settled point: (column, MiB)."""
    if series.has("cgroup_working_set_bytes"):
        column = "cgroup_working_set_bytes"
        last = settled[-1].cgroup_working_set_settled_mb if settled else None
    else:
        column = "rss_bytes"
        last = settled[-1].rss_settled_mb if settled else None
    return column, last if settled else series.level_mb(timeline.baseline_t, column)


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


T = TypeVar("T")


def rounded(value: T) -> T:
    """Figures as summary.json holds them: floats to DECIMALS places, NaN and infinities None.

    Plot data (VariantTimeline) is left as it is.
    """
    return _rounded(value)


_AS_THEY_ARE = {int, bool, str, type(None)}  # what _rounded leaves as it is


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, DECIMALS) if math.isfinite(value) else None
    if isinstance(value, tuple):
        return tuple(_rounded(v) for v in value)
    if isinstance(value, VariantTimeline):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # a long run has thousands of swaps of 20 figures: each rounded here, not in a call
        changes = {}
        for name in _field_names(type(value)):
            v = getattr(value, name)
            if type(v) is float:
                changes[name] = round(v, DECIMALS) if math.isfinite(v) else None
            elif type(v) in _AS_THEY_ARE:
                changes[name] = v
            else:
                changes[name] = _rounded(v)
        return type(value)(**changes)  # dataclasses.replace, without its checks per call
    return value


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))
