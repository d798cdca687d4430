"""The `soak_run` fixture: `soak run` from a test, its run dir kept only if the test fails."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from soak.plugin.result import SoakResult
from soak.plugin.session import REPORTS, RUNS, SessionRun


@pytest.fixture
def soak_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., SoakResult]]:
    """Run soak with `soak run`'s settings as keyword arguments; returns a SoakResult.

    The keywords are the settings' names (`soak run --help`, `soak.config.settings`):
    model, allocators, swaps, backend, image, server_args, rps, ... The
    options --soak-backend, --soak-image and --soak-history give defaults (and
    SOAK_HISTORY where neither a keyword nor --soak-history names the history).

    SIGINT or SIGTERM during the run stop it as they stop `soak run` (servers
    stopped, summary.json written as interrupted), then end the test session as
    Ctrl-C does (a KeyboardInterrupt).
    """
    from soak.cli.runner import run_soak
    from soak.config.resolve import from_keywords
    from soak.core.interrupts import Interrupted
    from soak.driver.progress import Progress

    config = request.config
    out = config.getoption("soak_out")
    base = Path(out) if out else tmp_path_factory.getbasetemp() / "soak"
    mine: list[SessionRun] = []

    def run(**settings: Any) -> SoakResult:
        for keyword, option in (
            ("backend", "soak_backend"),
            ("image", "soak_image"),
            ("history", "soak_history"),
        ):
            if config.getoption(option) and keyword not in settings:
                settings[keyword] = config.getoption(option)
        owned = "out" not in settings
        if owned:
            settings["out"] = str(_new_run_dir(base, request.node.name))
        settings.setdefault("quiet", True)
        outcome = run_soak(from_keywords(os.environ, **settings), Progress(quiet=True))
        if outcome.signal is not None:
            raise Interrupted(outcome.signal)
        result = SoakResult(outcome.run_dir, outcome.result, outcome.history)
        entry = SessionRun(request.node.nodeid, result, owned)
        mine.append(entry)
        config.stash[RUNS].append(entry)
        return result

    yield run
    reports = request.node.stash.get(REPORTS, {})
    passed = all(r.passed for r in reports.values()) and "call" in reports
    if passed and not config.getoption("soak_keep"):
        for entry in mine:
            if entry.owned:
                shutil.rmtree(entry.result.run_dir, ignore_errors=True)
                entry.removed = True


def _new_run_dir(base: Path, test_name: str) -> Path:
    """base/<test name>-<time>[-n]: a fresh run dir per run."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name).strip("_")[:80] or "soak"
    stem = base / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = stem, 1
    while path.exists():
        n += 1
        path = stem.with_name(f"{stem.name}-{n}")
    return path
