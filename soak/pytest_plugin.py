"""The pytest gate: a `soak_run` fixture that runs soak, and assertions on its result.

    def test_hot_reload_releases_memory(soak_run):
        result = soak_run(model="models/ranker", allocators=["jemalloc"], swaps=8)
        result.assert_released(max_retained_mb_per_swap=2)
        result.assert_latency(max_swap_p99_ms=80)
        result.assert_no_regression(against_history=5)

A soak run takes minutes, so a test that uses `soak_run` (or is marked
`@pytest.mark.soak`) is skipped unless soak tests are asked for: `pytest
--soak`, `pytest -m soak`, or `soak = true` in the project's pytest ini.
Options: `--soak-backend`, `--soak-image` (defaults for the tests' runs),
`--soak-out DIR` (where run dirs go; default pytest's temp dir),
`--soak-keep` (keep the run dirs of passed tests too; a failed test's are
always kept and named in its failure), `--soak-history FILE` (where runs are
recorded; default history.sqlite beside the run dirs). A section at the end of
the session lists every run.

The limits are the ones of `soak check`, so a CI gate and a test agree.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the analysis (pandas) loads when a test uses soak, not with pytest
    from soak.analysis.result import RunResult, VariantResult
    from soak.gate import Figure, Limits

SKIP_REASON = "a soak test: run it with --soak or -m soak"


@dataclass(frozen=True)
class SoakResult:
    """An analysed run (`result`) plus assertions that name the variant, figure, limit and run dir.

    Each assertion is about its own figures: `assert_released` about memory,
    `assert_latency` about latency, `assert_no_regression` about the change
    against a baseline run or the history. All fail a variant that did not
    complete with its allocator verified, since its figures are not the allocator's.
    """

    run_dir: Path
    result: RunResult = field(repr=False)
    history: Path | None = None  # where the run was recorded

    @classmethod
    def from_run_dir(cls, run_dir: Path, history: Path | None = None) -> SoakResult:
        """The result of an earlier run, from its summary.json."""
        from soak.analysis import summary_json

        return cls(Path(run_dir), summary_json.read(Path(run_dir)), history)

    def variant(self, name: str) -> VariantResult:
        return self.result.variant(name)

    def assert_released(
        self,
        max_retained_mb_per_swap: float | None = None,
        max_retained_mb: float | None = None,
        variant: str | None = None,
    ) -> None:
        """Each variant gives its memory back (verdict released) and keeps within the limits."""
        from soak.gate import MEMORY_LIMITS, Limits

        limits = Limits(
            max_retained_mb_per_swap=max_retained_mb_per_swap, max_retained_mb=max_retained_mb
        )
        self._assert(variant, limits, MEMORY_LIMITS, leaks=True)

    def assert_latency(
        self,
        max_swap_p99_ms: float | None = None,
        max_errors: int | None = None,
        variant: str | None = None,
    ) -> None:
        """Each variant's swap p99 and error count are within the limits given."""
        from soak.gate import LATENCY_LIMITS, Limits

        limits = Limits(max_swap_p99_ms=max_swap_p99_ms, max_errors=max_errors)
        self._assert(variant, limits, LATENCY_LIMITS)

    def assert_no_regression(
        self,
        baseline: Path | str | SoakResult | None = None,
        *,
        against_history: int | None = None,
        max_regression_pct: float | None = None,
        variant: str | None = None,
    ) -> None:
        """No figure is worse than the baseline run's (a run dir or a SoakResult), or than the
        median of the last `against_history` comparable runs of this run's history, by more
        than `max_regression_pct` percent and the runs' measured noise (`soak check`'s rule).

        A variant with no comparable run in the history yet is not compared.
        """
        from soak.gate import baseline_references, history_references, regression_lines, selected
        from soak.regression import DEFAULT_REGRESSION_PCT

        if (baseline is None) == (against_history is None):
            raise TypeError("assert_no_regression takes a baseline or against_history=N")
        run = str(self.run_dir)
        variants = selected(self.result, variant)
        if baseline is not None:
            before = baseline if isinstance(baseline, SoakResult) else _load(Path(baseline))
            references = baseline_references(variants, before.result)
        else:
            assert against_history is not None
            if self.history is None:
                raise TypeError("this result was not recorded in a history: pass a baseline")
            references = history_references(
                self.result, self.run_dir, variants, against_history, self.history
            )[0]
        failures = [_not_completed(v, run) for v in variants if not _usable(v)]
        pct = DEFAULT_REGRESSION_PCT if max_regression_pct is None else max_regression_pct
        usable = [v for v in variants if _usable(v)]
        failures += regression_lines(usable, references, pct, run)
        if failures:
            pytest.fail("\n".join(failures), pytrace=False)

    def _assert(
        self, variant: str | None, limits: Limits, figures: dict[str, Figure], leaks: bool = False
    ) -> None:
        from soak.gate import limit_lines, selected, verdict_lines

        run = str(self.run_dir)
        failures = []
        for v in selected(self.result, variant):
            if not _usable(v):
                failures.append(_not_completed(v, run))
                continue
            if leaks:
                failures += verdict_lines(v, run)
            failures += limit_lines(v, limits, figures, run)
        if failures:
            pytest.fail("\n".join(failures), pytrace=False)


