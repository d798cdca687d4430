"""tune.html: one self-contained page for a tune (Jinja2, the report's style)."""

from __future__ import annotations

from pathlib import Path

from soak.analysis.tune import FIGURE_TITLES, HELPS, HURTS, NO_EFFECT, TUNE_FIGURES, TuneResult
from soak.report import plots
from soak.report.html import TEMPLATES
from soak.store.atomic import write_atomically

TUNE_HTML = "tune.html"
_CLASSES = {HELPS: "c-better", NO_EFFECT: "c-same", HURTS: "c-worse"}


def write_tune_report(out_dir: Path, result: TuneResult) -> Path:
    """Write OUT_DIR/tune.html (atomically) and return its path."""
    return write_atomically(Path(out_dir) / TUNE_HTML, render(result))


def render(result: TuneResult) -> str:
    figures = {
        recipe.name: plots.per_swap_latency(recipe.run.variants)
        for recipe in result.recipes
        if recipe.run is not None
    }
    return TEMPLATES.get_template("tune.html.j2").render(
        t=result, figures=TUNE_FIGURES, titles=FIGURE_TITLES, classes=_CLASSES, plots=figures
    )
