"""summary.json (`soak.summary/1`, docs/contract.md#summaryjson) <-> `RunResult`: the one place
that knows its keys.

`to_dict` lays the result out as summary.json always had it; `from_dict` reads
it back, also from files of earlier versions (a missing key is None, or the
documented default). Nothing else in soak reads summary.json by key.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

from soak.analysis import json_text
from soak.analysis.analyse import default_threshold_mb, rounded
from soak.analysis.noise import noise_of
from soak.analysis.result import (
    NO_SHIFT,
    PROBE_NOT_RECORDED,
    SCHEMA,
    Attribution,
    Comparison,
    CpuFigures,
    LatencyFigures,
    MemoryResult,
    Model,
    Noise,
    PodMemory,
    Projection,
    RunIdentity,
    RunResult,
    Shift,
    SwapResult,
    VariantComparison,
    VariantIdentity,
    VariantResult,
)
from soak.analysis.verdict import INCONCLUSIVE, Verdict
from soak.config.settings import RunConfig
from soak.store.atomic import write_atomically
from soak.store.facts import Environment
from soak.store.records import Status
from soak.store.run_dir import RunDir

_DEFAULTS = RunConfig()
R = TypeVar("R")


# --- writing -----------------------------------------------------------------------------


def write(run_dir: Path, result: RunResult) -> Path:
    """Write RUN_DIR/summary.json (atomically) and return its path."""
    path = RunDir(Path(run_dir)).summary_json
    return write_atomically(path, json_text.dumps(to_dict(result)) + "\n")


def to_dict(result: RunResult) -> dict[str, Any]:
    return {
        "schema": result.schema,
        "status": result.status,
        "backend": result.backend,
        "model": {"name": result.model.name, "size_bytes": result.model.size_bytes},
        "variants": [_variant(v) for v in result.variants],
        "run_dir": result.run_dir,
        "metric": result.metric,
        "threshold_mb": result.threshold_mb,
        "warmup_swaps": result.warmup_swaps,
        "swaps_planned": result.swaps_planned,
        "max_swaps": result.max_swaps,
        "comparison": {
            "least_memory": result.comparison.least_memory,
            "least_latency": result.comparison.least_latency,
            "allocator_independent": result.comparison.allocator_independent,
            "recommendation": result.comparison.recommendation,
            "control": result.comparison.control,
            "retained_vs_control_mb": dict(result.comparison.retained_vs_control_mb),
            "reference": result.comparison.reference,
            "ranking": list(result.comparison.ranking),
        },
        "started_t": result.started_t,
        "finished_t": result.finished_t,
        "identity": _run_identity(result.identity) if result.identity else None,
        "environment": result.environment.to_json() if result.environment else None,
        "soak_version": result.soak_version,
    }


def _variant(v: VariantResult) -> dict[str, Any]:
    m, verdict = v.memory, v.memory.verdict
    return {
        "name": v.name,
        "allocator": v.allocator,
        "allocator_verified": v.allocator_verified,
        "status": v.status,
        "swaps_completed": v.swaps_completed,
        "memory": {
            "metric": m.metric,
            "baseline_mb": m.baseline_mb,
            "peak_mb": m.peak_mb,
            "final_mb": m.final_mb,
            "retained_mb": m.retained_mb,
            "retained_mb_per_swap": verdict.mb_per_swap,
            "verdict": verdict.verdict,
            "verdict_reason": verdict.reason,
            "threshold_mb": m.threshold_mb,
            "later_mb_per_swap": verdict.later_mb_per_swap,
            "level_mb": verdict.level_mb,
            "noise_mb": verdict.noise_mb,
            "swaps_judged": list(verdict.swaps_judged),
            "growth": verdict.growth,
            "later_growth": verdict.later_growth,
            "kept": verdict.kept,
            "kept_mb": verdict.kept_mb,
            "kept_bound_mb": verdict.kept_bound_mb,
            "one_time_mb": verdict.one_time_mb,
            "control": verdict.control,
            "more_swaps": verdict.more_swaps,
            "rss_baseline_mb": m.rss_baseline_mb,
            "rss_final_mb": m.rss_final_mb,
            "total_basis": m.total_basis,
            "total_final_mb": m.total_final_mb,
            "settle_timeouts": m.settle_timeouts,
        },
        "latency": _fields(v.latency),
        "swaps": [_fields(s) for s in v.swaps],
        "library": v.library,
        "reason": v.reason,
        "server_exit": v.server_exit,
        "swaps_done": v.swaps_done,
        "projection": _fields(v.projection) if v.projection else None,
        "attribution": _attribution(v.attribution),
        "cpu": _cpu(v.cpu),
        "pod_memory_mb": v.pod_memory_mb,
        "pod_memory": _fields(v.pod_memory) if v.pod_memory else None,
        "comparison": _comparison(v.comparison) if v.comparison else None,
        "production_change": v.production_change,
        "noise": _fields(v.noise),
        "identity": _variant_identity(v.identity) if v.identity else None,
    }


def _run_identity(i: RunIdentity) -> dict[str, Any]:
    return _fields(i) | {"server_args": list(i.server_args)}


def _variant_identity(i: VariantIdentity) -> dict[str, Any]:
    return {"config_hash": i.config_hash, "server_args": list(i.server_args), "env": dict(i.env)}


def _cpu(c: CpuFigures) -> dict[str, Any]:
    """The keys of docs/contract.md#fixes first, then soak's own."""
    spread = c.steady_ms_per_request_spread
    return {
        "steady_ms_per_request": c.steady_ms_per_request,
        "steady_ms_per_request_spread": list(spread) if spread is not None else None,
        "swap_cpu_s": c.swap_cpu_s,
        "windows": c.windows,
        "swaps": c.swaps,
    }


