"""Fault injection: `soak run`s stopped at random moments by SIGINT, SIGTERM and kill -9.

For each run, on the process and the docker backend in turn, a signal (SIGINT,
SIGTERM, SIGKILL in turn) is sent at a random moment of its first `--window` seconds:
while it prepares, starts the server, takes the baseline or swaps. Then it counts:

- exit code: 130 for SIGINT, 143 for SIGTERM (a signal that lands before soak's
  handlers are in place, during the interpreter's start, ends it the default way);
- stop time: signal to exit;
- leftovers right after the exit: server processes (SOAK_OWNER marker of the run's
  session) and containers (label soak.session). After kill -9 of a docker run its
  container is expected to stay until the next run: what the next run's sweep
  (`kill_dead_runs_processes`, `remove_dead_run_containers`) leaves is counted at the end;
- lost rows after kill -9: the time between the kill and the last memory.csv row,
  when the server was being sampled then (target: <= 1 s);
- `soak report` on every run dir that holds data: exit 0, summary.json written.

    python benchmarks/fault_injection.py --runs 30 --out /tmp/faults
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from soak.core.owner import LABEL_SESSION, SESSION_ENV, owned_processes

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
EXPECTED_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGKILL: -signal.SIGKILL}
STOP_TIMEOUT_S = 90
SETTLE_S = 2.0  # after the exit, before leftovers are counted (the kernel reaps, docker removes)


def containers_of(client, session: str) -> list[str]:
    if client is None:
        return []
    found = client.containers.list(all=True, filters={"label": f"{LABEL_SESSION}={session}"})
    return [c.name for c in found]


def processes_of(session: str) -> list[int]:
    return [p.pid for p in owned_processes() if p.owner.session == session]


def last_memory_t(run_dir: Path) -> float | None:
    last = None
    for path in run_dir.glob("*/memory.csv"):
        lines = path.read_text().splitlines()
        for line in reversed(lines[1:]):
            try:
                t = float(line.split(",")[0])
            except ValueError:
                continue  # a half-written last row
            last = t if last is None else max(last, t)
            break
    return last


def server_running_at(run_dir: Path) -> bool:
    """Whether a variant was between `started` and its end when soak was killed."""
    for events in run_dir.glob("*/events.csv"):
        text = events.read_text()
        if ",started," in text and not any(
            f",{e}," in text for e in ("stopped", "server_exited", "interrupted")
        ):
            return True
    return False


def one_run(
    index: int, backend: str, sig: signal.Signals, args: argparse.Namespace, client
) -> dict:
    session = f"fault-bench-{uuid.uuid4().hex[:8]}"
    run_dir = args.out / f"{index:02d}-{backend}-{sig.name}"
    command = [
        sys.executable, "-m", "soak", "run", "--backend", backend, "--model", str(args.model),
        "--allocators", "jemalloc", "--swaps", "50", "--rps", "10", "--steady", "1",
        "--out", str(run_dir), "--quiet",
    ]  # fmt: skip
    if backend == "docker":
        command += ["--image", args.image]
    delay = random.uniform(0, args.window)
    proc = subprocess.Popen(
        command,
        env={**os.environ, SESSION_ENV: session},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(delay)
    exited_early = proc.poll() is not None
    sent_at = time.time()
    proc.send_signal(sig)
    try:
        _, stderr = proc.communicate(timeout=STOP_TIMEOUT_S)
        hung = False
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
        hung = True
    stop_s = time.time() - sent_at
    time.sleep(SETTLE_S)
    result = {
        "index": index,
        "backend": backend,
        "signal": sig.name,
        "delay_s": round(delay, 2),
        "exited_before_signal": exited_early,
        "exit_code": proc.returncode,
        "exit_as_expected": proc.returncode == EXPECTED_EXIT[sig],
        "hung": hung,
        "stop_s": round(stop_s, 2),
        "leftover_processes": processes_of(session),
        "leftover_containers": containers_of(client, session),
        "stderr_tail": stderr.strip().splitlines()[-1:] if stderr.strip() else [],
        "session": session,
        "lost_s": None,
        "report_ok": None,
        "summary_status": None,
    }
    if sig == signal.SIGKILL and run_dir.is_dir() and server_running_at(run_dir):
        last = last_memory_t(run_dir)
        if last is not None:
            result["lost_s"] = round(sent_at - last, 3)
    if run_dir.is_dir() and any(run_dir.glob("*/events.csv")):
        if not (run_dir / "summary.json").exists() or sig == signal.SIGKILL:
            report = subprocess.run(
                [sys.executable, "-m", "soak", "report", str(run_dir)],
                capture_output=True,
                text=True,
            )
            result["report_ok"] = report.returncode == 0
        summary = run_dir / "summary.json"
        if summary.exists():
            result["summary_status"] = json.loads(summary.read_text())["status"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--backends", default="process,docker")
    parser.add_argument("--window", type=float, default=45.0, help="signal within these seconds")
    parser.add_argument("--model", type=Path, help="default: the 16 MiB demo model")
    parser.add_argument("--image", default="standin")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("/tmp/soak-fault-injection"))
    args = parser.parse_args()
    random.seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.model is None:
        from soak.driver.model_versions import demo_model_path

        args.model = demo_model_path(16)
    backends = args.backends.split(",")
    client = None
    if "docker" in backends:
        from soak.targets.docker_engine import connect
        from soak.targets.images import resolve_image

        client = connect()
        args.image = resolve_image(client, args.image, progress=lambda m: print(m))

    results = []
    for index in range(args.runs):
        backend = backends[index % len(backends)]
        sig = SIGNALS[(index // len(backends)) % len(SIGNALS)]
        result = one_run(index, backend, sig, args, client)
        results.append(result)
        print(
            f"{index:2d} {backend:7s} {sig.name:7s} at {result['delay_s']:5.1f} s: "
            f"exit {result['exit_code']} in {result['stop_s']:.1f} s, "
            f"left {len(result['leftover_processes'])} proc "
            f"{len(result['leftover_containers'])} ctr, lost {result['lost_s']} s, "
            f"report {result['report_ok']}, status {result['summary_status']}",
            flush=True,
        )

    # what the next run does first: sweep what dead runs left
    from soak.core.owner import kill_dead_runs_processes

    kill_dead_runs_processes()
    if client is not None:
        from soak.targets.docker_engine import remove_dead_run_containers

        remove_dead_run_containers(client)
    time.sleep(SETTLE_S)
    after_sweep = {
        r["session"]: processes_of(r["session"]) + containers_of(client, r["session"])
        for r in results
    }

    graceful = [r for r in results if r["signal"] != "SIGKILL"]
    killed = [r for r in results if r["signal"] == "SIGKILL"]
    lost = [r["lost_s"] for r in killed if r["lost_s"] is not None]
    totals = {
        "runs": len(results),
        "by_backend": {b: sum(r["backend"] == b for r in results) for b in backends},
        "by_signal": {s.name: sum(r["signal"] == s.name for r in results) for s in SIGNALS},
        "graceful_exit_as_expected": sum(r["exit_as_expected"] for r in graceful),
        "graceful": len(graceful),
        "graceful_leftovers": sum(
            len(r["leftover_processes"]) + len(r["leftover_containers"]) for r in graceful
        ),
        "graceful_max_stop_s": max((r["stop_s"] for r in graceful), default=None),
        "hung": sum(r["hung"] for r in results),
        "kill9_leftover_processes": sum(len(r["leftover_processes"]) for r in killed),
        "kill9_leftover_containers_before_sweep": sum(
            len(r["leftover_containers"]) for r in killed
        ),
        "leftovers_after_next_runs_sweep": sum(len(v) for v in after_sweep.values()),
        "kill9_with_rows_measured": len(lost),
        "kill9_max_lost_s": max(lost, default=None),
        "kill9_lost_over_1s": sum(x > 1.0 for x in lost),
        "reports_ok": sum(r["report_ok"] is True for r in results),
        "reports_run": sum(r["report_ok"] is not None for r in results),
        "interrupted_summaries": sum(r["summary_status"] == "interrupted" for r in graceful),
    }
    (args.out / "fault_injection.json").write_text(
        json.dumps({"totals": totals, "runs": results}, indent=2) + "\n"
    )
    print(json.dumps(totals, indent=2))


if __name__ == "__main__":
    main()
