"""`soak k8s` as a user runs it, and the Kubernetes API's own schemas to judge what it prints.

The schemas are kubernetes-validate's: the JSON schemas generated from the API server's
OpenAPI document, one set per Kubernetes version, in their strict form (no field the API
does not define). Every manifest is checked against every version the package ships.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

from soak.cli.main import main

DATA = Path(__file__).resolve().parents[1] / "analysis" / "data" / "real_runs"
VERSIONS = sorted(set(all_versions()), key=lambda v: tuple(map(int, v.split("."))))


def _assert_valid(document: dict) -> None:
    """Raises kubernetes_validate.ValidationError unless every shipped version accepts it."""
    for version in VERSIONS:
        kubernetes_validate.validate(document, version, strict=True)


@pytest.fixture
def assert_valid():
    """Check a manifest against the Kubernetes API's schema of every version shipped."""
    return _assert_valid


class K8s:
    """`soak k8s ARGS`, in this process (main(), as the console script calls it)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]):
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, list[dict], str]:
        """(exit code, the YAML documents printed, stderr)."""
        code = main(["k8s", *map(str, args)])
        out, err = self.capsys.readouterr()
        return code, [d for d in yaml.safe_load_all(out) if d is not None], err

    def fails(self, *args: str) -> str:
        """The one line of a `soak k8s` that must fail with exit 2, printing nothing else."""
        code = main(["k8s", *map(str, args)])
        out, err = self.capsys.readouterr()
        assert code == 2, (code, out, err)
        assert out == ""
        assert err.startswith("soak: ") and err.count("\n") == 1, err
        return err


@pytest.fixture
def k8s(capsys: pytest.CaptureFixture[str]) -> K8s:
    return K8s(capsys)


def _soak_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """soak as a separate process (python -m soak), as a shell pipeline runs it."""
    return subprocess.run(
        [sys.executable, "-m", "soak", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def soak_cli():
    """Run soak as a separate process: (args) -> CompletedProcess."""
    return _soak_cli


@pytest.fixture(scope="session")
def analysed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real default run (glibc, jemalloc) with its summary.json, as `soak report` writes it."""
    run = tmp_path_factory.mktemp("runs") / "default-run"
    shutil.copytree(DATA / "default-run", run)
    done = _soak_cli("report", run)
    assert done.returncode == 0, done.stderr
    return run
