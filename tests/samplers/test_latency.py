"""LatencyProber against real HTTP servers on loopback: stalled, refusing, rejecting."""

from __future__ import annotations

import csv
import json
import socket
import statistics
import threading
import time
from pathlib import Path

import pytest

from soak.samplers.clock import SwapClock
from soak.samplers.latency import LatencyProber
from soak.samplers.monitor_loop import MonitorLoop
from soak.store.csv_log import CsvLog
from soak.store.records import LatencySample

BODY = {"signature_name": "serving_default", "instances": [{"x": [1.0, 2.0]}]}
RPS = 50
RUN_S = 3.0
STALL_FROM_S, STALL_UNTIL_S = 1.0, 2.0  # after the prober starts
STALL_LENGTH_S = STALL_UNTIL_S - STALL_FROM_S


class StallingServer:
    """Answers at once, except that requests arriving in the stall window wait for its end.

    `now` is the clock of the window: the prober's own where a test compares the
    window with its rows to the millisecond.
    """

    def __init__(self, now=time.time):
        self.stall_from = self.stall_until = 0.0  # epoch seconds
        self.bodies: list[bytes] = []
        self.now = now
        self._lock = threading.Lock()

    def __call__(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        with self._lock:
            self.bodies.append(body)
        now = self.now()
        if self.stall_from <= now < self.stall_until:
            time.sleep(self.stall_until - now)
        return 200, b'{"predictions": [[0.5]]}'


def read_rows(path) -> list[dict[str, float]]:
    with path.open() as f:
        rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    return sorted(rows, key=lambda r: r["t_intended"])


def predict_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/v1/models/ranker:predict"


def probed(tmp_path, url: str, body: dict, rps: float, duration_s: float, wait_s: float,
           **prober_args):  # fmt: skip
    """A prober sending for `duration_s`, stopped after `wait_s`: (the prober, its rows)."""
    log = CsvLog(tmp_path / "latency.csv", LatencySample)
    prober = LatencyProber(url, body, rps, log, SwapClock(), max_duration_s=duration_s,
                           **prober_args)  # fmt: skip
    prober.start()
    time.sleep(wait_s)
    prober.stop()
    log.close()
    return prober, read_rows(tmp_path / "latency.csv")


def ten_requests(tmp_path, url: str, body: dict, **prober_args):
    """A prober at 40 rps for 0.25 s (10 requests), stopped once they are answered."""
    return probed(tmp_path, url, body, 40, 0.25, 0.5, **prober_args)


def run_against_stall(tmp_path, serve, max_in_flight: int):
    server = StallingServer()
    http = serve(server)
    path = tmp_path / "latency.csv"
    log = CsvLog(path, LatencySample)
    clock = SwapClock()
    url = predict_url(http.server_port)
    prober = LatencyProber(url, BODY, RPS, log, clock, timeout_s=5, max_in_flight=max_in_flight)
    started = time.time()
    server.stall_from, server.stall_until = started + STALL_FROM_S, started + STALL_UNTIL_S
    prober.start()
    time.sleep(STALL_FROM_S)
    clock.swap = 1
    time.sleep(RUN_S - STALL_FROM_S)
    prober.stop()
    log.close()
    return server, prober, read_rows(path)


def check_schedule_kept(rows, prober, min_rows: float):
    assert min_rows <= len(rows) <= RPS * RUN_S + 3
    assert prober.sent == len(rows) and prober.errors == 0
    assert all(r["status"] == 200 for r in rows)
    gaps = [b["t_intended"] - a["t_intended"] for a, b in zip(rows, rows[1:], strict=False)]
    assert max(abs(g - 1 / RPS) for g in gaps) < 1e-6  # evenly spaced, none skipped
    for r in rows:
        assert r["t_start"] >= r["t_intended"] - 1e-3
        assert abs(r["latency_ms"] - (r["t_end"] - r["t_intended"]) * 1000) < 1e-3


def test_a_stall_shows_as_latency_while_the_schedule_goes_on(tmp_path, serve):
    server, prober, rows = run_against_stall(tmp_path, serve, max_in_flight=64)
    check_schedule_kept(rows, prober, min_rows=RPS * RUN_S - 3)
    assert all(json.loads(b) == BODY for b in server.bodies)

    stall_from, stall_until = server.stall_from, server.stall_until
    before = [r for r in rows if r["t_intended"] < stall_from - 0.1]
    early_in_stall = [r for r in rows if stall_from + 0.05 <= r["t_intended"] < stall_from + 0.2]
    in_stall = [r for r in rows if stall_from + 0.05 <= r["t_intended"] < stall_until - 0.05]
    # Requests kept going out during the stall (open loop) ...
    assert sum(stall_from <= r["t_start"] < stall_until for r in rows) >= 0.8 * RPS
    assert statistics.median(r["t_start"] - r["t_intended"] for r in in_stall) < 0.05
    # ... and each waited until the stall ended: latency up to the stall length.
    assert statistics.median(r["latency_ms"] for r in before) < 100
    assert all(700 < r["latency_ms"] < 1500 for r in early_in_stall)
    assert max(r["latency_ms"] for r in in_stall) < 1500
    assert prober.recent_p99_ms(window_s=60) > 700
    # Rows carry the swap that was current when they were due.
    assert {r["swap"] for r in rows if r["t_intended"] < stall_from - 0.1} == {0}
    assert {r["swap"] for r in rows if r["t_intended"] > stall_from + 0.1} == {1}


def test_busy_workers_delay_sends_but_latency_counts_from_the_schedule(tmp_path, serve):
    server, prober, rows = run_against_stall(tmp_path, serve, max_in_flight=4)
    # The backlog drains after the stall; what is still due at stop() is not sent.
    check_schedule_kept(rows, prober, min_rows=RPS * (STALL_UNTIL_S + 0.2))

    stall_until = server.stall_until
    # Four requests hold the four workers; the rest of the stall is sent late, after it.
    held_back = [r for r in rows if server.stall_from + 0.2 < r["t_intended"] < stall_until - 0.2]
    assert held_back and all(r["t_start"] >= stall_until - 0.01 for r in held_back)
    assert all(r["latency_ms"] >= (stall_until - r["t_intended"]) * 1000 - 10 for r in held_back)


def test_refused_connections_are_status_0_and_the_loop_is_bounded(tmp_path, closed_port):
    path = tmp_path / "latency.csv"
    log = CsvLog(path, LatencySample)
    url = predict_url(closed_port)
    prober = LatencyProber(url, BODY, rps=20, log=log, clock=SwapClock(), max_duration_s=0.5)
    prober.start()
    time.sleep(1.0)  # past max_duration_s: the prober has stopped sending by itself
    sent_by_then = prober.sent
    prober.stop()
    log.close()

    rows = read_rows(path)
    assert sent_by_then == prober.sent == len(rows) == 10  # 0.5 s at 20 rps
    assert prober.errors == 10
    assert all(r["status"] == 0 for r in rows)
    assert prober.last_error.startswith("ConnectionRefusedError")


def test_rejected_requests_keep_their_http_status(tmp_path, serve):
    def reject(method: str, path: str, body: bytes) -> tuple[int, bytes]:
        return 400, b'{"error": "Expected 2 inputs, got 1"}'

    http = serve(reject)
    url = predict_url(http.server_port)
    prober, rows = ten_requests(tmp_path, url, BODY)
    assert len(rows) == prober.errors == 10
    assert all(r["status"] == 400 for r in rows)
    assert prober.last_error == 'HTTP 400: {"error": "Expected 2 inputs, got 1"}'


def test_concurrency_sends_bursts_that_are_in_flight_together(tmp_path, serve):
    # Each request takes 100 ms, so a burst of 4 shows as 4 requests in the server at once.
    in_flight, most = 0, 0
    lock = threading.Lock()

    def slow(method: str, path: str, body: bytes) -> tuple[int, bytes]:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        time.sleep(0.1)
        with lock:
            in_flight -= 1
        return 200, b'{"predictions": [[0.5]]}'

    http = serve(slow)
    _, rows = probed(tmp_path, predict_url(http.server_port), BODY, 20, 0.5, 1.0, concurrency=4)
    assert len(rows) == 12  # the mean rate is still 20 rps: bursts of 4 at 0, 0.2, 0.4 s
    bursts = sorted({round(r["t_intended"], 6) for r in rows})
    assert len(bursts) == 3
    assert [b - a for a, b in zip(bursts, bursts[1:], strict=False)] == pytest.approx(
        [0.2, 0.2], abs=0.002
    )
    assert most == 4
    assert all(r["latency_ms"] >= 100 for r in rows)  # each counted from when its burst was due


@pytest.mark.parametrize("max_in_flight", [64, 8], ids=["workers-to-spare", "workers-run-out"])
def test_every_request_due_in_a_stall_waits_for_its_end(tmp_path, serve, max_in_flight):
    """No coordinated omission, with workers to spare and with too few.

    A closed-loop client would record one slow request over the stall and send nothing
    else meanwhile; the prober records its whole schedule, each request timed from when
    it was due, so each one due in the stall waited (at least) until its end.
    """
    server = StallingServer()
    http = serve(server)
    log = CsvLog(tmp_path / "latency.csv", LatencySample)
    url = predict_url(http.server_port)
    prober = LatencyProber(
        url, BODY, RPS, log, SwapClock(), max_in_flight=max_in_flight, max_duration_s=RUN_S
    )
    server.now = prober.epoch_clock.now  # one clock for the stall and the rows
    started = time.time()
    server.stall_from = started + STALL_FROM_S
    server.stall_until = server.stall_from + STALL_LENGTH_S
    prober.start()
    while prober.sent < RPS * RUN_S and time.time() < started + RUN_S + 2:
        time.sleep(0.05)
    prober.stop()  # waits for the answers
    log.close()
    rows = read_rows(tmp_path / "latency.csv")

    # The whole schedule, none dropped, none moved: request i was due at t0 + i / RPS.
    assert len(rows) == prober.sent == RPS * RUN_S and prober.errors == 0
    t0 = rows[0]["t_intended"]
    assert t0 == pytest.approx(started, abs=0.05)
    assert [r["t_intended"] - t0 for r in rows] == pytest.approx(
        [i / RPS for i in range(len(rows))], abs=1e-6
    )
    for r in rows:
        assert r["latency_ms"] == pytest.approx((r["t_end"] - r["t_intended"]) * 1000, abs=1e-3)

    # Every request due in the stall is there, and waited from its due time to the end.
    in_stall = [r for r in rows if server.stall_from <= r["t_intended"] < server.stall_until]
    assert len(in_stall) == pytest.approx(RPS * STALL_LENGTH_S, abs=1)
    for r in in_stall:
        rest_of_stall_ms = (server.stall_until - r["t_intended"]) * 1000
        assert r["latency_ms"] >= rest_of_stall_ms - 1e-6  # float rounding only
        assert r["latency_ms"] < rest_of_stall_ms + 500


def test_rest_requests_go_from_one_thread_over_one_connection_to_a_fast_server(tmp_path, serve):
    # Plain REST is sent from the monitor loop (no worker threads); an answer that came
    # before the next request is due frees its connection for it.
    connections = set()

    def fast(method: str, path: str, body: bytes) -> tuple[int, bytes]:
        connections.add(threading.current_thread().name)  # a handler thread per connection
        return 200, b'{"predictions": [[0.5]]}'

    http = serve(fast)
    log = CsvLog(tmp_path / "latency.csv", LatencySample)
    url = predict_url(http.server_port)
    prober = LatencyProber(url, BODY, rps=20, log=log, clock=SwapClock(), max_duration_s=1.0)
    before = set(threading.enumerate())
    prober.start()
    time.sleep(0.5)
    started = [t.name for t in set(threading.enumerate()) - before if t.name.startswith("soak")]
    time.sleep(0.7)  # the schedule is over
    prober.stop()
    log.close()
    assert prober.sent == 20 and prober.errors == 0
    assert started == ["soak-probe"]  # its monitor loop's thread (none given)
    assert len(connections) == 1


def _wake_ups(thread: threading.Thread) -> int:
    """How often the thread has slept and been woken (its voluntary context switches)."""
    status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    return int(status.split("voluntary_ctxt_switches:")[1].split()[0])


def test_a_quick_answer_costs_no_wake_up_of_its_own(tmp_path, serve):
    """An answer that comes before the next request is due is read at that request's
    wake-up: about one wake-up per request, not two (BENCHMARKS.md "soak's own cost")."""
    http = serve(lambda method, path, body: (200, b'{"predictions": [[0.5]]}'))
    log = CsvLog(tmp_path / "latency.csv", LatencySample)
    url = predict_url(http.server_port)
    loop = MonitorLoop("soak-test-loop")
    prober = LatencyProber(url, BODY, rps=20, log=log, clock=SwapClock(), max_duration_s=2.0,
                           loop=loop)  # fmt: skip
    prober.start()
    time.sleep(0.2)
    thread = next(t for t in threading.enumerate() if t.name == "soak-test-loop")
    sent, woken = prober.sent, _wake_ups(thread)
    time.sleep(1.5)
    sent, woken = prober.sent - sent, _wake_ups(thread) - woken
    prober.stop()
    log.close()
    assert sent >= 25 and prober.errors == 0
    assert woken <= 1.5 * sent, (woken, sent)  # watched answers: 2 per request


class SlowDuty:
    """A duty that holds the monitor loop for `hold_s` at each point of its schedule."""

    def __init__(self, loop: MonitorLoop, interval_s: float, hold_s: float):
        self.loop, self.interval_s, self.hold_s = loop, interval_s, hold_s
        self.finished = threading.Event()
        self.stopping = False
        self.due = 0.0

    def start(self) -> None:
        self.due = self.loop.grid(self.interval_s)
        self.loop.add(self)

    def next_due(self) -> float:
        return 0.0 if self.stopping else self.due

    def watched(self) -> list:
        return []

    def run(self, now: float) -> bool:
        if self.stopping:
            return False
        time.sleep(self.hold_s)
        self.due += self.interval_s
        return True


def test_an_answer_that_comes_while_the_loop_is_busy_keeps_the_time_it_came(tmp_path, serve):
    """The loop sends, then another duty holds it for 200 ms while the answer comes: the
    latency is the server's few milliseconds (the kernel's receive time), not the 200 ms
    until the loop could read it."""
    http = serve(lambda method, path, body: (200, b'{"predictions": [[0.5]]}'))
    log = CsvLog(tmp_path / "latency.csv", LatencySample)
    url = predict_url(http.server_port)
    loop = MonitorLoop()
    prober = LatencyProber(
        url, BODY, rps=2, log=log, clock=SwapClock(), max_duration_s=2.0, loop=loop
    )
    prober.start()  # first on the loop: at a shared due time it sends, then the duty holds
    slow = SlowDuty(loop, 0.5, 0.2)
    slow.start()
    time.sleep(2.2)
    prober.stop()
    slow.stopping = True
    loop.wake()
    loop.wait_finished(slow)
    log.close()
    rows = read_rows(tmp_path / "latency.csv")
    assert len(rows) == 4 and all(r["status"] == 200 for r in rows)
    assert all(r["t_end"] - r["t_start"] < 0.1 for r in rows)  # 0.2 s if timed when read
    assert max(r["latency_ms"] for r in rows) < 100


def test_a_large_answer_is_read_as_it_comes(tmp_path, serve):
    """An 8 MiB answer does not fit the socket's buffers: the server waits for soak to read.
    A response that has begun is watched, so it is read at once, not an interval at a time."""
    big = b'{"predictions": "' + b"x" * (8 << 20) + b'"}'
    http = serve(lambda method, path, body: (200, big))
    _, rows = probed(tmp_path, predict_url(http.server_port), BODY, 1, 2.0, 2.5)
    assert len(rows) == 2 and all(r["status"] == 200 for r in rows)
    assert max(r["latency_ms"] for r in rows) < 500  # read one buffer per second: 30+ s


def test_a_call_that_raises_still_gives_each_request_a_row(tmp_path):
    class Broken:
        protocol, url = "rest", "broken"

        def __call__(self) -> tuple[int, str | None]:
            raise RuntimeError("boom")

        def close(self) -> None:
            pass

    prober, rows = ten_requests(tmp_path, "", {}, call=Broken())
    assert len(rows) == prober.errors == 10
    assert all(r["status"] == 0 for r in rows)
    assert prober.last_error == "RuntimeError: boom"


class RawServer:
    """A loopback server run by `serve_connection(conn)` on a thread per connection."""

    def __init__(self, serve_connection):
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._serve_connection = serve_connection
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        try:
            while True:
                conn, _ = self._listener.accept()
                self.connections += 1
                threading.Thread(target=self._serve_connection, args=(conn,), daemon=True).start()
        except OSError:
            pass  # closed: the test is over

    def close(self) -> None:
        self._listener.close()


def read_request(conn: socket.socket) -> bool:
    data = b""
    while not data.endswith(b"}]}"):  # BODY's JSON ends so
        chunk = conn.recv(65536)
        if not chunk:
            return False
        data += chunk
    return True


def test_a_connection_the_server_closed_while_idle_is_replaced_not_an_error(tmp_path):
    # Keep-alive by the headers, but the server closes each connection 50 ms after its
    # answer, as a server's idle timeout does: the next request goes on a new connection.
    def answer_once(conn: socket.socket) -> None:
        with conn:
            if read_request(conn):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                time.sleep(0.05)

    server = RawServer(answer_once)
    prober, rows = probed(tmp_path, predict_url(server.port), BODY, 5, 1.0, 1.3)
    server.close()
    assert len(rows) == 5 and prober.errors == 0
    assert all(r["status"] == 200 for r in rows)
    assert server.connections == 5


def test_a_request_never_answered_times_out_as_status_0(tmp_path):
    held: list[socket.socket] = []

    def never_answer(conn: socket.socket) -> None:
        held.append(conn)  # read nothing, answer nothing, keep it open

    server = RawServer(never_answer)
    prober, rows = probed(tmp_path, predict_url(server.port), BODY, 4, 0.5, 1.0, timeout_s=0.3)
    server.close()
    for conn in held:
        conn.close()
    assert len(rows) == prober.errors == 2  # 0.5 s at 4 rps
    assert all(r["status"] == 0 for r in rows)
    assert all(300 <= r["latency_ms"] < 500 for r in rows)
    assert prober.last_error == "TimeoutError: timed out"
