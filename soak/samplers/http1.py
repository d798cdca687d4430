"""One keep-alive HTTP/1.1 connection that sends a request built once, with little Python.

The prober's CPU is mostly Python run right after a thread wakes (cold caches: on the
2-core VM of BENCHMARKS.md a wake-up alone costs ~100 us). http.client parses every
response's headers through email.parser; against the fast endpoint at 100 rps a prober
request cost 770-830 us of CPU with it and 440-470 us with this. It speaks what a
predict needs: the request bytes are the caller's, responses are framed by
Content-Length, chunked, or read to the close; the connection is kept unless the
server says close. Any error closes it (the next exchange opens a new one), and one
the server closed while idle is noticed before it is reused.
"""

from __future__ import annotations

import select
import socket
from urllib.parse import urlsplit

READ_SIZE = 65536
_NO_BODY = (204, 304)


def request(method: str, url: str, body: bytes = b"") -> tuple[tuple[str, int], bytes]:
    """The address and the bytes of one request to an http:// URL, built once, sent often.

    A body goes as JSON (TF Serving's REST API takes nothing else).
    """
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"not an http:// URL: {url}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    head = f"{method} {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (parts.hostname, parts.port or 80), (head + "\r\n").encode() + body


class HttpError(Exception):
    """The server answered nothing usable: closed early, or not HTTP."""


class Connection:
    """A keep-alive connection to `host:port`; `exchange` from one thread at a time."""

    def __init__(self, host: str, port: int, timeout_s: float):
        self.address = (host, port)
        self.timeout_s = timeout_s  # to connect, and for each send and read
        self._sock: socket.socket | None = None

    def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send `request`, read its response: (status, body). OSError or HttpError if none."""
        try:
            sock = self._socket()
            sock.sendall(request)
            return self._response(sock)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _socket(self) -> socket.socket:
        if self._sock is not None and _readable(self._sock):
            self.close()  # the server closed it while idle (or sent bytes nobody asked for)
        if self._sock is None:
            self._sock = socket.create_connection(self.address, self.timeout_s)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._sock

    def _response(self, sock: socket.socket) -> tuple[int, bytes]:
        data = b""
        while True:
            data, head = _split(sock, data, b"\r\n\r\n")
            lines = head.split(b"\r\n")
            version, _, rest = lines[0].partition(b" ")
            try:
                status = int(rest[:3])
            except ValueError:
                raise HttpError(f"not an HTTP status line: {lines[0][:80]!r}") from None
            if not 100 <= status < 200:
                break  # an interim 1xx is followed by the real response
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        if status in _NO_BODY:
            body = b""
        elif b"chunked" in headers.get(b"transfer-encoding", b""):
            data, body = _chunked(sock, data)
        elif b"content-length" in headers:
            data, body = _exactly(sock, data, int(headers[b"content-length"]))
        else:
            body = data + _to_close(sock)
            headers[b"connection"] = b"close"
        connection = headers.get(b"connection", b"" if version == b"HTTP/1.1" else b"close")
        if connection == b"close" or data:
            self.close()  # said so, or bytes past the response: no reuse
        return status, body


def _readable(sock: socket.socket) -> bool:
    """Whether an idle socket has something to read (EOF when the server closed it)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _more(sock: socket.socket, data: bytes) -> bytes:
    chunk = sock.recv(READ_SIZE)
    if not chunk:
        raise HttpError("the server closed the connection before the response ended")
    return data + chunk


def _split(sock: socket.socket, data: bytes, end: bytes) -> tuple[bytes, bytes]:
    """Read up to `end`: (what follows it, what came before it)."""
    while (at := data.find(end)) < 0:
        data = _more(sock, data)
    return data[at + len(end) :], data[:at]


def _exactly(sock: socket.socket, data: bytes, size: int) -> tuple[bytes, bytes]:
    """Read `size` bytes: (what follows them, them)."""
    while len(data) < size:
        data = _more(sock, data)
    return data[size:], data[:size]


def _chunked(sock: socket.socket, data: bytes) -> tuple[bytes, bytes]:
    body = b""
    while True:
        data, line = _split(sock, data, b"\r\n")
        try:
            size = int(line.split(b";")[0], 16)
        except ValueError:
            raise HttpError(f"not a chunk size: {line[:80]!r}") from None
        if size == 0:
            while True:  # trailers, up to an empty line
                data, trailer = _split(sock, data, b"\r\n")
                if not trailer:
                    return data, body
        data, chunk = _exactly(sock, data, size + 2)
        body += chunk[:size]


def _to_close(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(READ_SIZE):
        data += chunk
    return data
