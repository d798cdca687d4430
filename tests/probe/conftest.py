"""Real children with the real probe preloaded (after a real allocator), driven over stdin."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from soak.samplers.probe import ProbeClient, ProbeError
from soak.targets import probe_library
from soak.targets.allocators import locate_library, preload_env
from soak.targets.probe_library import SOCKET_ENV

SOCKET_WAIT_S = 20.0
REPLY_WAIT_S = 60.0

# The child keeps what it is told to and answers "ok" once it is done, so a test
# reads memory only after the action. bytearray(n) is zero-filled by CPython (every
# page touched) and mallocs n + 1 bytes: n = 1 MiB - 64 fits the 1 MiB size class
# of jemalloc and tcmalloc (1 MiB + 1 would take jemalloc's 1.25 MiB). 700-byte
# blocks are past pymalloc's 512: malloc's own.
CHILD = r"""
import sys
held, pins = [], []
for line in sys.stdin:
    cmd, *args = line.split()
    if cmd == "alloc":  # N MiB as 1 MiB blocks
        held.extend(bytearray((1 << 20) - 64) for _ in range(int(args[0])))
    elif cmd == "small":  # N MiB as 700-byte blocks, then one kept after them
        held.extend(bytearray(700) for _ in range(int(args[0]) * (1 << 20) // 700))
        pins.append(bytearray(700))
    elif cmd == "free":
        held = []
    elif cmd == "exit":
        break
    print("ok", flush=True)
"""


def rss_anon(pid: int) -> int:
    """RssAnon of /proc/PID/status, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no RssAnon in /proc/{pid}/status")


class Child:
    """A Python child with LD_PRELOAD=<allocator>:<probe> and its own probe socket."""

    def __init__(self, argv: list[str], env: dict[str, str], socket_dir: Path):
        self.socket_dir = socket_dir
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.pid = self.proc.pid
        self._stderr: str | None = None
        self.client = ProbeClient(probe_library.socket_path(socket_dir, self.pid))

    def do(self, command: str) -> None:
        """Send a command; return once the child says it is done."""
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], REPLY_WAIT_S)
        assert ready, f"the child did not answer {command!r} in {REPLY_WAIT_S} s"
        reply = self.proc.stdout.readline().strip()
        assert reply == "ok", f"{command!r}: {reply!r}; stderr: {self.stderr()}"

    def wait_probe(self) -> None:
        """Until the probe answers on the child's socket (bounded)."""
        deadline = time.monotonic() + SOCKET_WAIT_S
        while True:
            assert self.proc.poll() is None, f"the child exited: {self.stderr()}"
            try:
                self.client.stats()
                return
            except ProbeError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)

    def rss_anon(self) -> int:
        return rss_anon(self.pid)

    def maps(self) -> str:
        return Path(f"/proc/{self.pid}/maps").read_text()

    def stderr(self) -> str:
        """What the child wrote to stderr, once it has ended."""
        if self.proc.poll() is None:
            return "(still running)"
        if self._stderr is None and self.proc.stderr:
            self._stderr = self.proc.stderr.read()
            self.proc.stderr.close()
        return self._stderr or ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream:
                stream.close()
        self.stderr()


@pytest.fixture(scope="session")
def probe(tmp_path_factory) -> Path:
    """libsoakprobe.so, built once for the session by the project's own recipe."""
    out = tmp_path_factory.mktemp("probe") / probe_library.LIBRARY_NAME
    probe_library.build(out)
    return out


@pytest.fixture
def child_script() -> str:
    """The child's Python source (for a test that runs it its own way)."""
    return CHILD


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short dir for the sockets: sun_path holds 108 bytes, pytest's tmp paths can be long."""
    path = Path(tempfile.mkdtemp(prefix="soakprobe-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def child_env(
    allocator: str, probe: Path | None, socket_env: str | None, extra: dict[str, str]
) -> dict[str, str]:
    """The child's environment: the preload (allocator first), SOAK_PROBE_SOCKET."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", SOCKET_ENV)}
    library = locate_library(allocator)
    env.update(preload_env(str(library) if library else None, str(probe) if probe else None))
    if socket_env is not None:
        env[SOCKET_ENV] = socket_env
    return {**env, **extra}


@pytest.fixture
def start_child(probe, socket_dir) -> Iterator:
    """start_child(allocator, ...) -> a started Child, always killed at the end.

    argv: what to run (the CHILD script by default); wait: until its probe answers;
    with_probe: preload the probe; socket_env: SOAK_PROBE_SOCKET (None: unset);
    env: more variables.
    """
    children: list[Child] = []
    template = probe_library.socket_template(socket_dir)

    def start(
        allocator: str,
        argv: list[str] | None = None,
        wait: bool = True,
        with_probe: bool = True,
        socket_env: str | None = template,
        env: dict[str, str] | None = None,
    ) -> Child:
        environ = child_env(allocator, probe if with_probe else None, socket_env, env or {})
        child = Child(argv or [sys.executable, "-c", CHILD], environ, socket_dir)
        children.append(child)
        if wait:
            child.wait_probe()
        return child

    yield start
    for child in children:
        child.kill()
