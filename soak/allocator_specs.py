"""The allocators a variant can choose: names, the library to preload, the Debian package.

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
