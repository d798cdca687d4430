"""The prober's REST requests, sent from the monitor loop (no thread of their own).

Request i is due at t0 + (i // burst) * burst / rps, whatever happened to the others
(open loop). At its due time the loop sends it on an idle keep-alive connection (a new
one when all are busy, up to `max_in_flight`). Its answer is read when the loop next
wakes for the prober (the next send, at the latest `LOOK_S` after this one), not when
it comes: at default rates an answer costs no wake-up of its own. An answer's end is
the kernel's receive time of its last bytes (SO_TIMESTAMPNS), not when the loop read
it, so reading it later does not add to it. An answer not complete at that look (a slow
or a large one) is watched from then on: read as it comes, the server never held up by
a full socket buffer for more than one look. With every connection busy a due request
waits for the first answer (every busy connection watched) and goes at once: late, and
timed from its due time (no coordinated omission).

A send that blocks (a server that stopped reading, its socket buffers full) holds the
loop for at most `timeout_s` (SO_SNDTIMEO); requests due meanwhile go late and count
from their due time.
"""

from __future__ import annotations

import math
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable

from soak.samplers import http1
from soak.samplers.http1 import HttpError, parse_response
from soak.samplers.monitor_loop import MonitorLoop

# (due, start, end, status or 0 for no answer, error text or None, swap); monotonic times
Record = Callable[[float, float, float, int, "str | None", int], None]
# Linux's (asm-generic) number: Python 3.11's socket module does not name it.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
# Flags as plain ints: socket's are enums, and `|` on them runs Python on every call.
_DONTWAIT = int(socket.MSG_DONTWAIT)
_PEEK = int(socket.MSG_PEEK | socket.MSG_DONTWAIT)
_KERNEL_TIME = struct.Struct("qq")  # SO_TIMESTAMPNS: seconds, nanoseconds (64-bit Linux)
# Room for one SO_TIMESTAMPNS control message (a struct timespec) and its header.
_TIMESTAMP_SPACE = socket.CMSG_SPACE(16)
# An answer not read by this long after its send is looked at, and watched if not complete.
LOOK_S = 0.1


class _Exchange:
    """A request in flight and what has come of its response."""

    __slots__ = ("sock", "due", "start", "swap", "deadline", "look", "data", "received")

    def __init__(self, sock: socket.socket, due: float, start: float, swap: int, timeout_s: float):
        self.sock = sock
        self.due = due
        self.start = start
        self.swap = swap
        self.deadline = start + timeout_s
        self.look = start + LOOK_S  # math.inf once looked at: then watched
        self.data = b""
        self.received: float | None = None  # epoch time the kernel got the last bytes


