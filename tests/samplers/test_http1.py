"""http1.Connection against a scripted server on loopback: framing, keep-alive, failures."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from soak.samplers.http1 import Connection, HttpError

REQUEST = b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
CLOSE = b""  # in a script: close the connection (the next item is on a new one)


class ScriptedServer:
    """Per item of `script`: read a request and send the item, or close the connection."""

    def __init__(self, script: list[bytes]):
        self.script = script
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn = None
        try:
            for item in self.script:
                if conn is None:
                    conn, _ = self._listener.accept()
                    self.connections += 1
                if item == CLOSE:
                    conn.close()
                    conn = None
                    continue
                data = b""
                while not data.endswith(b"{}"):
                    data += conn.recv(4096)
                conn.sendall(item)
            while conn is not None and conn.recv(4096):
                pass  # held open until the client closes it
        except OSError:
            pass  # the test is over
        finally:
            if conn is not None:
                conn.close()

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def scripted():
    servers: list[ScriptedServer] = []

    def _start(*script: bytes) -> tuple[Connection, ScriptedServer]:
        server = ScriptedServer(list(script))
        servers.append(server)
        return Connection("127.0.0.1", server.port, timeout_s=2), server

    yield _start
    for server in servers:
        server.close()


def ok(body: bytes, *headers: bytes) -> bytes:
    head = b"".join(h + b"\r\n" for h in headers)
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), head, body)


def test_content_length_responses_share_one_connection(scripted):
    not_found = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno"
    connection, server = scripted(ok(b'{"a": 1}'), not_found)
    assert connection.exchange(REQUEST) == (200, b'{"a": 1}')
    assert connection.exchange(REQUEST) == (404, b"no")
    assert server.connections == 1


def test_chunked_responses_are_joined_and_keep_the_connection(scripted):
    chunked = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'3;x=y\r\n{"a\r\n5\r\n": 1}\r\n0\r\nX-Trailer: 1\r\n\r\n'
    )
    connection, server = scripted(chunked, ok(b"next"))
    assert connection.exchange(REQUEST) == (200, b'{"a": 1}')
    assert connection.exchange(REQUEST) == (200, b"next")
    assert server.connections == 1


def test_close_delimited_and_connection_close_responses_reconnect(scripted):
    unframed = b"HTTP/1.0 200 OK\r\n\r\nall of it"
    connection, server = scripted(unframed, CLOSE, ok(b"x", b"Connection: close"), CLOSE, ok(b"y"))
    assert connection.exchange(REQUEST) == (200, b"all of it")
    assert connection.exchange(REQUEST) == (200, b"x")
    assert connection.exchange(REQUEST) == (200, b"y")
    assert server.connections == 3


def test_a_connection_the_server_closed_while_idle_is_reopened(scripted):
    connection, server = scripted(ok(b"1"), CLOSE, ok(b"2"))
    assert connection.exchange(REQUEST) == (200, b"1")
    time.sleep(0.1)  # the server's close arrives
    assert connection.exchange(REQUEST) == (200, b"2")
    assert server.connections == 2


def test_no_answer_raises_and_the_next_exchange_reconnects(scripted):
    short = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"
    connection, server = scripted(short, CLOSE, b"SSH-2.0-OpenSSH\r\n\r\n", CLOSE, ok(b"z"))
    with pytest.raises(HttpError, match="closed the connection before the response ended"):
        connection.exchange(REQUEST)
    with pytest.raises(HttpError, match="not an HTTP status line"):
        connection.exchange(REQUEST)
    assert connection.exchange(REQUEST) == (200, b"z")
    assert server.connections == 3


def test_a_server_that_stops_answering_times_out(scripted):
    connection, _ = scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
    connection.timeout_s = 0.2
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        connection.exchange(REQUEST)
    assert time.monotonic() - started < 1.5
