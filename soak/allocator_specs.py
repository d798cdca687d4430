"""The allocators a variant can choose: names, the library to preload, the Debian package.

Pure data, so that the configuration can check names without looking at the
system; finding and verifying the libraries is `soak.targets.allocators`.
"""

from __future__ import annotations

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
