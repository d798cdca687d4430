"""What does the stand-in cost to load the demo model, and what does warmup buy?

Starts `soak-model-server` on the demo model (one version, 128 MiB by default), with model
warmup on and then off, and prints for each: time to the REST API, the load as logged
(Loading -> Successfully loaded), of which SavedModel restore and warmup, RssAnon and VmRSS
after the load, the first predict's latency and the warm latency (median and max of the
next requests). Everything runs on 127.0.0.1 and every server is stopped at the end.

    .venv/bin/python benchmarks/standin_load.py [--size-mb 128] [--requests 50] [--batch 8]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import requests

from soak.driver.demo_model import DEMO_MODEL_NAME, demo_inputs, write_demo_model

SERVER = Path(sys.executable).parent / "soak-model-server"
MIB = 2**20
START_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def proc_status_bytes(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def log_time(log: str, message: str) -> datetime:
    match = re.search(r"^(\S+ \S+): \w \S+ \S+\] " + re.escape(message), log, re.MULTILINE)
    if not match:
        raise RuntimeError(f"{message!r} not in the server log")
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S.%f")


def logged_micros(log: str, pattern: str) -> float:
    match = re.search(pattern, log)
    return int(match.group(1)) / 1e6 if match else float("nan")


def measure(base_path: Path, warmup: bool, requests_n: int, batch: int, log_path: Path) -> dict:
    port = free_port()
    args = [
        str(SERVER),
        f"--port={free_port()}",
        f"--rest_api_port={port}",
        f"--model_name={DEMO_MODEL_NAME}",
        f"--model_base_path={base_path}",
        f"--enable_model_warmup={'true' if warmup else 'false'}",
    ]
    url = f"http://127.0.0.1:{port}/v1/models/{DEMO_MODEL_NAME}"
    rng = np.random.default_rng(1)
    bodies = [
        {"inputs": {k: v.tolist() for k, v in demo_inputs(rng, batch).items()}}
        for _ in range(requests_n + 1)
    ]
    started = time.perf_counter()
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited {process.returncode}: see {log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready after {START_TIMEOUT_S} s: see {log_path}")
            try:
                if requests.get(url, timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.05)
        ready_s = time.perf_counter() - started
        anon = proc_status_bytes(process.pid, "RssAnon")
        rss = proc_status_bytes(process.pid, "VmRSS")

        latencies = []
        with requests.Session() as session:
            for body in bodies:
                sent = time.perf_counter()
                reply = session.post(f"{url}:predict", json=body, timeout=60)
                latencies.append((time.perf_counter() - sent) * 1000)
                reply.raise_for_status()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    log = log_path.read_text(errors="replace")
    version = f"{{name: {DEMO_MODEL_NAME} version: 1}}"
    load_s = (
        log_time(log, f"Successfully loaded servable version {version}")
        - log_time(log, f"Loading servable version {version}")
    ).total_seconds()
    return {
        "warmup": warmup,
        "ready_s": ready_s,
        "load_s": load_s,
        "restore_s": logged_micros(log, r"SavedModel load .* Took (\d+) microseconds"),
        "warmup_s": logged_micros(log, r"Number of warmup records read: \d+\. .*?(\d+)\."),
        "anon_mb": anon / MIB,
        "rss_mb": rss / MIB,
        "first_ms": latencies[0],
        "warm_p50_ms": statistics.median(latencies[1:]),
        "warm_max_ms": max(latencies[1:]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=128.0)
    parser.add_argument("--requests", type=int, default=50, help="warm requests after the first")
    parser.add_argument("--batch", type=int, default=8)
    options = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

    with tempfile.TemporaryDirectory(prefix="standin-load-") as temp:
        temp_dir = Path(temp)
        began = time.perf_counter()
        base_path = write_demo_model(temp_dir / "model", versions=1, size_mb=options.size_mb)
        print(f"demo model {options.size_mb:g} MiB written in {time.perf_counter() - began:.1f} s")
        rows = [
            measure(base_path, warmup, options.requests, options.batch, temp_dir / f"w{warmup}.log")
            for warmup in (True, False)
        ]

    print(
        f"{'warmup':>6} {'ready s':>8} {'load s':>7} {'restore s':>9} {'warmup s':>8} "
        f"{'RssAnon MiB':>11} {'VmRSS MiB':>9} {'first ms':>8} {'warm p50 ms':>11} "
        f"{'warm max ms':>11}"
    )
    for row in rows:
        print(
            f"{'on' if row['warmup'] else 'off':>6} {row['ready_s']:8.2f} {row['load_s']:7.2f} "
            f"{row['restore_s']:9.2f} {row['warmup_s']:8.2f} {row['anon_mb']:11.1f} "
            f"{row['rss_mb']:9.1f} {row['first_ms']:8.1f} {row['warm_p50_ms']:11.1f} "
            f"{row['warm_max_ms']:11.1f}"
        )
    print(f"(batch {options.batch}, {options.requests} warm requests, one keep-alive connection)")


if __name__ == "__main__":
    main()
