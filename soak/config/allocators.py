"""The allocators a variant can choose, and the named fixes built on them.

An allocator is a name, the library to preload, the Debian package. A fix is a
named variant a team can take to production to get kept memory back: an
allocator plus environment, or glibc plus a release after each unload.
Pure data, so that the configuration can check names without looking at the
system; finding and verifying the libraries is `soak.targets.allocators`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


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


# jemalloc's page purging: freed pages go back to the OS over `dirty_decay_ms`
# (10 s by default), then over `muzzy_decay_ms` (0 by default since 5.2).
JEMALLOC_DECAY_DEFAULTS_MS = {"dirty_decay_ms": 10_000, "muzzy_decay_ms": 0}


def purge_delay_s(allocator: str, env: Mapping[str, str]) -> float:
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


@dataclass(frozen=True)
class Fix:
    """A named variant of `--allocators` beside the plain allocators (docs/contract.md#fixes)."""

    name: str
    allocator: str
    env: Mapping[str, str]
    release_after_unload: bool
    why: str  # what it changes in the allocator, for the report


# glibc's mmap threshold, fixed at its default start value: glibc raises it (up to 32 MiB)
# after a large mmapped chunk is freed, and later large tensors then come from the heap,
# whose pages it keeps. Fixed, large tensors stay mmapped and go back to the OS on free.
GLIBC_MMAP_THRESHOLD = 131072

FIXES: dict[str, Fix] = {
    f.name: f
    for f in (
        Fix(
            "glibc-trim",
            "glibc",
            {},
            True,
            "glibc, and malloc_trim(0) right after each old version has unloaded",
        ),
        Fix(
            "glibc-mmap",
            "glibc",
            {"MALLOC_MMAP_THRESHOLD_": str(GLIBC_MMAP_THRESHOLD)},
            False,
            "glibc with a fixed mmap threshold: large tensors are mmapped, and unmapped when freed",
        ),
        Fix(
            "glibc-arenas2",
            "glibc",
            {"MALLOC_ARENA_MAX": "2"},
            False,
            "glibc with at most 2 arenas: fewer heaps to keep free memory in",
        ),
        Fix(
            "jemalloc-bg",
            "jemalloc",
            {"MALLOC_CONF": "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0"},
            False,
            "jemalloc with a background thread that gives freed pages back within about 1 s",
        ),
    )
}

# `--allocators fixes`: glibc, the reference, then the fixes. tcmalloc and mimalloc are
# left out: on the demo model they kept more than glibc, or gave little back on a release.
FIXES_PRESET = "fixes"
FIXES_PRESET_NAMES = (
    "glibc",
    "jemalloc",
    "jemalloc-bg",
    "glibc-trim",
    "glibc-mmap",
    "glibc-arenas2",
)
