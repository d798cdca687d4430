"""Open-loop predict traffic at a constant rate, timed against the schedule.

Requests are sent in bursts of `concurrency` (default 1): burst b is due at
t0 + b * concurrency / rps whatever happened to the earlier ones, so the server
sees `concurrency` requests in flight at once at the same mean rate, as from
that many concurrent clients (more request threads allocating at once, which is
what makes glibc open more arenas). A stalled server does not slow the sending down:
each request in flight has its own connection, up to `max_in_flight`; when all are
busy the send waits, and its latency still counts from when it was due. A stall
therefore shows up as latency, not as fewer requests (no coordinated omission).

Plain REST requests (the default) are sent from the run's monitor loop
(`rest_sender.RestSender`: one thread for the prober and the memory sampler, one
wake-up per request). Other calls go through a `PredictCall` on worker threads
(`open_loop.OpenLoop`: the thread that wakes for a request sends it): `GrpcPredict`
(PredictionService/Predict on one shared HTTP/2 channel, as a gRPC client does; its calls
block) or the parts of a split request. Both record an HTTP status, so the
analysis (ok = status 200) does not care which was used: a gRPC error becomes the HTTP
status TF Serving's REST API answers for the same error code (http_server.cc
ToHTTPStatusCode: INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE 400; NOT_FOUND 404;
UNIMPLEMENTED 501; UNAVAILABLE 503; CANCELLED 499; UNKNOWN, INTERNAL, DATA_LOSS 500; ...),
and 0 when there was no answer from the server, as for REST: the channel could not
connect or lost its connection (UNAVAILABLE raised by the client), or the client's own
timeout ran out (DEADLINE_EXCEEDED).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from typing import Any, Protocol

from soak.samplers import http1
from soak.samplers.clock import EpochClock, SwapClock
from soak.samplers.grpc_client import GrpcCallError, GrpcClient
from soak.samplers.http1 import Connection, HttpError
from soak.samplers.monitor_loop import MonitorLoop
from soak.samplers.open_loop import OpenLoop
from soak.samplers.rest_sender import RestSender
from soak.store.csv_log import CsvLog
from soak.store.records import LatencySample

# How long recent latencies are kept for `recent_p99_ms` (the progress line's 30 s).
RECENT_KEEP_S = 30.0
# Details of an UNAVAILABLE that the gRPC client raises itself (no server answered).
_NO_CONNECTION = (
    "connect",  # failed to connect to all addresses, Connection refused, reset, ...
    "socket closed",
    "broken pipe",
    "end of tcp stream",
    "goaway",
)


class PredictCall(Protocol):
    """One predict request, sent from any worker thread."""

    protocol: str  # "rest" or "grpc"
    url: str  # where it goes, for messages

    def __call__(self) -> tuple[int, str | None]:
        """Send once: (HTTP status, or 0 for no answer; the error text, None if 200)."""
        ...

    def close(self) -> None: ...


class RestPredict:
    """POST a JSON body to TF Serving's REST predict URL; a keep-alive connection per thread.

    The request's bytes are built once; `http1.Connection` sends them and reads the
    answer with far less CPU than requests or http.client (see its module doc).
    """

    protocol = "rest"

    def __init__(self, url: str, body: dict, timeout_s: float = 10.0):
        self.url = url
        self.timeout_s = timeout_s
        self._address, self._request = http1.request("POST", url, json.dumps(body).encode())
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[Connection] = []

    def __call__(self) -> tuple[int, str | None]:
        try:
            status, text = self._connection().exchange(self._request)
        except (OSError, HttpError) as exc:
            return 0, f"{type(exc).__name__}: {exc}"
        if status != 200:
            return status, f"HTTP {status}: {text[:200].decode(errors='replace')}"
        return 200, None

    def _connection(self) -> Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = Connection(*self._address, timeout_s=self.timeout_s)
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()


def grpc_status(error: GrpcCallError) -> int:
    """The HTTP status recorded for a failed gRPC call (see the module doc)."""
    from soak_model_server.status import http_status

    if error.code == "DEADLINE_EXCEEDED":
        return 0
    if error.code == "UNAVAILABLE" and any(m in error.details.lower() for m in _NO_CONNECTION):
        return 0
    return http_status(error.code)


class GrpcPredict:
    """Send one PredictRequest (built once) over a shared gRPC channel."""

    protocol = "grpc"

    def __init__(
        self,
        port: int,
        model_name: str,
        inputs: dict[str, Any],
        signature_name: str = "",
        timeout_s: float = 10.0,
        host: str = "127.0.0.1",
    ):
        self.client = GrpcClient(port, host=host, timeout_s=timeout_s)
        self.url = f"grpc://{self.client.target}/{model_name}"
        self._request = self.client.predict_request(model_name, inputs, signature_name)

    def __call__(self) -> tuple[int, str | None]:
        try:
            self.client.send_predict(self._request)
        except GrpcCallError as error:
            return grpc_status(error), f"gRPC {error.code}: {error.details[:200]}"
        return 200, None

    def close(self) -> None:
        self.client.close()


class LatencyProber:
    """POSTs `body` to `url` at `rps` requests per second; one latency.csv row per request.

    `url` is the predict endpoint, e.g. f"{rest_url}/v1/models/{name}:predict", sent
    from `loop` (the run's monitor loop; one of its own when none is given);
    `call` (e.g. a GrpcPredict) replaces the POST of `body` to `url`, sent from worker
    threads. Runs until stop() or `max_duration_s`. stop() waits for the requests in
    flight (at most `timeout_s`), so every request sent has its row; requests
    that were due but still waiting for a connection are not sent.
    """

    def __init__(
        self,
        url: str,
        body: dict,
        rps: float,
        log: CsvLog,
        clock: SwapClock,
        timeout_s: float = 10.0,
        max_in_flight: int = 64,
        max_duration_s: float = 24 * 3600,
        concurrency: int = 1,
        call: PredictCall | None = None,
        loop: MonitorLoop | None = None,
    ):
        if not rps > 0:
            raise ValueError(f"rps must be positive, got {rps}")
        if not 1 <= concurrency <= max_in_flight:
            raise ValueError(
                f"concurrency must be within 1..max_in_flight ({max_in_flight}), got {concurrency}"
            )
        self.call = call
        self.rps = rps
        self.log = log
        self.clock = clock
        self.timeout_s = timeout_s
        self.max_in_flight = max_in_flight
        self.concurrency = concurrency
        self.max_duration_s = max_duration_s
        self.errors = 0
        self.last_error: str | None = None  # the latest failure, for the user
        self._lock = threading.Lock()
        self._recent: deque[tuple[float, float]] = deque()  # (t_end, latency_ms)
        self._sent_by_workers = 0
        self._sender: RestSender | None = None
        self._workers: OpenLoop | None = None
        if call is None:
            self.url, self.protocol = url, "rest"
            self._sender = RestSender(
                url,
                json.dumps(body).encode(),
                concurrency / rps,
                concurrency,
                max_in_flight,
                max_duration_s,
                timeout_s,
                lambda: clock.swap,
                self._record,
                loop or MonitorLoop("soak-probe"),
            )
        else:
            self.url, self.protocol = call.url, call.protocol
            self._workers = OpenLoop(
                self._send, rps, concurrency, max_in_flight, max_duration_s, name="soak-probe"
            )
        self.epoch_clock = EpochClock()  # the clock of its rows' t_intended, t_start, t_end

    @property
    def sent(self) -> int:
        return self._sender.sent if self._sender is not None else self._sent_by_workers

    def start(self) -> None:
        self.epoch_clock.anchor()
        if self._sender is not None:
            self._sender.start()
        if self._workers is not None:
            self._workers.start()

    def stop(self) -> None:
        if self._sender is not None:
            self._sender.stop()
        if self._workers is not None:
            self._workers.stop()
        if self.call is not None:
            self.call.close()

    def recent_p99_ms(self, window_s: float = 30) -> float | None:
        """p99 latency of the requests answered in the last `window_s` seconds (nearest rank)."""
        horizon = self.epoch_clock.now() - window_s
        with self._lock:
            latencies = sorted(ms for t_end, ms in self._recent if t_end >= horizon)
        if not latencies:
            return None
        return latencies[math.ceil(0.99 * len(latencies)) - 1]

    def _send(self, due: float) -> None:
        """A worker's request through `call`, due at `due` (monotonic)."""
        assert self.call is not None
        swap = self.clock.swap
        with self._lock:
            self._sent_by_workers += 1
        start = time.monotonic()
        try:
            status, error = self.call()
        except Exception as exc:  # a call's bug must not cost the request its row
            status, error = 0, f"{type(exc).__name__}: {exc}"
        self._record(due, start, time.monotonic(), status, error, swap)

    def _record(
        self, due: float, start: float, end: float, status: int, error: str | None, swap: int
    ) -> None:
        """One request's row (monotonic times; status 0: no answer)."""
        latency_ms = (end - due) * 1000.0
        sample = LatencySample(
            t_intended=self.epoch_clock.epoch(due),
            t_start=self.epoch_clock.epoch(start),
            t_end=self.epoch_clock.epoch(end),
            latency_ms=latency_ms,
            status=status,
            swap=swap,
        )
        with self._lock:
            if error is not None:
                self.errors += 1
                self.last_error = error
            self._recent.append((sample.t_end, latency_ms))
            horizon = sample.t_end - RECENT_KEEP_S
            while self._recent[0][0] < horizon:
                self._recent.popleft()
        self.log.append(sample)
