"""scripts/soak-nightly, the scheduled soak and the Job image's entrypoint: its exit code is
the failing step's (a real soak run; the SIGTERM it passes on: tests/docker/test_job_image.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "soak-nightly"


def nightly(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"  # this soak on PATH
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "PATH": path, "TMPDIR": str(cwd)},
    )


def test_a_config_that_is_wrong_is_exit_2_and_nothing_is_checked(tmp_path):
    (tmp_path / "soak.toml").write_text('swaps = "many"\n')
    result = nightly(cwd=tmp_path)  # soak.toml in the working dir by default
    assert result.returncode == 2
    assert result.stderr == (
        "soak: invalid configuration: swaps: swaps must be a whole number >= 1 or 'auto', "
        "not 'many'\n"
    )
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["soak.toml"]  # its temp file gone


def test_a_missing_config_is_exit_2(tmp_path):
    result = nightly(str(tmp_path / "nightly.toml"), "3", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (
        2,
        f"soak: config file not found: {tmp_path / 'nightly.toml'}\n",
    )
