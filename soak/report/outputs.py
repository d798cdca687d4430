"""The files a run's analysis writes: summary.json and report.html, from one analysis."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from pathlib import Path

from soak.analysis import summary_json
from soak.analysis.analyse import analyse_run
from soak.analysis.result import RunResult
from soak.report.html import write_report


def write_outputs(run_dir: Path) -> RunResult:
    """Analyse RUN_DIR's raw data once; write summary.json and report.html from the result."""
    with _no_cycle_collection():
        result = analyse_run(Path(run_dir))
        summary_json.write(run_dir, result)
        write_report(run_dir, result)
    return result


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """The cyclic garbage collector off, then as it was: a day-long run's analysis makes a
    few hundred thousand objects (events, swaps, figures) and keeps them, and the passes
    the collector makes over them as they are made find next to nothing to free (0.1-0.3 s
    CPU of a 4.5 s report). What reference counts free is freed all the same."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
