"""Faults on the process backend, on real short runs: signals, kill -9, bad models, failed loads.

Each run is small (an 8 MiB model, glibc only unless said), stopped after its
baseline: the machine is shared.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from soak.core import interrupts
from soak.core.owner import OWNER_ENV, Owner, kill_dead_runs_processes, marked_process

# A 2 s settle window (not the verdict's default 5 s): these runs are stopped or judged on
# what they recorded and how they stopped, never on a verdict.
QUICK_SETTLE = ("--settle-window", "2")
RUN_ARGS = (
    "--allocators", "glibc", "--swaps", "50", "--rps", "10", "--steady", "1", *QUICK_SETTLE,
)  # fmt: skip
STOP_WITHIN_S = 30  # "within seconds", with room for a loaded shared machine


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def events(out: Path, variant: str = "glibc") -> list[dict]:
    with open(out / variant / "events.csv") as f:
        return list(csv.DictReader(f))


def test_sigterm_stops_the_run_with_143_and_keeps_what_was_measured(
    small_model, tmp_path, background_run, processes_mentioning
):
    out = tmp_path / "run"
    run = background_run(out, "--model", str(small_model), *RUN_ARGS)
    run.wait_settled("glibc", 1)
    sent = time.monotonic()
    run.proc.send_signal(signal.SIGTERM)
    _, stderr = run.proc.communicate(timeout=120)
    assert run.proc.returncode == 143, stderr
    assert time.monotonic() - sent < STOP_WITHIN_S
    assert "interrupted by SIGTERM" in stderr
    result = summary(out)
    assert result["status"] == "interrupted"
    glibc = result["variants"][0]
    assert glibc["status"] == "interrupted" and glibc["reason"] == "interrupted by SIGTERM"
    assert any(e["event"] == "interrupted" for e in events(out))
    assert processes_mentioning(str(out)) == []
    assert not (out / "glibc" / "models").exists()


def test_sigint_ignored_at_start_still_stops_the_run(
    small_model, tmp_path, background_run, processes_mentioning
):
    """As under a scheduler (or `cmd &` in a script): SIGINT ignored at start, then sent."""
    out = tmp_path / "run"
    run = background_run(
        out,
        "--model",
        str(small_model),
        *RUN_ARGS,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    run.wait_settled("glibc", 1)
    run.proc.send_signal(signal.SIGINT)
    _, stderr = run.proc.communicate(timeout=120)
    assert run.proc.returncode == 130, stderr
    assert summary(out)["status"] == "interrupted"
    assert processes_mentioning(str(out)) == []


# A server slow to stop: SIGTERM costs it 60 s, so a second signal a second after the
# first always lands while soak still waits for it (a fast run could finish first).
SLOW_STOPPING_SERVER = """#!/bin/sh
trap 'sleep 60; exit 0' TERM
{server} "$@" &
wait
"""


def test_a_second_signal_forces_the_stop_and_soak_report_analyses_later(
    small_model, tmp_path, background_run, processes_mentioning, soak_cli
):
    server = tmp_path / "slow_stopping_server"
    server.write_text(
        SLOW_STOPPING_SERVER.format(server=Path(sys.executable).parent / "soak-model-server")
    )
    server.chmod(0o755)
    out = tmp_path / "run"
    run = background_run(
        out, "--model", str(small_model), *RUN_ARGS, "--server-binary", str(server)
    )
    run.wait_settled("glibc", 1)
    run.proc.send_signal(signal.SIGINT)
    time.sleep(2 * interrupts.REPEAT_AFTER_S)  # sooner, it is the first delivered twice
    sent = time.monotonic()
    run.proc.send_signal(signal.SIGINT)
    _, stderr = run.proc.communicate(timeout=60)
    assert run.proc.returncode == 130, stderr
    assert time.monotonic() - sent < STOP_WITHIN_S  # the server was killed, not waited for
    assert f"forced: no analysis; `soak report {out}` makes it" in stderr
    assert not (out / "summary.json").exists()
    assert processes_mentioning(str(out)) == []
    variant = json.loads((out / "glibc" / "variant.json").read_text())
    assert variant["status"] == "interrupted"

    report = soak_cli("report", str(out))
    assert report.returncode == 0, report.stderr
    assert summary(out)["status"] == "interrupted"


# A server that, like some wrappers, starts the real one in a session of its own: neither
# soak's process-group kill nor the parent-death signal reaches it.
ESCAPING_SERVER = """#!/bin/sh
setsid {server} "$@" &
wait
"""


@pytest.fixture
def escaping_server(tmp_path) -> str:
    path = tmp_path / "escaping_server"
    server = Path(sys.executable).parent / "soak-model-server"
    path.write_text(ESCAPING_SERVER.format(server=server))
    path.chmod(0o755)
    return str(path)


@pytest.mark.exclusive
def test_kill_9_keeps_the_csvs_and_the_next_run_removes_the_orphan(
    small_model, tmp_path, background_run, processes_mentioning, soak_cli, escaping_server
):
    out = tmp_path / "killed"
    run = background_run(
        out, "--model", str(small_model), *RUN_ARGS, "--server-binary", escaping_server
    )
    run.wait_settled("glibc", 1)
    time.sleep(1.5)
    killed_at = time.time()
    run.proc.kill()
    run.proc.wait()

    # rows up to the last second before the kill are on disk, whole
    memory = (out / "glibc" / "memory.csv").read_text().splitlines()
    last_t = float(memory[-1].split(",")[0])
    assert killed_at - last_t <= 1.5, killed_at - last_t
    report = soak_cli("report", str(out))
    assert report.returncode == 0, report.stderr
    assert summary(out)["variants"][0]["status"] == "interrupted"

    orphans = processes_mentioning(str(out))
    assert len(orphans) == 1  # the escaped server outlived its soak
    orphan = marked_process(orphans[0].pid)
    assert orphan is not None and orphan.owner.is_dead()

    # the next run removes it before it starts anything, and says so (even with --quiet)
    result = soak_cli(
        "run", "--model", str(small_model), "--allocators", "glibc", "--swaps", "1",
        "--rps", "5", "--steady", "1", *QUICK_SETTLE, "--out", str(tmp_path / "next"), "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert processes_mentioning(str(out)) == []
    assert f"removed a leftover of a dead run: server pid {orphans[0].pid}" in result.stderr
    environment = json.loads((tmp_path / "next" / "environment.json").read_text())
    assert any(str(orphans[0].pid) in what for what in environment["removed_leftovers"])


@pytest.mark.slow
def test_a_run_removes_what_its_server_left_outside_its_process_group(
    small_model, tmp_path, soak_cli, processes_mentioning, escaping_server
):
    out = tmp_path / "run"
    result = soak_cli(
        "run", "--model", str(small_model), "--allocators", "glibc", "--swaps", "1",
        "--rps", "5", "--steady", "1", *QUICK_SETTLE, "--server-binary", escaping_server,
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "removed a leftover of this run: pid" in result.stderr
    assert processes_mentioning(str(out)) == []


def test_corrupt_saved_model_is_exit_2_before_anything_starts(
    small_model, tmp_path, soak_cli, processes_mentioning
):
    model = tmp_path / "model"
    shutil.copytree(small_model, model)
    pb = model / "2" / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[: pb.stat().st_size // 2])  # truncated
    out = tmp_path / "run"
    started = time.monotonic()
    result = soak_cli("run", "--model", str(model), "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert time.monotonic() - started < 30
    line = result.stderr.strip()
    assert "\n" not in line and "saved_model.pb is corrupt" in line and str(model / "2") in line
    assert not out.exists() and processes_mentioning(str(out)) == []


def test_a_failed_first_load_fails_at_once_and_later_variants_are_not_tried(
    small_model, tmp_path, soak_cli, processes_mentioning
):
    """The saved_model.pb is sound but the variables are gone: only loading can tell."""
    model = tmp_path / "model"
    shutil.copytree(small_model / "1", model)
    for data in (model / "variables").glob("variables.data-*"):
        data.unlink()
    out = tmp_path / "run"
    started = time.monotonic()
    result = soak_cli("run", "--model", str(model), "--out", str(out), "--quiet")
    elapsed = time.monotonic() - started
    assert result.returncode == 3, result.stderr
    assert elapsed < 90, elapsed  # not the 300 s load timeout, not twice
    glibc, jemalloc = summary(out)["variants"]
    assert result.stderr.splitlines() == [  # --quiet still says why it is exit 3
        f"soak: variant glibc failed: {glibc['reason']}",
        f"soak: variant jemalloc failed: {jemalloc['reason']}",
    ]
    assert glibc["status"] == "failed"
    assert glibc["reason"].startswith("version 1 failed to load: ")
    assert jemalloc["status"] == "failed" and jemalloc["reason"].startswith("not tried: in variant")
    assert not (out / "jemalloc" / "server.log").exists()  # never started
    assert any(e["event"] == "load_failed" for e in events(out))
    assert processes_mentioning(str(out)) == []


def test_a_load_timeout_names_what_the_server_reported(
    small_model, tmp_path, soak_cli, processes_mentioning
):
    """A server slower than --load-timeout: the reason says what was awaited and what the
    server reported meanwhile (here: nothing, its REST port was not up yet); its last log
    line follows when it has written one by then (not always, 1 s into its start)."""
    out = tmp_path / "run"
    args = ("--model", str(small_model), "--allocators", "glibc", "--load-timeout", "1")
    result = soak_cli("run", *args, "--out", str(out), "--quiet")
    assert result.returncode == 3, result.stderr
    (glibc,) = summary(out)["variants"]
    assert glibc["status"] == "failed"
    assert glibc["reason"].startswith(
        "timed out after 1 s waiting for version 1 to load (the server reported no version; "
        "last status poll: ConnectionRefusedError"
    )
    # the probe was never asked: said so, not taken for a run of an older soak
    assert glibc["attribution"]["probe"] == "off: the variant ended before the probe was asked"
    assert processes_mentioning(str(out)) == []


@pytest.mark.slow
def test_a_version_that_fails_mid_run_is_recorded_and_the_run_goes_on(
    small_model, tmp_path, soak_cli, processes_mentioning
):
    model = tmp_path / "model"
    shutil.copytree(small_model, model)  # versions 1 and 2: version 2 cannot load
    for data in (model / "2" / "variables").glob("variables.data-*"):
        data.unlink()
    out = tmp_path / "run"
    # TF Serving retries a failed load (5 times, a minute apart) in its manager thread, even
    # once the version is no longer aspired: the next version waits for that. No retries here.
    result = soak_cli(
        "run", "--model", str(model), "--allocators", "glibc", "--swaps", "2", "--rps", "5",
        "--steady", "1", *QUICK_SETTLE, "--server-arg=--max_num_load_retries=0",
        "--out", str(out), "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    failed = [e for e in events(out) if e["event"] == "load_failed"]
    assert failed and failed[0]["version"] == "2" and failed[0]["detail"]
    staged = [e["version"] for e in events(out) if e["event"] == "staged"]
    assert staged == ["1", "2", "3"]  # version 3 (the first source again) loads
    assert any(e["event"] == "available" and e["version"] == "3" for e in events(out))
    assert processes_mentioning(str(out)) == []


PYTEST_SOAK = """
import os, signal, threading

