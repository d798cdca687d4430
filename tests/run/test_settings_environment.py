"""A setting from the environment: SOAK_SERVER_BINARY names the server where neither a flag
nor the config file does (soak's Job image sets it to the image's tensorflow_model_server)."""

from __future__ import annotations

import os
import subprocess
import sys

from soak.cli.main import build_parser
from soak.config.resolve import from_keywords, resolve
from soak.config.settings import DEFAULT_SERVER_BINARY, SERVER_BINARY_ENV

IMAGE_SERVER = "/usr/bin/tensorflow_model_server"


def test_the_variable_gives_the_server_where_nothing_else_does():
    environ = {SERVER_BINARY_ENV: IMAGE_SERVER}
    assert resolve({}, {}, environ).server_binary == IMAGE_SERVER
    assert from_keywords(environ).server_binary == IMAGE_SERVER
    file_says = {"server_binary": "/srv/tfs"}
    assert resolve(file_says, {}, environ).server_binary == "/srv/tfs"
    assert resolve(file_says, {"server_binary": "/opt/tfs"}, environ).server_binary == "/opt/tfs"
    assert from_keywords(environ, server_binary="/srv/tfs").server_binary == "/srv/tfs"
    # unset or empty: the default; no environment handed over: none read
    assert resolve({}, {}, {SERVER_BINARY_ENV: ""}).server_binary == DEFAULT_SERVER_BINARY
    assert resolve({}, {}).server_binary == DEFAULT_SERVER_BINARY
    assert from_keywords().server_binary == DEFAULT_SERVER_BINARY


def test_help_names_the_variable():
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    assert f"[environment {SERVER_BINARY_ENV}]" in " ".join(run.format_help().split())


def test_soak_run_reads_it(tmp_path):
    """The command line hands its environment over: a server the variable names that does
    not exist stops the run before it starts, in one line, exit 2."""
    missing = tmp_path / "no-such-server"
    result = subprocess.run(
        [sys.executable, "-m", "soak", "run", "--out", str(tmp_path / "run"), "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, SERVER_BINARY_ENV: str(missing)},
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"soak: server binary not found: {missing}\n"
    assert not (tmp_path / "run").exists()
