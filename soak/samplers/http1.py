"""HTTP/1.1 with little Python: a request built once, a response parser, a keep-alive connection.

The prober's CPU is mostly Python run right after a thread wakes (cold caches: on the
2-core VM of BENCHMARKS.md a wake-up alone costs ~100 us). http.client parses every
response's headers through email.parser; against the fast endpoint at 100 rps a prober
request cost 770-830 us of CPU with it and 440-470 us with this. It speaks what a
predict needs: the request bytes are the caller's, responses are framed by
Content-Length, chunked, or read to the close; the connection is kept unless the
server says close. Any error closes it (the next exchange opens a new one), and one
the server closed while idle is noticed before it is reused. `parse_response` takes
the bytes read so far, so a caller that does not wait on the socket (the prober's
`rest_sender`) parses with the same code.
"""

from __future__ import annotations

import select
import socket
from typing import NamedTuple
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


class Response(NamedTuple):
    status: int
    body: bytes
    keep: bool  # the connection may carry the next request


def parse_response(data: bytes, closed: bool = False) -> tuple[Response, bytes] | None:
    """The response at the start of `data` and the bytes after it; None while incomplete.

    `closed`: the server closed the connection, no more bytes come (an incomplete
    response is then an HttpError). Bytes after the response (nobody asked for them)
    make it not `keep`, as does the server's `Connection: close`.
    """
    start = 0
    while True:  # an interim 1xx is followed by the real response
        end = data.find(b"\r\n\r\n", start)
        if end < 0:
            _more_to_come(closed)
            return None
        head = data[start:end].lower()  # names and the values asked about: case does not matter
        line_end = head.find(b"\r\n")
        version, _, rest = head[: line_end if line_end >= 0 else len(head)].partition(b" ")
        try:
            status = int(rest[:3])
        except ValueError:
            raise HttpError(f"not an HTTP status line: {data[start:end][:80]!r}") from None
        start = end + 4
        if not 100 <= status < 200:
            break
    connection = _header(head, _CONNECTION)  # HTTP/1.1 keeps it unless told, 1.0 closes
    keep = version == b"http/1.1" if connection is None else connection != b"close"
    if status in _NO_BODY:
        body, after = b"", start
    elif b"chunked" in (_header(head, _TRANSFER_ENCODING) or b""):
        if (framed := _chunked(data, start)) is None:
            _more_to_come(closed)
            return None
        body, after = framed
    elif (length := _header(head, _CONTENT_LENGTH)) is not None:
        try:
            after = start + int(length)
        except ValueError:
            raise HttpError(f"not a Content-Length: {length[:80]!r}") from None
        if len(data) < after:
            _more_to_come(closed)
            return None
        body = data[start:after]
    else:  # framed by the close
        if not closed:
            return None
        body, after, keep = data[start:], len(data), False
    rest_of_data = data[after:]
    return Response(status, body, keep and not rest_of_data), rest_of_data


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
            data, closed = b"", False
            while (parsed := parse_response(data, closed)) is None:
                chunk = sock.recv(READ_SIZE)
                data, closed = data + chunk, not chunk
        except BaseException:
            self.close()
            raise
        response, _ = parsed
        if not response.keep:
            self.close()
        return response.status, response.body

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _socket(self) -> socket.socket:
        if self._sock is not None and readable(self._sock):
            self.close()  # the server closed it while idle (or sent bytes nobody asked for)
        if self._sock is None:
            self._sock = socket.create_connection(self.address, self.timeout_s)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._sock


def readable(sock: socket.socket) -> bool:
    """Whether an idle socket has something to read (EOF when the server closed it)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


# What `_header` looks for in a lowercased head: a header line's start and name.
_CONNECTION = b"\r\nconnection:"
_TRANSFER_ENCODING = b"\r\ntransfer-encoding:"
_CONTENT_LENGTH = b"\r\ncontent-length:"


def _header(head: bytes, line_start: bytes) -> bytes | None:
    """The value of the header whose line starts `line_start` in a lowercased head (found,
    not every line split: this runs for every answer, right after a wake-up)."""
    at = head.find(line_start)
    if at < 0:
        return None
    at += len(line_start)
    end = head.find(b"\r\n", at)
    return head[at : end if end >= 0 else None].strip()


def _more_to_come(closed: bool) -> None:
    """An incomplete response: fine while the connection is open, an error once closed."""
    if closed:
        raise HttpError("the server closed the connection before the response ended")


def _chunked(data: bytes, at: int) -> tuple[bytes, int] | None:
    """A chunked body from `at`: (the body, where the message ends); None while incomplete."""
    body = b""
    while True:
        end = data.find(b"\r\n", at)
        if end < 0:
            return None
        try:
            size = int(data[at:end].split(b";")[0], 16)
        except ValueError:
            raise HttpError(f"not a chunk size: {data[at:end][:80]!r}") from None
        at = end + 2
        if size == 0:
            while True:  # trailers, up to an empty line
                end = data.find(b"\r\n", at)
                if end < 0:
                    return None
                if end == at:
                    return body, end + 2
                at = end + 2
        if len(data) < at + size + 2:
            return None
        body += data[at : at + size]
        at += size + 2
