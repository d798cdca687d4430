"""The verdict table printed at the end of `soak run` and by `soak report`; `soak history`."""

from __future__ import annotations

import datetime as dt
import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from soak.analysis.comparison import FIGURE_NAMES
from soak.analysis.result import RunResult, VariantComparison, VariantResult
from soak.analysis.tune import FIGURE_TITLES
from soak.report.format import number
from soak.store.records import MIB, Status
from soak.store.run_dir import RunDir

if TYPE_CHECKING:
    from soak.analysis.tune import TuneResult
    from soak.history.location import HistoryLocation
    from soak.history.store import RecordedRun, RecordedVariant, Trend

COLUMNS = (
    "variant", "allocator", "status", "swaps", "baseline MiB", "retained MiB", "level MiB",
    "MiB/swap", "verdict", "steady p99", "swap p99", "errors", "CPU ms/req", "pod MiB",
)  # fmt: skip
# When the variants split requests differently (--split): their latency side by side.
SPLIT_COLUMNS = ("variant", "split", "steady p50", "steady p99", "swap p99")


def summary_table(result: RunResult) -> str:
    """A plain-text table (one row per variant), the reasons, and the recommendation."""
    lines = _table(COLUMNS, [_row(v) for v in result.variants])
    lines.append("")
    if len({v.latency.split for v in result.variants}) > 1:
        lines += [*_table(SPLIT_COLUMNS, [_split_row(v) for v in result.variants]), ""]
    for v in result.variants:
        lines.append(f"{v.name}: {v.verdict_text}: {v.memory.verdict.reason}")
        lines.append(f"{v.name}: {attribution_line(v)}")
        if v.comparison is not None:
            lines.append(f"{v.name}: {comparison_line(v)}")
        if v.swaps_done:
            lines.append(f"{v.name}: {v.swaps_done}")
        if v.projection is not None and v.projection.note:
            lines.append(f"{v.name}: memory limit: {v.projection.note}")
        if v.status == Status.FAILED and v.reason:
            lines.append(f"{v.name}: failed: {v.reason}")
    control = result.comparison.control
    if control is not None:
        others = ", ".join(
            f"{name} {number(mb, '+.1f', missing='?')} MiB"
            for name, mb in result.comparison.retained_vs_control_mb
            if name != control
        )
        lines.append(f"retained vs the control ({control}): {others}")
    if result.comparison.recommendation:
        head, *fixes = result.comparison.recommendation.splitlines()
        lines.append(f"recommendation: {head}")
        lines += [f"  {n}. {line}" for n, line in enumerate(fixes, 1)]
    lines.append(  # where the run went: its report, in its run dir
        f"run {result.status}: {RunDir(Path(result.run_dir)).report_html} "
        f"(metric {result.metric}, threshold {result.threshold_mb:.1f} MiB per swap)"
    )
    return "\n".join(lines)


def attribution_line(v: VariantResult) -> str:
    """Why memory is kept, in one line: live / held / non-heap at the verdict's level, and
    what came back on the release; or why the probe was off."""
    a = v.attribution
    if not a.on:
        return f"attribution off: {a.off_reason}"
    slope = number(a.live_mb_per_swap, "+.2f", suffix=" MiB/swap", missing="")
    live = number(a.live_mb, "+.1f", suffix=" MiB", missing="?")
    parts = [
        f"live {live}" + (f" ({slope})" if slope else ""),
        f"held {number(a.held_mb, '+.1f', suffix=' MiB', missing='?')}",
        f"non-heap {number(a.non_heap_mb, '+.1f', suffix=' MiB', missing='?')}",
    ]
    if a.released_mb is not None:
        call = a.release_call or "release"
        parts.append(
            f"released on {call} {number(a.released_mb, '.1f', suffix=' MiB')}, "
            f"left {number(a.left_after_release_mb, '+.1f', suffix=' MiB', missing='?')}"
        )
    else:
        parts.append("no release")
    seen = f" ({a.allocator_seen})" if a.allocator_seen else ""
    return f"attribution{seen}: " + ", ".join(parts)