def _comparison(c: VariantComparison) -> dict[str, Any]:
    """Per figure {"shift", "low", "high", "label"} (docs/contract.md#fixes), then soak's
    own keys."""
    return {"reference": c.reference} | {
        figure: _fields(c.figure(figure)) for figure in VariantComparison.FIGURES
    }


def _attribution(a: Attribution) -> dict[str, Any]:
    """The keys of docs/contract.md#allocator-probe first, then soak's own."""
    return {
        "probe": a.probe,
        "live_mb": a.live_mb,
        "held_mb": a.held_mb,
        "non_heap_mb": a.non_heap_mb,
        "released_mb": a.released_mb,
        "left_after_release_mb": a.left_after_release_mb,
        "live_mb_per_swap": a.live_mb_per_swap,
        "free_held_mb": a.free_held_mb,
        "allocator": a.allocator_seen,
        "release_call": a.release_call,
    }


def _fields(
    record: LatencyFigures | SwapResult | Projection | PodMemory | Shift | Noise | RunIdentity,
) -> dict[str, Any]:
    """A flat record under its field names, in field order (the summary.json keys)."""
    return {name: getattr(record, name) for name in record.__dataclass_fields__}


# --- reading -----------------------------------------------------------------------------


class NotASummary(ValueError):
    """The file is missing, not JSON, or not a `soak.summary/1` object."""


def read(run_dir: Path) -> RunResult:
    """RUN_DIR/summary.json as a RunResult; NotASummary if there is none that is sound."""
    path = RunDir(Path(run_dir)).summary_json
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NotASummary(f"{path}: {exc}") from None
    try:
        return from_dict(data)
    except (TypeError, ValueError, AttributeError) as exc:
        raise NotASummary(f"{path}: {exc}") from None


