"""soak's side of the allocator probe: one JSON line per command over its Unix socket.

The probe (soak/targets/probe/soakprobe.c) answers `stats` with the
allocator's own figures, `release` by giving free memory back to the OS and `decay`
by running the allocator's time-based purging now (jemalloc's lags at low traffic).
Figures an allocator does not tell are None.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from typing import Any

TIMEOUT_S = 10.0  # a release of a few GiB can take a moment
_COMMON = ("pid", "allocator", "in_use_bytes", "free_held_bytes", "mapped_bytes", "arenas")


class ProbeError(Exception):
    """The probe did not answer (server gone, probe not loaded) or answered an error."""


@dataclass(frozen=True)
class ProbeStats:
    """The allocator's own view of the heap (docs/contract.md#allocator-probe)."""

    pid: int
    allocator: str
    in_use_bytes: int | None  # handed out to the program and not freed
    free_held_bytes: int | None  # free, but kept by the allocator
    mapped_bytes: int | None  # address space the allocator got from the OS
    arenas: int | None
    raw: dict[str, Any] = field(default_factory=dict)  # the allocator's figures, its names


@dataclass(frozen=True)
class Called:
    """What the probe called in the allocator for a command, and its result."""

    pid: int
    allocator: str
    called: str  # what the probe called, e.g. "malloc_trim(0)"
    result: int | None


class ProbeClient:
    """Talks to one process's probe socket; a connection per command."""

    def __init__(self, path: str, timeout_s: float = TIMEOUT_S):
        self.path = path
        self.timeout_s = timeout_s

    def command(self, name: str) -> dict[str, Any]:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout_s)
                sock.connect(self.path)
                sock.sendall(name.encode() + b"\n")
                answer = b""
                while not answer.endswith(b"\n"):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    answer += chunk
        except OSError as exc:
            raise ProbeError(f"no answer from the probe at {self.path}: {exc}") from None
        try:
            data = json.loads(answer)
        except ValueError:
            raise ProbeError(f"the probe answered {answer[:100]!r} to {name}") from None
        if not isinstance(data, dict) or "error" in data:
            raise ProbeError(f"the probe refused {name}: {data}")
        return data

    def stats(self) -> ProbeStats:
        data = self.command("stats")
        return ProbeStats(
            pid=int(data["pid"]),
            allocator=str(data["allocator"]),
            in_use_bytes=data.get("in_use_bytes"),
            free_held_bytes=data.get("free_held_bytes"),
            mapped_bytes=data.get("mapped_bytes"),
            arenas=data.get("arenas"),
            raw={k: v for k, v in data.items() if k not in _COMMON},
        )

    def release(self) -> Called:
        return self._call("release")

    def decay(self) -> Called:
        return self._call("decay")

    def _call(self, name: str) -> Called:
        data = self.command(name)
        return Called(
            pid=int(data["pid"]),
            allocator=str(data["allocator"]),
            called=str(data["called"]),
            result=data.get("result"),
        )
