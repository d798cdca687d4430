"""What the plugin keeps across a session: its runs, and each test's reports."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from soak.plugin.result import SoakResult


@dataclass
class SessionRun:
    """A run of the session, for the summary at its end."""

    nodeid: str
    result: SoakResult
    owned: bool  # the plugin named its run dir (and may remove it)
    removed: bool = False


RUNS = pytest.StashKey[list[SessionRun]]()
REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()
