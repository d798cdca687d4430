"""The history page (`soak history --html FILE`): per variant, its runs over time.

Rendered with report.html's Jinja2 environment and style: one self-contained
page, figures as SVG data URIs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from soak.history.location import HistoryLocation
from soak.history.store import RecordedRun, Trend, trends
from soak.report import plots
from soak.report.html import TEMPLATES
from soak.store.atomic import write_atomically

TEMPLATES.filters.setdefault("fromjson", json.loads)


@dataclass(frozen=True)
class TrendView:
    trend: Trend
    memory: str  # figure data URI
    latency: str


def render(
    runs: Sequence[RecordedRun], path: HistoryLocation | Path, last: int | None = None
) -> str:
    views = [_view(t) for t in trends(runs, last)]
    template = TEMPLATES.get_template("history.html.j2")
    return template.render(views=views, runs=runs, path=str(path))


def write_history_page(
    out: Path,
    runs: Sequence[RecordedRun],
    path: HistoryLocation | Path,
    last: int | None = None,
) -> Path:
    """Write the page (atomically) and return its path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(out, render(runs, path, last))


def _view(trend: Trend) -> TrendView:
    t = [run.started_t for run, _ in trend.points]
    variants = [v for _, v in trend.points]
    thresholds = [v.threshold_mb for v in variants if v.threshold_mb]
    memory = plots.history_memory(
        t,
        [v.verdict for v in variants],
        [
            ("retained MiB", [v.retained_mb for v in variants]),
            ("level MiB", [v.level_mb for v in variants]),
            ("MiB per swap", [v.retained_mb_per_swap for v in variants]),
        ],
        thresholds[-1] if thresholds else None,
    )
    latency = plots.history_latency(
        t,
        [
            ("steady p99", [v.steady_p99_ms for v in variants]),
            ("swap p99", [v.swap_p99_ms for v in variants]),
            ("first after swap", [v.first_after_swap_ms for v in variants]),
        ],
    )
    return TrendView(trend, memory, latency)
