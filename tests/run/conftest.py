import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest


@pytest.fixture(scope="session")
def small_model(tmp_path_factory) -> Path:
    """A 2-version demo model of 8 MiB: a real SavedModel, quick to load."""
    from soak.driver.demo_model import write_demo_model

    return write_demo_model(tmp_path_factory.mktemp("model") / "demo", versions=2, size_mb=8)


def _soak_cli(*args, timeout=600, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "soak", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def _processes_mentioning(text: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if text in cmdline and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


@pytest.fixture
def soak_cli():
    """Run the `soak` command line as a user does; returns the CompletedProcess."""
    return _soak_cli


@pytest.fixture
def processes_mentioning():
    """Live processes whose command line mentions a text (e.g. a run dir)."""
    return _processes_mentioning


class BackgroundRun:
    """`soak run` in a child process, to be stopped mid-way by a test."""

    def __init__(self, out: Path, args: list[str], **popen: Any):
        self.out = out
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "soak", "run", "--out", str(out), "--quiet", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            **popen,
        )

    def wait_settled(self, variant: str, count: int, timeout_s: float = 300) -> None:
        """Until `count` settled events (the baseline counts) are on disk."""
        events = self.out / variant / "events.csv"
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if events.exists() and events.read_text().count(",settled,") >= count:
                return
            assert self.proc.poll() is None, self.proc.stderr.read()
            time.sleep(0.5)
        raise AssertionError(f"no {count} settled events in {events} after {timeout_s} s")


@pytest.fixture
def background_run():
    runs = []

    def start(out: Path, *args: str, **popen: Any) -> BackgroundRun:
        runs.append(BackgroundRun(out, list(args), **popen))
        return runs[-1]

    yield start
    for run in runs:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()
