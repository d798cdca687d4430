"""The allocator probe (docs/contract.md#allocator-probe): where its library is, built from source
when missing.

`libsoakprobe.so` is preloaded after the variant's allocator
(`LD_PRELOAD=<allocator>:<probe>`). From a thread of its own it answers
`stats` (the allocator's own figures) and `release` (give free memory back)
on the Unix socket named by `SOAK_PROBE_SOCKET`, `%p` in it replaced by its
pid: every process that loads it (a wrapper shell, the server) has its own
socket, and soak talks to the server's. The source and its one build recipe
(`probe/build.sh`) ship in the package, so the host (scripts/setup) and every
image soak builds compile the same file.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE_DIR = Path(__file__).resolve().parent / "probe"
SOURCE = PROBE_DIR / "soakprobe.c"
BUILD_SCRIPT = PROBE_DIR / "build.sh"
LIBRARY_NAME = "libsoakprobe.so"
# Where soak's images hold it (docker/standin, docker/allocators).
CONTAINER_LIBRARY = f"/usr/lib/soak/{LIBRARY_NAME}"
SOCKET_ENV = "SOAK_PROBE_SOCKET"
INSTALLED_ENV = "SOAK_PROBE_LIBRARY"  # a probe built beforehand, used as it is
SOCKET_NAME = "probe.%p.sock"  # %p: the pid of the process that listens
# The host dir of the sockets is bind-mounted here in a container.
CONTAINER_SOCKET_DIR = "/run/soak-probe"
# sun_path holds 108 bytes with its NUL; the pid takes up to 7 digits.
MAX_SOCKET_PATH = 100


class ProbeUnavailable(Exception):
    """The probe cannot be used for this run; the message says why, in one line."""


def source_hash() -> str:
    digest = hashlib.sha256(SOURCE.read_bytes() + BUILD_SCRIPT.read_bytes())
    return digest.hexdigest()[:12]


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "soak"


def host_library() -> Path:
    """The probe for servers on this host: the one `SOAK_PROBE_LIBRARY` names (soak's Job
    image, which has no compiler, names the one it was built with), else built once per
    source hash into the cache."""
    installed = os.environ.get(INSTALLED_ENV)
    if installed:
        if not Path(installed).is_file():
            raise ProbeUnavailable(f"{INSTALLED_ENV} names {installed}, which is not a file")
        return Path(installed)
    try:
        path = _cache_dir() / f"probe-{source_hash()}" / LIBRARY_NAME
    except OSError as exc:  # a soak installed without its package data
        raise ProbeUnavailable(f"the probe's source is missing: {exc}") from None
    if not path.exists():
        build(path)
    return path


def build(out: Path) -> None:
    """Compile the probe into `out` (atomically); ProbeUnavailable if it cannot be."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        result = subprocess.run(
            ["sh", str(BUILD_SCRIPT), tmp], capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        os.unlink(tmp)
        raise ProbeUnavailable(f"building the probe failed: {exc}") from None
    if result.returncode != 0:
        os.unlink(tmp)
        lines = [ln.strip() for ln in result.stderr.splitlines() if ln.strip()]
        why = lines[-1] if lines else f"exit code {result.returncode}"
        raise ProbeUnavailable(f"building the probe failed (no C compiler?): {why[:200]}")
    os.replace(tmp, out)


def socket_dir_for(variant_dir: Path) -> Path:
    """Where a variant's probe sockets go: its dir, or a short temporary one when the
    path would not fit a socket address."""
    wanted = variant_dir.resolve() / SOCKET_NAME
    if len(str(wanted).replace("%p", "9999999")) <= MAX_SOCKET_PATH:
        return variant_dir.resolve()
    return Path(tempfile.mkdtemp(prefix="soak-probe-"))


def socket_path(socket_dir: Path | str, pid: int) -> str:
    """The socket of process `pid` (as the process sees its own pid)."""
    return f"{socket_dir}/{SOCKET_NAME.replace('%p', str(pid))}"


def socket_glob() -> str:
    """A glob of the sockets' names (to remove them at the end)."""
    return SOCKET_NAME.replace("%p", "*")


def socket_template(socket_dir: Path | str) -> str:
    """SOAK_PROBE_SOCKET's value: the socket path with `%p` for the pid."""
    return f"{socket_dir}/{SOCKET_NAME}"


def main() -> int:
    """`python -m soak.targets.probe_library`: build the host's probe (scripts/setup)."""
    try:
        print(host_library())
    except ProbeUnavailable as exc:
        print(f"soak: {exc}; runs go on without attribution", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