class RestSender:
    """POSTs the request's bytes to `url` on schedule from `loop`; `record` gets each one."""

    def __init__(
        self,
        url: str,
        body: bytes,
        interval_s: float,
        burst: int,
        max_in_flight: int,
        max_duration_s: float,
        timeout_s: float,
        swap: Callable[[], int],
        record: Record,
        loop: MonitorLoop,
    ):
        self.address, self.request = http1.request("POST", url, body)
        self.interval_s = interval_s
        self.burst = burst
        self.max_in_flight = max_in_flight
        self.max_duration_s = max_duration_s
        self.timeout_s = timeout_s
        self.swap = swap
        self.record = record
        self.loop = loop
        self.finished = threading.Event()
        self.sent = 0
        self.t0 = 0.0  # monotonic time request 0 was due
        self._next_due = math.inf  # the due time of request `_index`
        self._index = 0
        self._idle: list[socket.socket] = []
        # requests in flight by their socket, in the order sent
        self._busy: dict[socket.socket, _Exchange] = {}
        self._watching: set[socket.socket] = set()  # busy ones looked at, not complete
        self._blocked = False  # a request is due and every connection is busy
        self._stopping = False

    def start(self) -> None:
        self.finished.clear()
        self._stopping = self._blocked = False
        self._index = 0
        self.t0 = self._next_due = self.loop.grid(self.interval_s)
        self.loop.add(self)

    def stop(self) -> None:
        """Send nothing more; wait for the answers in flight (at most `timeout_s`)."""
        self._stopping = True
        self.loop.wake()
        self.loop.wait_finished(self)

    # The loop thread's:

    def next_due(self) -> float:
        if self._stopping and not self._busy:
            return 0.0  # at once: to end
        # blocked: the next send waits for an answer (watched), not for its time
        due = math.inf if self._stopping or self._blocked else self._next_due
        for exchange in self._busy.values():  # its first look, or its deadline
            due = min(due, exchange.look, exchange.deadline)
        return due

    def watched(self) -> Iterable[socket.socket]:
        return self._busy.keys() if self._blocked or self._stopping else self._watching

    def run(self, now: float) -> bool:
        if self._busy:
            self._collect(now)
        if self._stopping or self._next_due == math.inf:
            if self._busy:
                return True
            for sock in self._idle:
                sock.close()
            self._idle = []
            return False
        while self._next_due <= now and self._send(self._next_due):
            self._index += 1
            offset = (self._index // self.burst) * self.interval_s
            self._next_due = self.t0 + offset if offset < self.max_duration_s else math.inf
        return True

    def _send(self, due: float) -> bool:
        """Send the request due at `due`; False when no connection is free for it."""
        sock = self._free_connection()
        if sock is None and len(self._busy) >= self.max_in_flight:
            self._blocked = True
            return False
        self._blocked = False
        swap, start = self.swap(), time.monotonic()
        self.sent += 1
        try:
            if sock is None:
                sock = self._connect()
            sock.sendall(self.request)
        except OSError as exc:
            if sock is not None:
                sock.close()
            self.record(due, start, time.monotonic(), 0, f"{type(exc).__name__}: {exc}", swap)
            return True
        self._busy[sock] = _Exchange(sock, due, start, swap, self.timeout_s)
        return True

    def _free_connection(self) -> socket.socket | None:
        while self._idle:
            sock = self._idle.pop()
            try:  # nothing to read on an idle connection: still open
                sock.recv(1, _PEEK)
            except BlockingIOError:
                return sock
            except OSError:
                pass
            sock.close()  # the server closed it while idle (or sent bytes nobody asked for)
        return None

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.address, self.timeout_s)
        try:
            sock.settimeout(None)  # blocking: MSG_DONTWAIT reads, SO_SNDTIMEO bounds sends
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            seconds = int(self.timeout_s)
            timeval = struct.pack("ll", seconds, int((self.timeout_s - seconds) * 1e6))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        except OSError:
            sock.close()
            raise
        return sock

    def _collect(self, now: float) -> None:
        """Read what has come for every request in flight; record the complete and the
        timed out."""
        wall_minus_mono = time.time() - now
        for exchange in list(self._busy.values()):
            try:
                closed = self._read(exchange)
                parsed = parse_response(exchange.data, closed)
            except (OSError, HttpError) as exc:
                self._finish(exchange, time.monotonic(), 0, f"{type(exc).__name__}: {exc}")
                continue
            if parsed is not None:
                response = parsed[0]
                received = exchange.received
                end = now if received is None else received - wall_minus_mono
                error = None
                if response.status != 200:
                    text = response.body[:200].decode(errors="replace")
                    error = f"HTTP {response.status}: {text}"
                self._finish(exchange, min(max(end, exchange.start), now), response.status, error)
                if response.keep:
                    self._idle.append(exchange.sock)
                else:
                    exchange.sock.close()
            elif exchange.deadline <= now:
                self._finish(exchange, now, 0, "TimeoutError: timed out")
            elif exchange.data or exchange.look <= now:
                exchange.look = math.inf
                self._watching.add(exchange.sock)

    def _read(self, exchange: _Exchange) -> bool:
        """Read all there is without waiting; True when the server closed the connection."""
        while True:
            try:
                data, ancillary, _, _ = exchange.sock.recvmsg(
                    http1.READ_SIZE, _TIMESTAMP_SPACE, _DONTWAIT
                )
            except BlockingIOError:
                return False
            for _, kind, value in ancillary:  # SOL_SOCKET's: the only ones asked for
                if kind == SO_TIMESTAMPNS:
                    seconds, nanoseconds = _KERNEL_TIME.unpack_from(value)
                    exchange.received = seconds + nanoseconds * 1e-9
            if not data:
                return True
            exchange.data += data
            if len(data) < http1.READ_SIZE:
                return False

    def _finish(self, exchange: _Exchange, end: float, status: int, error: str | None) -> None:
        del self._busy[exchange.sock]
        self._watching.discard(exchange.sock)
        if status == 0:
            exchange.sock.close()
        self.record(exchange.due, exchange.start, end, status, error, exchange.swap)
