"""scripts/ensure-postgres: what the PostgreSQL tests need, installed once (scripts/test
runs it before the suite)."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ensure-postgres"


def test_ensure_postgres_leaves_a_server_and_its_user():
    installed = list(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if os.geteuid() != 0 and not installed:
        pytest.skip("PostgreSQL is not installed and installing it needs root")
    done = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert list(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if os.geteuid() == 0:
        assert pwd.getpwnam("soak-pg").pw_uid != 0
    again = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert (again.returncode, again.stderr) == (0, "")  # nothing left to do
