"""The process target: TF Serving's flags, CPU pinning, exit reasons, stopping."""

import os
import signal
import time

import pytest

from soak.config.resolve import resolve
from soak.core.errors import UsageError
from soak.core.procfs import parse_cpu_list
from soak.driver.plan import prepare
from soak.targets.base import LaunchSpec
from soak.targets.process import ProcessTarget

FAKE_SERVER = """#!/bin/sh
echo "args: $*"
exec sleep 60
"""


@pytest.fixture
def fake_server(tmp_path):
    """A stand-in for a server binary: prints its flags, then waits to be stopped."""
    path = tmp_path / "fake_server"
    path.write_text(FAKE_SERVER)
    path.chmod(0o755)
    return str(path)


def spec(tmp_path) -> LaunchSpec:
    return LaunchSpec(
        variant="v",
        model_name="m",
        base_path=tmp_path / "models",
        rest_port=8501,
        grpc_port=8500,
        server_args=["--num_load_threads=2"],
        log_path=tmp_path / "server.log",
    )


def wait_for_log(path, text, timeout_s=10.0):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in {path}")


def test_flags_pinning_and_stop(tmp_path, fake_server):
    with ProcessTarget(spec(tmp_path), fake_server, cpus={0}) as target:
        wait_for_log(tmp_path / "server.log", "args:")
        assert os.sched_getaffinity(target.pid) == {0}
        assert target.exit_reason() is None
        args = (tmp_path / "server.log").read_text()
        assert "--rest_api_port=8501 --model_name=m" in args
        assert args.strip().endswith("--num_load_threads=2")  # the user's flags come last
    assert target.exit_reason() == "killed by SIGTERM"
    target.stop()  # twice is fine


def test_exit_reason_of_a_killed_server(tmp_path, fake_server):
    target = ProcessTarget(spec(tmp_path), fake_server)
    target.start()
    wait_for_log(tmp_path / "server.log", "args:")
    os.kill(target.pid, signal.SIGKILL)
    deadline = time.time() + 10
    while target.exit_reason() is None and time.time() < deadline:
        time.sleep(0.05)
    assert target.exit_reason() == "killed by SIGKILL"
    target.stop()


def test_cpu_lists(tmp_path, fake_server):
    assert parse_cpu_list("0-2,5") == {0, 1, 2, 5}
    with pytest.raises(ValueError):
        parse_cpu_list("1-")
    # The syntax is the configuration's to check; whether the CPUs exist, the plan's.
    with pytest.raises(UsageError, match="CPU list"):
        resolve({}, {"cpus": "all"})
    config = resolve({"model": str(tmp_path), "server_binary": fake_server}, {"cpus": "0-4095"})
    with pytest.raises(UsageError, match="not usable"):
        prepare(config)
