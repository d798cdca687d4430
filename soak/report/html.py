"""report.html: one self-contained page (inline CSS, figures as data URIs).

Rendered from templates/report.html.j2 (Jinja2, autoescaped) with the run's
`RunResult`; the figures come from its plot data, so nothing is read again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from soak.analysis import comparison
from soak.analysis.plot_data import MAX_BARS, MAX_MARKERS
from soak.analysis.result import PROBE_NOT_RECORDED, RunResult, SwapResult
from soak.report import plots
from soak.report.format import number
from soak.store.atomic import write_atomically
from soak.store.run_dir import RunDir

OPEN_SWAP_TABLE_ROWS = 20  # longer per-swap tables start folded
MAX_SWAP_TABLE_ROWS = 200  # a longer run's table shows its first and last EDGE_ROWS swaps
EDGE_ROWS = 50

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("soak.report", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


def _when(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _table_rows(
    swaps: Sequence[SwapResult],
) -> tuple[Sequence[SwapResult], int, Sequence[SwapResult]]:
    """A per-swap table's rows: every swap, or a long run's first and last EDGE_ROWS and how
    many are left out between them (thousands of rows help no reader; summary.json has all)."""
    if len(swaps) <= MAX_SWAP_TABLE_ROWS:
        return swaps, 0, ()
    return swaps[:EDGE_ROWS], len(swaps) - 2 * EDGE_ROWS, swaps[-EDGE_ROWS:]


def _any_known(swaps: Sequence[SwapResult], figure: str) -> bool:
    """Whether any swap has `figure` (not None): its column is shown. In Python, not a
    template filter chain: a long run has thousands of swaps."""
    return any(getattr(s, figure) is not None for s in swaps)


TEMPLATES.filters["num"] = number
TEMPLATES.filters["when"] = _when
TEMPLATES.filters["table_rows"] = _table_rows
TEMPLATES.filters["any_known"] = _any_known


@dataclass(frozen=True)
class Plots:
    """The report's figures as data URIs; per variant, None where there is nothing to draw."""

    settled: str
    windows: str
    memory: tuple[str | None, ...]
    latency: tuple[str | None, ...]
    attribution: tuple[str | None, ...] = ()  # why memory is kept (the probe's figures)
    fixes: str | None = None  # kept MiB against CPU-ms per request (None: nothing to draw)


def write_report(run_dir: Path, result: RunResult) -> Path:
    """Write RUN_DIR/report.html (atomically) and return its path."""
    run = RunDir(Path(run_dir))
    return write_atomically(run.report_html, render(result))


def render(result: RunResult) -> str:
    template = TEMPLATES.get_template("report.html.j2")
    tfs_metrics = any(s.tfs_load_ms is not None for v in result.variants for s in v.swaps)
    return template.render(
        r=result,
        plots=draw(result),
        open_rows=OPEN_SWAP_TABLE_ROWS,
        max_bars=MAX_BARS,
        max_markers=MAX_MARKERS,
        tfs_metrics=tfs_metrics,
        not_recorded=PROBE_NOT_RECORDED,
        margins={  # in % (the practical margins of the comparison, soak/analysis/comparison.py)
            "kept_model": round(100 * comparison.KEPT_MARGIN_MODEL_SHARE),
            "cpu": round(100 * comparison.CPU_MARGIN_SHARE),
            "latency": round(100 * comparison.LATENCY_MARGIN_SHARE),
        },
    )


def draw(result: RunResult) -> Plots:
    memory: list[str | None] = []
    latency: list[str | None] = []
    attribution: list[str | None] = []
    for i, v in enumerate(result.variants):
        timeline = v.timeline
        has_memory = timeline is not None and bool(timeline.memory)
        has_latency = timeline is not None and bool(
            timeline.latency_ok.x or timeline.latency_errors.x
        )
        memory.append(
            plots.memory_timeline(timeline, v.memory.baseline_mb, i)
            if timeline is not None and has_memory
            else None
        )
        latency.append(
            plots.latency_timeline(timeline, i) if timeline is not None and has_latency else None
        )
        attribution.append(
            plots.attribution(timeline, i, v.attribution.release_call)
            if timeline is not None and v.attribution.on
            else None
        )
    return Plots(
        settled=plots.settled_per_swap(result.variants, result.warmup_swaps, result.threshold_mb),
        windows=plots.latency_windows(result.variants),
        memory=tuple(memory),
        latency=tuple(latency),
        attribution=tuple(attribution),
        fixes=plots.fixes(result.variants),
    )
