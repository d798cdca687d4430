"""A predict endpoint that is never the bottleneck, for measuring the prober itself.

HTTP/1.1 keep-alive on asyncio with the least parsing that works (headers end, then
Content-Length bytes of body), one write per response, TCP_NODELAY: tens of
microseconds of CPU per request, so the prober's figures are the prober's.

`POST /stall?s=1.0` starts a stall now: every request that arrives before it ends
is answered at its end. The answer is {"from": t, "until": t + s} (epoch seconds).

    python benchmarks/fast_endpoint.py    # prints the port, serves until killed
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

PREDICTION = b'{"predictions": [[0.5]]}'
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(PREDICTION),
    PREDICTION,
)


class Stall:
    """The one stall window, on the monotonic clock (for scheduling) and in epoch seconds."""

    until_mono = 0.0

    def start(self, seconds: float) -> bytes:
        now_mono, now = time.monotonic(), time.time()
        self.until_mono = now_mono + seconds
        return json.dumps({"from": now, "until": now + seconds}).encode()


class PredictProtocol(asyncio.Protocol):
    def __init__(self, stall: Stall):
        self.stall = stall
        self.buffer = b""

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self.answer(head.split(" ", 2)[1])

    def answer(self, path: str) -> None:
        if path.startswith("/stall"):
            body = self.stall.start(float(path.partition("s=")[2] or 1.0))
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self.stall.until_mono:  # asyncio's clock is time.monotonic
            loop.call_at(self.stall.until_mono, self.transport.write, RESPONSE)
        else:
            self.transport.write(RESPONSE)


async def serve() -> None:
    stall = Stall()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: PredictProtocol(stall), "127.0.0.1", 0, backlog=512)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve())
