"""Flags as TF Serving spells them, and one-line errors for bad command lines."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from soak_model_server.flags import FlagError, parse_flags

SERVER_BIN = Path(sys.executable).parent / "soak-model-server"


def test_tf_serving_defaults(tmp_path):
    flags = parse_flags([f"--model_base_path={tmp_path}"])
    assert flags.model_name == "default"
    assert flags.port == 8500
    assert flags.rest_api_port == 0
    assert flags.file_system_poll_wait_seconds == 1
    assert (flags.num_load_threads, flags.num_unload_threads) == (0, 0)
    assert flags.enable_model_warmup is True
    assert flags.num_request_iterations_for_warmup == 1
    assert (flags.intra_op_threads, flags.inter_op_threads) == (0, 0)
    assert flags.rest_api_timeout_in_ms == 30000
    assert flags.debug_retain_mb_per_load == 0
    planted = parse_flags([f"--model_base_path={tmp_path}", "--debug_retain_mb_per_load=0.5"])
    assert planted.debug_retain_mb_per_load == 0.5  # MiB per load may be fractional
    assert flags.tags == ["serve"]


def test_equals_and_space_forms_are_the_same(tmp_path):
    with_equals = parse_flags(
        [f"--model_base_path={tmp_path}", "--num_load_threads=2", "--enable_model_warmup=false"]
    )
    with_space = parse_flags(
        [
            "--model_base_path",
            str(tmp_path),
            "--num_load_threads",
            "2",
            "--enable_model_warmup",
            "false",
        ]
    )
    assert with_equals == with_space
    assert with_equals.num_load_threads == 2
    assert with_equals.enable_model_warmup is False


@pytest.mark.parametrize("value, expected", [("true", True), ("1", True), ("0", False)])
def test_boolean_spellings(tmp_path, value, expected):
    flags = parse_flags([f"--model_base_path={tmp_path}", f"--enable_model_warmup={value}"])
    assert flags.enable_model_warmup is expected


def test_bare_boolean_flag_means_true(tmp_path):
    flags = parse_flags(["--enable_model_warmup", f"--model_base_path={tmp_path}"])
    assert flags.enable_model_warmup is True


def test_session_parallelism_sets_both_pools(tmp_path):
    flags = parse_flags([f"--model_base_path={tmp_path}", "--tensorflow_session_parallelism=3"])
    assert (flags.intra_op_threads, flags.inter_op_threads) == (3, 3)


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--no_such_flag=1"], "unrecognized arguments: --no_such_flag=1"),
        (["--enable_model_warmup=maybe"], "expected true or false"),
        (["--num_load_threads=-1"], "--num_load_threads must be >= 0"),
        (["--rest_api_port=70000"], "must be a TCP port"),
        (["--num_load_thread=2"], "unrecognized arguments"),  # no abbreviations
        (
            ["--tensorflow_session_parallelism=2", "--tensorflow_intra_op_parallelism=2"],
            "not both",
        ),
    ],
)
def test_bad_flags_are_rejected(tmp_path, argv, fragment):
    with pytest.raises(FlagError, match=fragment):
        parse_flags([f"--model_base_path={tmp_path}", *argv])


def test_base_path_is_required_and_must_exist(tmp_path):
    with pytest.raises(FlagError, match="--model_base_path is required"):
        parse_flags(["--rest_api_port=8501"])
    with pytest.raises(FlagError, match="no such directory"):
        parse_flags([f"--model_base_path={tmp_path / 'missing'}"])


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SERVER_BIN), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_unknown_flag_exits_2_with_one_line(tmp_path):
    result = _run_cli(f"--model_base_path={tmp_path}", "--bogus_flag=3")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["soak-model-server: error: unrecognized arguments: --bogus_flag=3"]
    assert result.stdout == ""


def test_missing_base_path_exits_2_with_one_line(tmp_path):
    result = _run_cli(f"--model_base_path={tmp_path / 'nope'}", "--rest_api_port=8501")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "no such directory" in result.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_rest_port_in_use_is_a_one_line_error(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = _run_cli(
            f"--model_base_path={tmp_path}", f"--port={_free_port()}", f"--rest_api_port={port}"
        )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"cannot listen on REST port 127.0.0.1:{port}" in lines[0]
    assert "in use" in lines[0]


def test_grpc_port_in_use_is_a_one_line_error(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = _run_cli(f"--model_base_path={tmp_path}", f"--port={port}")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"cannot listen on gRPC port 127.0.0.1:{port}" in lines[0]


def test_grpc_and_monitoring_flags(tmp_path):
    flags = parse_flags([f"--model_base_path={tmp_path}"])
    assert flags.grpc_max_threads == 4 * len(os.sched_getaffinity(0))  # TF Serving's default
    assert flags.monitoring_config_file == ""
    # server.cc: "At least one of server_options.grpc_port or server_options.grpc_socket_path
    # must be set."
    with pytest.raises(FlagError, match="--port must be set"):
        parse_flags([f"--model_base_path={tmp_path}", "--port=0"])
    with pytest.raises(FlagError, match="--monitoring_config_file .*: no such file"):
        parse_flags([f"--model_base_path={tmp_path}", f"--monitoring_config_file={tmp_path}/x"])
