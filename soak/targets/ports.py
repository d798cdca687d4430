"""Free loopback ports for the servers' REST and gRPC listeners.

A run picks every variant's ports up front (the plan), minutes before the
later variants start. Ports from the kernel's ephemeral range could meanwhile
become the local end of some outgoing connection (the prober's own, even), so
they are taken from below that range, where only an explicit bind can take them.
"""

from __future__ import annotations

import contextlib
import random
import socket
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PORT = 10000


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it; the server binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_ports(count: int) -> tuple[int, ...]:
    """`count` distinct ports nobody listens on, below the ephemeral range if there is room."""
    low = _ephemeral_low()
    candidates = list(range(LOWEST_PORT, low))
    if len(candidates) < 10 * count:
        return _os_chosen(count)
    start = random.randrange(len(candidates))
    found: list[int] = []
    for port in candidates[start:] + candidates[:start]:
        if _bindable(port):
            found.append(port)
            if len(found) == count:
                return tuple(found)
    return _os_chosen(count)


def _ephemeral_low() -> int:
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    """Free on every address (a server may listen on 0.0.0.0, as TF Serving's gRPC does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("", port))
        except OSError:
            return False
    return True


def _os_chosen(count: int) -> tuple[int, ...]:
    found: set[int] = set()
    while len(found) < count:
        with contextlib.suppress(OSError):
            found.add(free_port())
    return tuple(found)
