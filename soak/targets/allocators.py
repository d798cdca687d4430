"""Allocators: which library to LD_PRELOAD, and proof that it really loaded.

A variant is only ever reported under an allocator's name when that
allocator's library is seen in the server process's memory maps: LD_PRELOAD
of a missing or wrong path is silently ignored by ld.so.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from soak.config.allocators import ALLOCATORS
from soak.core.errors import EnvironmentFailure

# Where Debian and Ubuntu put shared libraries (also inside TF Serving images).
LIBRARY_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib/x86_64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
)
# Any of these in a process's maps means malloc is not glibc's.
_OTHER_MALLOCS = ("libjemalloc", "libtcmalloc", "libmimalloc")


def locate_library(allocator: str) -> Path | None:
    """The host's library for an allocator, or None (glibc, or not installed)."""
    soname = ALLOCATORS[allocator].soname
    if soname is None:
        return None
    return next(
        (Path(d) / soname for d in LIBRARY_DIRS if (Path(d) / soname).exists()),
        None,
    )


def find_library(allocator: str) -> Path:
    """The host's library for an allocator; a one-line error names the Debian package."""
    found = locate_library(allocator)
    if found is not None:
        return found
    spec = ALLOCATORS[allocator]
    raise EnvironmentFailure(
        f"{allocator}: {spec.soname} not found; install the Debian package "
        f"{spec.debian_package} (scripts/ensure-allocators)"
    )


def container_library(allocator: str) -> str:
    """The library path inside a Debian/Ubuntu image built by `soak image` (x86_64)."""
    return f"{LIBRARY_DIRS[0]}/{ALLOCATORS[allocator].soname}"


def preload_env(*libraries: str | None) -> dict[str, str]:
    """LD_PRELOAD of these libraries, in order (the allocator first, then the probe)."""
    wanted = [library for library in libraries if library]
    return {"LD_PRELOAD": ":".join(wanted)} if wanted else {}


def verify(allocator: str, mapped_paths: set[str]) -> tuple[bool, str]:
    """Is `allocator` the malloc of a process with these maps? (ok, one-line reason)."""
    spec = ALLOCATORS[allocator]
    names = {Path(p).name for p in mapped_paths}
    others = sorted(n for n in names if n.startswith(_OTHER_MALLOCS))
    if spec.soname is None:
        if others:
            return False, f"glibc expected, but {', '.join(others)} is loaded"
        return True, "no other allocator loaded"
    stem = spec.soname.split(".so")[0]
    if any(n.startswith(stem + ".so") for n in names):
        return True, f"{spec.soname} mapped"
    return False, f"{allocator} did not load: {spec.soname} not in the server's memory maps"


def package_version(package: str | None) -> str | None:
    """Debian package version, for environment.json."""
    if not package:
        return None
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None
