"""`soak run` end to end on the process backend: the real stand-in, real TF, real allocators."""

import csv
import json
import signal
import tomllib

import pandas as pd
import pytest

from soak.history import store as history


@pytest.mark.slow
def test_short_run_writes_the_run_directory(
    small_model, tmp_path, soak_cli, processes_mentioning, assert_contract_summary
):
    out = tmp_path / "run"
    result = soak_cli(
        "run",
        "--model",
        str(small_model),
        "--swaps",
        "3",
        "--rps",
        "10",
        "--steady",
        "1",
        "--settle-timeout",
        "10",
        "--settle-window",
        "2",  # the run dir's files are checked, not a verdict
        "--out",
        str(out),
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{out}\n"  # --quiet: the run dir alone, for scripts
    assert len(history.runs(tmp_path / "history.sqlite")) == 1  # recorded beside the run

    for name in ("summary.json", "report.html", "run.toml", "environment.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert_contract_summary(summary)
    assert summary["status"] == "completed"
    assert summary["backend"] == "process" and summary["model"]["size_bytes"] > 8 << 20
    assert [v["name"] for v in summary["variants"]] == ["glibc", "jemalloc"]
    env = json.loads((out / "environment.json").read_text())
    assert env["glibc_version"].startswith("glibc") and env["allocators"]["jemalloc"]["library"]
    assert tomllib.loads((out / "run.toml").read_text())["swaps"] == 3

    for variant in summary["variants"]:
        assert variant["status"] == "completed" and variant["allocator_verified"] is True
        assert variant["swaps_completed"] == 3
        assert [s["version"] for s in variant["swaps"]] == [2, 3, 4]
        for swap in variant["swaps"]:
            assert swap["load_s"] > 0 and swap["settled_mb"] > 50  # TF itself is > 50 MiB
            assert swap["peak_mb"] >= swap["settled_mb"] - 1
        vdir = out / variant["name"]
        memory = pd.read_csv(vdir / "memory.csv")
        assert list(memory.columns) == ["t", "rss_bytes", "anon_bytes", "cpu_s", "swap"]
        duration = memory.t.iloc[-1] - memory.t.iloc[0]
        assert len(memory) > 5 * duration  # about 10 Hz
        assert (memory.anon_bytes <= memory.rss_bytes).all()
        assert sorted(memory.swap.unique()) == [0, 1, 2, 3]
        latency = pd.read_csv(vdir / "latency.csv")
        assert (latency.status == 200).mean() > 0.95
        assert (latency.latency_ms >= (latency.t_end - latency.t_start) * 1000 - 1).all()
        with open(vdir / "events.csv") as f:
            events = [(int(r["swap"]), r["event"], r["version"]) for r in csv.DictReader(f)]
        for k in (1, 2, 3):
            of_swap = [(e, v) for s, e, v in events if s == k]
            assert ("staged", str(k + 1)) in of_swap and ("available", str(k + 1)) in of_swap
            assert ("end", str(k)) in of_swap
            names = [e for e, _ in of_swap]
            assert names.index("settled") > names.index("end")
            # jemalloc's decay run once its decay time passed, before it settled
            decayed = names.count("decayed")
            assert decayed == (variant["name"] == "jemalloc"), names
            assert not decayed or names.index("decayed") < names.index("settled")
        assert (3, "swaps_done", "4") in events
        assert variant["swaps_done"] == "3 swaps done, as planned"
        assert "Successfully loaded servable version" in (vdir / "server.log").read_text()
        assert not (vdir / "models").exists()  # the private copy is removed
    assert processes_mentioning(str(out)) == []


def test_allocator_that_did_not_load_fails_the_variant(
    small_model, tmp_path, soak_cli, processes_mentioning
):
    out = tmp_path / "run"
    config = tmp_path / "soak.toml"
    config.write_text(
        f'model = "{small_model}"\nswaps = 1\nrps = 5\n'
        '[[variants]]\nname = "jemalloc"\nallocator = "jemalloc"\n'
        'library = "/nonexistent/libjemalloc.so.2"\n'
    )
    result = soak_cli("run", "--config", str(config), "--out", str(out), "--quiet")
    assert result.returncode == 3
    variant = json.loads((out / "summary.json").read_text())["variants"][0]
    assert variant["status"] == "failed" and variant["allocator_verified"] is False
    assert processes_mentioning(str(out)) == []


def test_interrupt_keeps_what_was_measured(
    small_model, tmp_path, background_run, processes_mentioning
):
    out = tmp_path / "run"
    run = background_run(
        out, "--model", str(small_model), "--swaps", "50", "--rps", "10", "--settle-window", "2"
    )
    run.wait_settled("glibc", 1)
    run.proc.send_signal(signal.SIGINT)
    _, stderr = run.proc.communicate(timeout=120)
    assert run.proc.returncode == 130, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert summary["variants"][0]["status"] == "interrupted"
    assert "interrupted" in (out / "glibc" / "events.csv").read_text()
    assert len((out / "glibc" / "memory.csv").read_text().splitlines()) > 10
    assert processes_mentioning(str(out)) == []


@pytest.mark.slow
def test_a_dying_server_fails_its_variant_and_the_next_still_runs(
    small_model, tmp_path, background_run, processes_mentioning
):
    out = tmp_path / "run"
    run = background_run(
        out, "--model", str(small_model), "--swaps", "1", "--rps", "10", "--steady", "1",
        "--settle-window", "2",
    )  # fmt: skip
    run.wait_settled("glibc", 1)
    servers = processes_mentioning(str(out / "glibc" / "models"))
    assert len(servers) == 1
    servers[0].kill()
    _, stderr = run.proc.communicate(timeout=600)
    assert run.proc.returncode == 3, stderr
    summary = json.loads((out / "summary.json").read_text())
    glibc, jemalloc = summary["variants"]
    assert glibc["status"] == "failed" and "SIGKILL" in glibc["reason"]
    assert jemalloc["status"] == "completed" and jemalloc["swaps_completed"] == 1
    assert "server_exited" in (out / "glibc" / "events.csv").read_text()
    assert len((out / "glibc" / "memory.csv").read_text().splitlines()) > 10  # kept


def test_missing_allocator_library_names_the_debian_package(monkeypatch, tmp_path):
    from soak.core.errors import EnvironmentFailure
    from soak.targets import allocators

    monkeypatch.setattr(allocators, "LIBRARY_DIRS", (str(tmp_path),))  # an empty system
    with pytest.raises(EnvironmentFailure, match="install the Debian package libjemalloc2"):
        allocators.find_library("jemalloc")
