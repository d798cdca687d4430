"""What does the allocator probe cost the server? Steady p99 and CPU, with and without it.

Starts `soak-model-server` on the demo model (128 MiB, the default run's), warm,
and sends `--seconds` of open-loop predicts at `--rps` over one keep-alive
connection; with the probe preloaded (LD_PRELOAD, SOAK_PROBE_SOCKET) its `stats`
is asked every 5 s, more often than a run does (once per swap). Without and with
alternate, `--repeats` times each. Prints per run the p50 / p99 latency and the
server's CPU per request (utime + stime from /proc over the requests), then the
median and range per side. Everything on 127.0.0.1; every server stopped.

    .venv/bin/python benchmarks/probe_cost.py [--repeats 3] [--seconds 60] [--rps 20]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from soak.driver.model_versions import demo_model_path
from soak.samplers.probe import ProbeClient
from soak.targets import probe_library

SERVER = Path(sys.executable).parent / "soak-model-server"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STATS_EVERY_S = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def one_run(model: Path, probe: Path | None, seconds: float, rps: float) -> dict[str, float]:
    rest = free_port()
    env = dict(os.environ)
    sockets = Path(tempfile.mkdtemp(prefix="soak-probe-cost-"))
    if probe is not None:
        env["LD_PRELOAD"] = str(probe)
        env[probe_library.SOCKET_ENV] = probe_library.socket_template(sockets)
    server = subprocess.Popen(
        [str(SERVER), f"--port={free_port()}", f"--rest_api_port={rest}", "--model_name=m",
         f"--model_base_path={model}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        session = requests.Session()
        url = f"http://127.0.0.1:{rest}/v1/models/m"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if "AVAILABLE" in session.get(url, timeout=2).text:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        body = {"instances": [{"user_id": 7, "item_ids": list(range(8)),
                               "dense_features": [0.5] * 16}] * 8}  # fmt: skip
        for _ in range(50):  # warm
            session.post(url + ":predict", json=body, timeout=10).raise_for_status()
        client = ProbeClient(probe_library.socket_path(sockets, server.pid)) if probe else None
        latencies = []
        start_cpu, start = cpu_seconds(server.pid), time.monotonic()
        next_stats = start
        for i in range(int(seconds * rps)):
            due = start + i / rps
            time.sleep(max(0.0, due - time.monotonic()))
            if client is not None and time.monotonic() >= next_stats:
                client.stats()
                next_stats += STATS_EVERY_S
            session.post(url + ":predict", json=body, timeout=10).raise_for_status()
            latencies.append((time.monotonic() - due) * 1000)
        cpu = cpu_seconds(server.pid) - start_cpu
    finally:
        server.terminate()
        server.wait(30)
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(0.99 * len(latencies)) - 1],
        "cpu_ms_per_request": 1000 * cpu / len(latencies),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rps", type=float, default=20)
    args = parser.parse_args()
    model = demo_model_path(128)
    probe = probe_library.host_library()
    runs: dict[str, list[dict[str, float]]] = {"without": [], "with": []}
    for repeat in range(args.repeats):
        for side in runs:
            figures = one_run(model, probe if side == "with" else None, args.seconds, args.rps)
            runs[side].append(figures)
            cells = "  ".join(f"{k} {v:.2f}" for k, v in figures.items())
            print(f"run {repeat + 1} {side:7s} probe: {cells}", flush=True)
    print(f"\nmedian [min, max] over {args.repeats} runs")
    for side, rows in runs.items():
        cells = [
            f"{k} {statistics.median(r[k] for r in rows):.2f} "
            f"[{min(r[k] for r in rows):.2f}, {max(r[k] for r in rows):.2f}]"
            for k in rows[0]
        ]
        print(f"{side:7s} probe: " + "; ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
