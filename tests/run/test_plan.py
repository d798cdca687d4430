"""The run plan: resolved and checked up front; the orchestrator only executes it."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from soak.analysis.swap_budget import SwapBudget
from soak.config.resolve import resolve
from soak.config.settings import VariantSpec
from soak.core.errors import EnvironmentFailure, UsageError
from soak.driver.model_versions import ModelSource
from soak.driver.orchestrator import Orchestrator
from soak.driver.plan import RunPlan, VariantPlan, prepare
from soak.driver.progress import Progress
from soak.store.records import PROCESS_MEMORY_COLUMNS, EventKind
from soak.targets import allocators
from soak.targets.base import LaunchSpec, Target


@pytest.fixture
def model(tmp_path) -> Path:
    """A base path with one version that parses as a SavedModel (nothing loads it here):
    one meta graph (field 2) holding an empty graph (its field 2)."""
    version = tmp_path / "model" / "1"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"\x12\x02\x12\x00")
    return version.parent


@pytest.fixture
def server(tmp_path) -> str:
    path = tmp_path / "server"
    path.write_text("#!/bin/sh\nexec sleep 60\n")
    path.chmod(0o755)
    return str(path)


def test_the_plan_holds_everything_resolved(tmp_path, model, server):
    config = resolve(
        {
            "model": str(model),
            "server_binary": server,
            "server_args": ["--num_load_threads=2"],
            "cpus": "0",
            "variants": [
                {"name": "a", "allocator": "glibc", "server_args": ["--x=1"], "env": {"K": "v"}},
                {"name": "b", "allocator": "glibc"},
            ],
        },
        {"out": str(tmp_path / "run")},
    )
    plan = prepare(config)
    assert plan.model.versions == [model / "1"]
    assert plan.backend.server_binary == server and plan.variants[0].cpus == "0"
    a, b = plan.variants
    assert a.server_args == ("--num_load_threads=2", "--x=1") and a.env["K"] == "v"
    # glibc: only the probe is preloaded (its library built for this host)
    assert a.library is None and plan.probe_off is None
    assert a.env["LD_PRELOAD"] == a.probe and Path(a.probe).name == "libsoakprobe.so"
    ports = [a.rest_port, a.grpc_port, b.rest_port, b.grpc_port]
    assert len(set(ports)) == 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.run_id = "other"  # type: ignore[misc]
    assert not (tmp_path / "run").exists()  # preparing starts nothing, writes nothing
    unprobed = prepare(dataclasses.replace(config, probe=False))
    assert unprobed.probe_off == "--no-probe"
    assert all(v.probe is None and "LD_PRELOAD" not in v.env for v in unprobed.variants)


def test_node_cores_size_threads_and_arenas_as_on_a_node_of_that_size(tmp_path, model, server):
    config = resolve(
        {
            "model": str(model),
            "server_binary": server,
            "node_cores": 16,
            "server_args": ["--tensorflow_inter_op_parallelism=4"],
            "variants": [
                {"name": "glibc", "allocator": "glibc"},
                {"name": "arenas2", "allocator": "glibc", "env": {"MALLOC_ARENA_MAX": "2"}},
                {"name": "jemalloc", "allocator": "jemalloc", "env": {"MALLOC_CONF": "a:1"}},
            ],
        },
        {},
    )
    assert config.concurrency == 16  # N requests in flight, unless --concurrency says
    glibc, arenas2, jemalloc = prepare(config).variants
    # TF Serving's defaults for 16 cores, then the user's own flags (the last one wins)
    assert glibc.server_args == (
        "--tensorflow_intra_op_parallelism=16",
        "--tensorflow_inter_op_parallelism=16",
        "--rest_api_num_threads=64",
        "--grpc_max_threads=64",
        "--tensorflow_inter_op_parallelism=4",
    )
    assert glibc.env["MALLOC_ARENA_MAX"] == "128"
    assert arenas2.env["MALLOC_ARENA_MAX"] == "2"  # the variant's own wins
    assert jemalloc.env["MALLOC_CONF"] == "a:1,narenas:64"
    assert resolve({"node_cores": 16}, {"concurrency": 2}).concurrency == 2
    assert resolve({"node_cores": 200}, {}).concurrency == 64  # the prober's bound
    plain = prepare(resolve({"model": str(model), "server_binary": server}, {})).variants[0]
    assert not any("parallelism" in a for a in plain.server_args)
    assert "MALLOC_ARENA_MAX" not in plain.env


def test_allocator_libraries_are_found_up_front(tmp_path, model, server, monkeypatch):
    config = resolve(
        {"model": str(model), "server_binary": server, "allocators": "glibc,jemalloc"}, {}
    )
    monkeypatch.setattr(allocators, "LIBRARY_DIRS", (str(tmp_path),))  # an empty system
    with pytest.raises(EnvironmentFailure, match="install the Debian package libjemalloc2"):
        prepare(config)
    (tmp_path / "libjemalloc.so.2").write_bytes(b"")
    (jemalloc,) = [v for v in prepare(config).variants if v.allocator == "jemalloc"]
    # the allocator first, so that the probe asks the allocator that serves malloc
    assert jemalloc.env["LD_PRELOAD"] == f"{tmp_path / 'libjemalloc.so.2'}:{jemalloc.probe}"


def test_environment_problems_are_listed_at_once(tmp_path, model):
    config = resolve({"model": str(model), "server_binary": "no-such-server", "cpus": "4095"}, {})
    with pytest.raises(UsageError) as err:
        prepare(config)
    assert "server binary not found: no-such-server" in str(err.value)
    assert "cpus [4095] are not usable here" in str(err.value)


def test_without_tensorflow_the_run_names_the_extra(tmp_path, model, server, monkeypatch):
    import soak.driver.plan as plan_module

    monkeypatch.setattr(plan_module, "tensorflow_installed", lambda: False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no demo model cached
    with pytest.raises(UsageError) as err:
        prepare(resolve({}, {}))
    message = str(err.value)
    assert "the demo model" in message and "the stand-in server" in message
    assert "pip install 'soak[standin]'" in message and "\n" not in message
    # A model and a server of the user's own need no TensorFlow.
    prepare(resolve({"model": str(model), "server_binary": server}, {}))


# Hides TensorFlow from this interpreter, as in an install without the `standin` extra.
NO_TENSORFLOW = """
import importlib.abc, sys