def comparison_line(v: VariantResult) -> str:
    """The variant against the reference: each figure's shift, 95 % interval and label."""
    c = v.comparison
    assert c is not None
    parts = []
    for figure in VariantComparison.FIGURES:
        s = c.figure(figure)
        unit = " MiB" if figure == "kept_mb" else " ms"
        spec = "+.1f" if figure != "cpu_ms_per_request" else "+.2f"
        if s.shift is None:
            parts.append(f"{FIGURE_NAMES[figure]} -")
            continue
        interval = f" [{number(s.low, spec)}, {number(s.high, spec)}]" if s.low is not None else ""
        label = s.label or "too few values"
        parts.append(f"{FIGURE_NAMES[figure]} {number(s.shift, spec)}{unit}{interval} {label}")
    return f"vs {c.reference}: " + ", ".join(parts)


def _table(columns: tuple[str, ...], body: list[tuple[str, ...]]) -> list[str]:
    """Left-aligned columns under a header and a rule."""
    rows = [columns, *body]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _split_row(v: VariantResult) -> tuple[str, ...]:
    latency = v.latency
    return (
        v.name,
        str(latency.split),
        *(
            number(ms, ".1f", suffix=" ms", missing="-")
            for ms in (latency.steady_p50_ms, latency.steady_p99_ms, latency.swap_p99_ms)
        ),
    )


def _row(v: VariantResult) -> tuple[str, ...]:
    memory, latency = v.memory, v.latency
    allocator = v.allocator + ("" if v.allocator_verified else " (unverified)")
    return (
        v.name,
        allocator,
        v.status,
        str(v.swaps_completed),
        number(memory.baseline_mb, ".1f", missing="-"),
        number(memory.retained_mb, "+.1f", missing="-"),
        number(memory.verdict.level_mb, "+.1f", missing="-"),
        number(memory.retained_mb_per_swap, ".2f", missing="-"),
        v.verdict_text,
        number(latency.steady_p99_ms, ".1f", suffix=" ms", missing="-"),
        number(latency.swap_p99_ms, ".1f", suffix=" ms", missing="-"),
        str(latency.errors),
        number(v.cpu.steady_ms_per_request, ".2f", missing="-"),
        number(v.pod_memory_mb, ".0f", missing="-"),
    )


# --- soak history ------------------------------------------------------------------------

HISTORY_COLUMNS = (
    "started (UTC)", "status", "verdict", "retained", "level", "MiB/swap", "steady p99",
    "swap p99", "errors", "swaps", "run dir",
)  # fmt: skip
SPARKS = "▁▂▃▄▅▆▇█"
TREND_FIGURES = (  # (RecordedVariant field, label, format, unit)
    ("retained_mb", "retained", "+.1f", " MiB"),
    ("retained_mb_per_swap", "MiB/swap", ".2f", ""),
    ("steady_p99_ms", "steady p99", ".1f", " ms"),
    ("swap_p99_ms", "swap p99", ".0f", " ms"),
    ("cpu_ms_per_request", "CPU ms/req", ".2f", ""),
    ("pod_memory_mb", "pod", ".0f", " MiB"),
)


def history_table(
    runs: Sequence[RecordedRun], path: HistoryLocation | Path, last: int | None = None
) -> str:
    """`soak history`: per variant, config and model, its runs (oldest first) and the trend."""
    from soak.history.store import trends

    groups = trends(runs, last)
    if not groups:
        return f"{path}: no runs recorded (that match)"
    models = sorted({r.model_name for r in runs})
    lines = [f"{path}: {len(runs)} runs, model {', '.join(models)}"]
    for trend in groups:
        size = trend.model_size_bytes
        size_text = f", {size / MIB:.1f} MiB" if size else ""
        lines += [
            "",
            f"{trend.variant}  model {trend.model_name} ({trend.model_path}{size_text})  "
            f"config {trend.config_hash}  {len(trend.points)} runs",
        ]
        columns: tuple[str, ...] = HISTORY_COLUMNS
        rows: list[tuple[str, ...]] = [_history_row(run, v) for run, v in trend.points]
        args = [_server_args(run, v) for run, v in trend.points]
        if any(args):
            columns = (*columns, "server args")
            rows = [(*row, a) for row, a in zip(rows, args, strict=True)]
        rows = [columns, *rows]
        widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
        for n, row in enumerate(rows):
            cells = [
                cell.ljust(w) if i in (0, 1, 2) or i >= 10 or n == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ]
            lines.append("  " + "  ".join(cells).rstrip())
        lines.append("  trend: " + "  ".join(_trend(trend, *f) for f in TREND_FIGURES))
        lines.append("  " + _last_vs_before(trend))
    return "\n".join(lines)


