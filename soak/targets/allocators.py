"""Allocators: which library to LD_PRELOAD, and proof that it really loaded.

A variant is only ever reported under an allocator's name when that
allocator's library is seen in the server process's memory maps: LD_PRELOAD
of a missing or wrong path is silently ignored by ld.so.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from soak.errors import EnvironmentFailure


@dataclass(frozen=True)
class Allocator:
    name: str
    soname: str | None  # None: glibc's own malloc, nothing to preload
    debian_package: str | None


ALLOCATORS: dict[str, Allocator] = {
    a.name: a
    for a in (
        Allocator("glibc", None, None),
        Allocator("jemalloc", "libjemalloc.so.2", "libjemalloc2"),
        Allocator("tcmalloc", "libtcmalloc_minimal.so.4", "libtcmalloc-minimal4"),
        Allocator("mimalloc", "libmimalloc.so.2", "libmimalloc2.0"),
    )
}

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


def find_library(allocator: str) -> Path:
    """The host's library for an allocator; a one-line error names the Debian package."""
    spec = ALLOCATORS[allocator]
    for directory in LIBRARY_DIRS:
        candidate = Path(directory) / spec.soname
        if candidate.exists():
            return candidate
    raise EnvironmentFailure(
        f"{allocator}: {spec.soname} not found; install the Debian package "
        f"{spec.debian_package} (scripts/ensure-allocators)"
    )


def container_library(allocator: str) -> str:
    """The library path inside a Debian/Ubuntu image built by `soak image` (x86_64)."""
    return f"{LIBRARY_DIRS[0]}/{ALLOCATORS[allocator].soname}"


def paths_in_maps(maps: str) -> set[str]:
    """File paths in the text of a /proc/PID/maps (what `verify` looks at)."""
    paths = set()
    for line in maps.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5].startswith("/"):
            paths.add(parts[5].strip())
    return paths


# jemalloc's page purging: freed pages go back to the OS over `dirty_decay_ms`
# (10 s by default), then over `muzzy_decay_ms` (0 by default since 5.2).
JEMALLOC_DECAY_DEFAULTS_MS = {"dirty_decay_ms": 10_000, "muzzy_decay_ms": 0}


def purge_delay_s(allocator: str, env: dict[str, str]) -> float:
    """How long after a free the allocator may still be giving pages back, by design.

    Memory cannot have settled before this: settling earlier reads pages the
    allocator was about to return as kept. glibc keeps or returns at once
    (0); jemalloc decays over its configured times, read from MALLOC_CONF in
    the variant's environment (a negative time means never: nothing to wait
    for). tcmalloc and mimalloc return pages as they go (0); the
    stopped-falling rule covers them.
    """
    if allocator != "jemalloc":
        return 0.0
    decay = dict(JEMALLOC_DECAY_DEFAULTS_MS)
    for option in env.get("MALLOC_CONF", "").split(","):
        key, _, value = option.partition(":")
        if key.strip() in decay and value.strip().lstrip("-").isdigit():
            decay[key.strip()] = int(value)  # jemalloc ignores a malformed value too
    return sum(max(0, ms) for ms in decay.values()) / 1000.0


def preload_env(library: str | None) -> dict[str, str]:
    return {"LD_PRELOAD": library} if library else {}


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
