import subprocess
import sys
from pathlib import Path

import psutil
import pytest


@pytest.fixture(scope="session")
def small_model(tmp_path_factory) -> Path:
    """A 2-version demo model of 8 MiB: a real SavedModel, quick to load."""
    from soak.demo_model import write_demo_model

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