def _load(run_dir: Path) -> SoakResult:
    from soak.gate import load_result

    return SoakResult(run_dir, load_result(run_dir))


def _usable(v: VariantResult) -> bool:
    return v.status == "completed" and v.allocator_verified


def _not_completed(v: VariantResult, run: str) -> str:
    from soak.gate import failed_line

    if v.status == "failed":
        return failed_line(v, run)
    why = f" ({v.reason})" if v.reason else ""
    return f"{v.name}: status {v.status}, allocator_verified {v.allocator_verified}{why} in {run}"


# --- pytest hooks ------------------------------------------------------------------------


@dataclass
class _Run:
    """A run of the session, for the summary at its end."""

    nodeid: str
    result: SoakResult
    owned: bool  # the plugin named its run dir (and may remove it)
    removed: bool = False


_RUNS = pytest.StashKey[list[_Run]]()
_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


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
        metavar="FILE",
        help="the history file runs are recorded in (default: history.sqlite beside the run dirs)",
    )
    parser.addini("soak", "run the soak tests, as --soak does", type="bool", default=False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "soak: a soak test (minutes); skipped unless run with --soak or -m soak"
    )
    config.stash[_RUNS] = []


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
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    if report.failed:
        runs = [r for r in item.config.stash.get(_RUNS, []) if r.nodeid == item.nodeid]
        if runs:
            report.sections.append(
                ("soak run dirs (kept)", "\n".join(str(r.result.run_dir) for r in runs))
            )
    return report


@pytest.fixture
def soak_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., SoakResult]]:
    """Run soak with `soak run`'s settings as keyword arguments; returns a SoakResult.

    The keywords are the settings' names (`soak run --help`, `soak.settings`):
    model, allocators, swaps, backend, image, server_args, rps, ... The
    options --soak-backend, --soak-image and --soak-history give defaults.

    SIGINT or SIGTERM during the run stop it as they stop `soak run` (servers
    stopped, summary.json written as interrupted), then end the test session as
    Ctrl-C does (a KeyboardInterrupt).
    """
    from soak.config import from_keywords
    from soak.interrupts import Interrupted
    from soak.progress import Progress
    from soak.runner import run_soak

    config = request.config
    out = config.getoption("soak_out")
    base = Path(out) if out else tmp_path_factory.getbasetemp() / "soak"
    mine: list[_Run] = []

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
        outcome = run_soak(from_keywords(**settings), Progress(quiet=True))
        if outcome.signal is not None:
            raise Interrupted(outcome.signal)
        result = SoakResult(outcome.run_dir, outcome.result, outcome.history)
        entry = _Run(request.node.nodeid, result, owned)
        mine.append(entry)
        config.stash[_RUNS].append(entry)
        return result

    yield run
    reports = request.node.stash.get(_REPORTS, {})
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


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    runs = config.stash.get(_RUNS, [])
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