class NoTensorflow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NoTensorflow())
from soak.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(
    "args, what",
    [
        (["run"], "the demo model (no --model given) and the stand-in server"),
        (["demo-model", "OUT"], "soak: demo-model needs TensorFlow"),
    ],
)
def test_commands_that_need_tensorflow_say_which_extra(tmp_path, args, what):
    result = subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW, *(a.replace("OUT", str(tmp_path)) for a in args)],
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")},
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and what in result.stderr
    assert "pip install 'soak[standin]'" in result.stderr


class UnreadableTarget(Target):
    """A server that runs but whose memory cannot be read."""

    rest_url = "http://127.0.0.1:9"  # nothing answers: the status poller keeps retrying

    def start(self) -> None:
        pass

    def memory_columns(self) -> tuple[str, ...]:
        return PROCESS_MEMORY_COLUMNS

    def read_memory(self) -> dict[str, int]:
        raise PermissionError("/proc/1/status: permission denied")

    def mapped_paths(self) -> set[str]:
        return set()

    def exit_reason(self) -> str | None:
        return None

    def stop(self, graceful: bool = True) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class UnreadableBackend:
    name = "fake"

    def make_target(self, spec: LaunchSpec, run_id: str) -> Target:
        return UnreadableTarget()

    def facts(self) -> dict:
        return {}


def test_a_sampler_that_gives_up_fails_the_variant_with_its_reason(tmp_path, model):
    config = resolve({"model": str(model), "allocators": "glibc"}, {"out": str(tmp_path / "run")})
    variant = VariantPlan(VariantSpec("glibc"), None, 9, 9, (), {}, purge_delay_s=0.0)
    plan = RunPlan(
        config,
        "test",
        tmp_path / "run",
        ModelSource([model / "1"], 1),
        UnreadableBackend(),  # type: ignore[arg-type]
        (variant,),
    )
    (result,) = Orchestrator(plan, Progress(quiet=True), lambda: SwapBudget(3, 3, 1.0, 2)).run()
    assert result.status == "failed"
    assert result.reason == (
        "the memory sampler gave up: "
        "memory readings failed: PermissionError: /proc/1/status: permission denied"
    )
    vdir = tmp_path / "run" / "glibc"
    facts = json.loads((vdir / "variant.json").read_text())
    assert (facts["status"], facts["reason"]) == ("failed", result.reason)
    with (vdir / "events.csv").open() as f:
        events = [row["event"] for row in csv.DictReader(f)]
    assert EventKind.SAMPLER_FAILED in events


def test_without_a_compiler_the_probe_is_off_with_the_reason(tmp_path, model, server, monkeypatch):
    """A host where the probe was never built and cannot be: the run is planned without it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    plan = prepare(resolve({"model": str(model), "server_binary": server}, {}))
    assert plan.probe_off is not None
    assert plan.probe_off.startswith("building the probe failed (no C compiler?)")
    assert all(v.probe is None for v in plan.variants)
    assert all("libsoakprobe" not in v.env.get("LD_PRELOAD", "") for v in plan.variants)