def test_soak(soak_run):
    soak_run(model={model!r}, allocators=["glibc"], swaps=50, rps=10, settle_window=2,
             out={out!r})
"""


def test_sigterm_under_pytest_stops_the_soak_run_fixture(
    small_model, tmp_path, processes_mentioning
):
    out = tmp_path / "run"
    test_file = tmp_path / "test_user_soak.py"
    test_file.write_text(textwrap.dedent(PYTEST_SOAK.format(model=str(small_model), out=str(out))))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--soak", str(test_file)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 300
        events_csv = out / "glibc" / "events.csv"
        while not (events_csv.exists() and ",settled," in events_csv.read_text()):
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.time() < deadline
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2, output  # pytest: interrupted
    assert "KeyboardInterrupt" in output or "Interrupted" in output
    assert summary(out)["status"] == "interrupted"
    assert processes_mentioning(str(out)) == []


# --- ownership, without servers -----------------------------------------------------------


def test_ownership_survives_pid_reuse_and_judges_only_what_it_can_see():
    me = Owner.current("run-a")
    assert not me.is_dead()
    assert Owner.from_labels(me.labels()) == me
    assert Owner.from_marker(me.marker()) == me
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert Owner.from_labels({**me.labels(), "soak.pid": str(dead.pid)}).is_dead()
    # the pid runs, but it is another process than the owner (pid reused)
    assert Owner.from_labels({**me.labels(), "soak.pid_start": "1"}).is_dead()
    assert Owner.from_labels({**me.labels(), "soak.boot": "an-earlier-boot"}).is_dead()
    for kept in ({"soak.host": "elsewhere"}, {"soak.pidns": "pid:[1]"}, {"soak.machine": "m2"}):
        assert not Owner.from_labels({**me.labels(), "soak.pid": str(dead.pid), **kept}).is_dead()
    assert Owner.from_labels({"soak.run": "manual"}) is not None
    assert not Owner.from_labels({"soak.run": "manual"}).is_dead()  # nobody recorded
    assert Owner.from_labels({}) is None


@pytest.mark.exclusive
def test_two_runs_started_in_the_same_second_never_sweep_each_other(tmp_path):
    """Markers of live owners are kept, whatever their run; a dead owner's are swept."""
    sleeper = """import sys, time; time.sleep(float(sys.argv[1]))"""
    owners = [Owner.current("same-second-a"), Owner.current("same-second-b")]
    dead = subprocess.Popen(["true"])
    dead.wait()
    owners.append(Owner.from_labels({**owners[0].labels(), "soak.pid": str(dead.pid)}))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", sleeper, "60"], env={**os.environ, OWNER_ENV: o.marker()}
        )
        for o in owners
    ]
    try:
        time.sleep(0.5)
        swept = {p.pid for p in kill_dead_runs_processes()}
        assert procs[2].pid in swept and not {procs[0].pid, procs[1].pid} & swept
        assert procs[2].wait(10) == -signal.SIGKILL
        assert procs[0].poll() is None and procs[1].poll() is None
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