def sparkline(values: Sequence[float | None]) -> str:
    """One block character per value (a space for none), scaled over the values and zero."""
    known = [v for v in values if v is not None]
    lo, hi = min(0.0, *known), max(0.0, *known)  # from zero: small changes stay small
    scale = (len(SPARKS) - 1) / (hi - lo) if hi - lo > 1e-9 else 0.0
    return "".join(" " if v is None else SPARKS[round((v - lo) * scale)] for v in values)


def _history_row(run: RecordedRun, v: RecordedVariant) -> tuple[str, ...]:
    return (
        _utc(run.started_t),
        v.status,
        v.verdict,
        number(v.retained_mb, "+.1f", missing="-"),
        number(v.level_mb, "+.1f", missing="-"),
        number(v.retained_mb_per_swap, ".2f", missing="-"),
        number(v.steady_p99_ms, ".1f", suffix=" ms", missing="-"),
        number(v.swap_p99_ms, ".0f", suffix=" ms", missing="-"),
        str(v.errors),
        str(v.swaps_completed),
        run.run_dir,
    )


def _server_args(run: RecordedRun, v: RecordedVariant) -> str:
    """The server flags a run gave this variant (the run's, then the variant's own)."""
    return " ".join(json.loads(run.server_args or "[]") + json.loads(v.server_args or "[]"))


def _trend(trend: Trend, name: str, label: str, spec: str, unit: str) -> str:
    values = [getattr(v, name) for _, v in trend.points]
    known = [x for x in values if x is not None]
    if not known:
        return f"{label} -"
    return f"{label} {sparkline(values)} {format(known[-1], spec)}{unit}"


def _last_vs_before(trend: Trend) -> str:
    """The newest completed run against the median of the completed ones before it."""
    done = [(run, v) for run, v in trend.points if v.status == Status.COMPLETED]
    if len(done) < 2:
        return "last vs before: needs 2 completed runs"
    before, (_, newest) = done[:-1], done[-1]
    parts = []
    for name, label, spec, unit in TREND_FIGURES:
        previous = [x for _, v in before if (x := getattr(v, name)) is not None]
        now = getattr(newest, name)
        if now is None or not previous:
            continue
        median = statistics.median(previous)
        parts.append(f"{label} {format(now, spec)} vs {format(median, spec)}{unit}")
    runs = "run" if len(before) == 1 else f"{len(before)} runs"
    return f"last vs the median of the {runs} before: " + ", ".join(parts)


def _utc(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M")


def tune_table(result: TuneResult) -> str:
    """Per recipe: its advice, then each variant's effects against the reference."""
    lines = []
    for recipe in result.recipes:
        where = f" in {recipe.run_dir}" if recipe.run_dir else ""
        lines.append(f"{recipe.name} ({recipe.status}{where}): {recipe.advice}")
        for v in recipe.variants[1:]:
            parts = []
            for e in v.effects:
                s, title = e.shift, FIGURE_TITLES[e.figure]
                if s.shift is None:
                    parts.append(f"{title} -")
                    continue
                interval = f" [{number(s.low, '+.1f')}, {number(s.high, '+.1f')}]"
                shown = interval if s.low is not None else ""
                label = e.label or "too few values"
                parts.append(f"{title} {number(s.shift, '+.1f')} {e.unit}{shown} {label}")
            effects = ", ".join(parts) if parts else f"not compared ({v.status})"
            lines.append(f"  {v.name} vs {recipe.reference}: {effects}")
    if result.settings.changes:
        lines.append("recommended: " + "; ".join(result.settings.changes))
    else:
        lines.append("recommended: nothing: no recipe helps without hurting here")
    return "\n".join(lines)
