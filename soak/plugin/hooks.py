"""The plugin's hooks (options, marker, skipping, failure sections, the session summary);
pytest loads this module (the `pytest11` entry point), which registers the fixture too."""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import Any

import pytest

from soak.plugin.fixture import soak_run
from soak.plugin.session import REPORTS, RUNS

__all__ = ["soak_run"]  # a plugin's fixtures are found in its module

SKIP_REASON = "a soak test: run it with --soak or -m soak"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("soak", "soak runs (memory leaks across TF Serving hot swaps)")
    group.addoption(
        "--soak",
        action="store_true",
        default=None,
        help="run the soak tests (tests using soak_run or marked soak); skipped otherwise",
    )
    group.addoption(
        "--soak-backend",
        metavar="process|docker",
        help="backend of the tests' runs unless a test names one (default: soak run's)",
    )
    group.addoption(
        "--soak-image",
        metavar="IMAGE",
        help="Docker image of the tests' runs unless a test names one (default: soak run's)",
    )
    group.addoption(
        "--soak-out",
        metavar="DIR",
        help="where the run dirs go, one per run (default: pytest's temp dir)",
    )
    group.addoption(
        "--soak-keep",
        action="store_true",
        default=False,
        help="keep the run dirs of passed tests too (a failed test's are always kept)",
    )
    group.addoption(
        "--soak-history",
        metavar="FILE|URL",
        help="the history runs are recorded in: an SQLite file or a postgresql:// URL "
        "(default: $SOAK_HISTORY, else history.sqlite beside the run dirs)",
    )
    parser.addini("soak", "run the soak tests, as --soak does", type="bool", default=False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "soak: a soak test (minutes); skipped unless run with --soak or -m soak"
    )
    config.stash[RUNS] = []


@pytest.hookimpl(tryfirst=True)  # before -m selects: a test using soak_run is marked soak
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if "soak_run" in getattr(item, "fixturenames", ()):
            item.add_marker("soak")
        if item.get_closest_marker("soak") is not None and not soak_tests_asked(config):
            item.add_marker(skip)


def soak_tests_asked(config: pytest.Config) -> bool:
    """--soak, `soak = true` in the ini, or a -m expression that names soak (`-m soak`;
    `-m "not soak"` deselects them anyway)."""
    markexpr = config.getoption("markexpr", default="") or ""
    return bool(
        config.getoption("soak") or config.getini("soak") or re.search(r"\bsoak\b", markexpr)
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    if report.failed:
        runs = [r for r in item.config.stash.get(RUNS, []) if r.nodeid == item.nodeid]
        if runs:
            report.sections.append(
                ("soak run dirs (kept)", "\n".join(str(r.result.run_dir) for r in runs))
            )
    return report


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    runs = config.stash.get(RUNS, [])
    if not runs:
        return
    terminalreporter.section("soak runs")
    histories = set()
    for entry in runs:
        r = entry.result
        variants = ", ".join(
            f"{v.name} {v.verdict_text}"
            + (f" {v.memory.retained_mb:+.1f} MiB" if v.memory.retained_mb is not None else "")
            for v in r.result.variants
        )
        where = "removed (passed)" if entry.removed else str(r.run_dir)
        terminalreporter.write_line(
            f"{entry.nodeid}: run {r.result.status}: {variants or 'no variants'}: {where}"
        )
        if r.history is not None:
            histories.add(str(r.history))
    for path in sorted(histories):
        terminalreporter.write_line(f"recorded in {path} (soak history {path})")
