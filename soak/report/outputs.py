"""The files a run's analysis writes: summary.json and report.html, from one analysis."""

from __future__ import annotations

from pathlib import Path

from soak.analysis import summary_json
from soak.analysis.analyse import analyse_run
from soak.analysis.result import RunResult
from soak.report.html import write_report


def write_outputs(run_dir: Path) -> RunResult:
    """Analyse RUN_DIR's raw data once; write summary.json and report.html from the result."""
    result = analyse_run(Path(run_dir))
    summary_json.write(run_dir, result)
    write_report(run_dir, result)
    return result