def from_dict(data: Any) -> RunResult:
    """A summary.json object as a RunResult (files of earlier versions too)."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise NotASummary(f"not a {SCHEMA} object")
    model = _dict(data.get("model"))
    size = _opt_int(model.get("size_bytes"))
    threshold = float(data.get("threshold_mb") or default_threshold_mb(size))
    comparison = _dict(data.get("comparison"))
    return RunResult(
        status=str(data.get("status", Status.INTERRUPTED)),
        backend=str(data.get("backend", _DEFAULTS.backend)),
        model=Model(str(model.get("name", _DEFAULTS.model_name)), size),
        variants=tuple(_read_variant(_dict(v), threshold) for v in data.get("variants") or []),
        run_dir=str(data.get("run_dir", "")),
        metric=str(data.get("metric", _DEFAULTS.metric)),
        threshold_mb=threshold,
        warmup_swaps=int(data.get("warmup_swaps", _DEFAULTS.warmup_swaps)),
        swaps_planned=_count(data.get("swaps_planned")),
        max_swaps=_opt_int(data.get("max_swaps")),
        comparison=Comparison(
            least_memory=comparison.get("least_memory"),
            least_latency=comparison.get("least_latency"),
            allocator_independent=bool(comparison.get("allocator_independent", False)),
            recommendation=str(comparison.get("recommendation") or ""),
            control=_opt_str(comparison.get("control")),
            retained_vs_control_mb=tuple(
                (str(k), _opt_float(v))
                for k, v in _dict(comparison.get("retained_vs_control_mb")).items()
            ),
            reference=_opt_str(comparison.get("reference")),
            ranking=tuple(str(name) for name in comparison.get("ranking") or []),
        ),
        soak_version=str(data.get("soak_version", "")),
        schema=SCHEMA,
        started_t=_opt_float(data.get("started_t")),
        finished_t=_opt_float(data.get("finished_t")),
        identity=_read_run_identity(data.get("identity")),
        environment=(
            Environment.from_json(data["environment"])
            if isinstance(data.get("environment"), dict)
            else None
        ),
    )


def _read_variant(v: dict[str, Any], threshold_mb: float) -> VariantResult:
    m = _dict(v.get("memory"))
    latency = _dict(v.get("latency"))
    projection = v.get("projection")
    swaps = tuple(
        _read_flat(
            SwapResult, s, completed=bool(s.get("completed", s.get("settled_mb") is not None))
        )
        for s in map(_dict, v.get("swaps") or [])
    )
    verdict = Verdict(
        verdict=str(m.get("verdict", INCONCLUSIVE)),
        reason=str(m.get("verdict_reason") or ""),
        mb_per_swap=_opt_float(m.get("retained_mb_per_swap")),
        later_mb_per_swap=_opt_float(m.get("later_mb_per_swap")),
        level_mb=_opt_float(m.get("level_mb")),
        noise_mb=_opt_float(m.get("noise_mb")),
        swaps_judged=tuple(int(i) for i in m.get("swaps_judged") or []),
        growth=_opt_str(m.get("growth")),
        later_growth=_opt_str(m.get("later_growth")),
        kept=_opt_str(m.get("kept")),
        kept_mb=_opt_float(m.get("kept_mb")),
        kept_bound_mb=_opt_float(m.get("kept_bound_mb")),
        one_time_mb=float(m.get("one_time_mb") or 0.0),
        control=_opt_str(m.get("control")),
        more_swaps=_opt_int(m.get("more_swaps")),
    )
    result = _read_flat(
        VariantResult,
        v,
        allocator=str(v.get("allocator", v.get("name", ""))),
        status=str(v.get("status", Status.INTERRUPTED)),
        swaps_completed=int(v.get("swaps_completed", sum(s.completed for s in swaps))),
        memory=_read_flat(
            MemoryResult,
            m,
            metric=str(m.get("metric", _DEFAULTS.metric)),
            verdict=verdict,
            threshold_mb=float(m.get("threshold_mb") or threshold_mb),
            total_basis=str(m.get("total_basis", "rss_bytes")),
        ),
        latency=_read_flat(
            LatencyFigures,
            latency,
            protocol=str(latency.get("protocol") or "rest"),  # files from before --protocol
            split=int(latency.get("split") or 1),  # files from before --split
        ),
        swaps=swaps,
        projection=_read_flat(Projection, projection) if isinstance(projection, dict) else None,
        timeline=None,
        attribution=_read_attribution(v.get("attribution")),
        cpu=_read_cpu(v.get("cpu")),
        pod_memory=_read_pod_memory(v.get("pod_memory"), v.get("pod_memory_mb")),
        comparison=_read_comparison(v.get("comparison")),
        production_change=_opt_str(v.get("production_change")),
        noise=_read_flat(Noise, _dict(v.get("noise"))),
        identity=_read_variant_identity(v.get("identity")),
    )
    if "noise" not in v:  # a file from before the noise: it comes from the swaps it holds
        result = dataclasses.replace(result, noise=rounded(noise_of(result)))
    return result


def _read_run_identity(value: Any) -> RunIdentity | None:
    if not isinstance(value, dict) or "config_hash" not in value:
        return None
    return _read_flat(
        RunIdentity, value, server_args=tuple(str(a) for a in value.get("server_args") or [])
    )


def _read_variant_identity(value: Any) -> VariantIdentity | None:
    if not isinstance(value, dict) or "config_hash" not in value:
        return None
    return VariantIdentity(
        config_hash=str(value["config_hash"]),
        server_args=tuple(str(a) for a in value.get("server_args") or []),
        env=tuple(sorted((str(k), str(x)) for k, x in _dict(value.get("env")).items())),
    )


def _read_cpu(value: Any) -> CpuFigures:
    """Files from before the CPU figures (or runs without cpu_s): every figure None."""
    c = _dict(value)
    spread = c.get("steady_ms_per_request_spread")
    return _read_flat(
        CpuFigures,
        c,
        steady_ms_per_request_spread=(
            (float(spread[0]), float(spread[1]))
            if isinstance(spread, list | tuple) and len(spread) == 2 and None not in spread
            else None
        ),
    )


def _read_pod_memory(value: Any, mb: Any) -> PodMemory | None:
    """None in files from before it (or when the run had no memory figure)."""
    if not isinstance(value, dict) or mb is None:
        return None
    return _read_flat(PodMemory, value, mb=float(mb))


def _read_comparison(value: Any) -> VariantComparison | None:
    """None for the reference, and in files from before the comparisons."""
    if not isinstance(value, dict) or value.get("reference") is None:
        return None
    return VariantComparison(
        reference=str(value["reference"]),
        **{
            figure: _read_flat(Shift, value[figure])
            if isinstance(value.get(figure), dict)
            else NO_SHIFT
            for figure in VariantComparison.FIGURES
        },
    )


def _read_attribution(value: Any) -> Attribution:
    """Files from before the probe have none: off, not recorded, every figure None."""
    a = _dict(value)
    return _read_flat(
        Attribution,
        a,
        probe=str(a.get("probe") or PROBE_NOT_RECORDED),
        allocator_seen=_opt_str(a.get("allocator")),
    )


def _read_flat(kind: type[R], d: dict[str, Any], **known: Any) -> R:
    """A flat record (its keys are its field names) from `d`: a missing key is None, 0 or ""."""
    hints = get_type_hints(kind)
    values = {
        f.name: known[f.name] if f.name in known else _CONVERT[hints[f.name]](d.get(f.name))
        for f in dataclasses.fields(kind)  # type: ignore[arg-type]
    }
    return kind(**values)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _count(value: Any) -> int | None:
    """A planned swap count; None for none or for 'auto' (written by early auto runs)."""
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


_CONVERT: dict[Any, Callable[[Any], Any]] = {
    int: lambda v: int(v or 0),
    float: lambda v: float(v or 0.0),
    bool: bool,
    str: lambda v: str(v or ""),
    int | None: _opt_int,
    float | None: _opt_float,
    str | None: _opt_str,
    bool | None: lambda v: None if v is None else bool(v),
}
