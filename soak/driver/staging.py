"""Atomic version staging into the private model base path.

TF Serving polls the base path; if it saw a version dir while it was still
being copied it would try to load half a model. So a version is copied into a
non-numeric temp dir (which the server ignores) and then renamed into place.

Files are hard-linked where the source is on the same file system (a model is
read, never written, by the server): staging a 128 MiB version then costs
microseconds instead of a copy's CPU second, which would land in soak's own
overhead at every swap. Across file systems they are copied.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

STAGING_PREFIX = ".soak-staging-"


class VersionStager:
    """Stages version numbers 1, 2, 3... from the given sources, cycling through them."""

    def __init__(self, sources: list[Path], base_path: Path):
        self.sources = sources
        self.base_path = base_path
        base_path.mkdir(parents=True, exist_ok=True)

    def source_for(self, version: int) -> Path:
        return self.sources[(version - 1) % len(self.sources)]

    def stage(self, version: int) -> Path:
        """Copy the source of `version` in, then rename it to `<version>` (atomic)."""
        target = self.base_path / str(version)
        tmp = self.base_path / f"{STAGING_PREFIX}{version}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(self.source_for(version), tmp, copy_function=_link_or_copy)
        tmp.rename(target)
        return target

    def remove(self, version: int) -> None:
        """Delete an unloaded version from disk, so long runs do not fill it."""
        shutil.rmtree(self.base_path / str(version), ignore_errors=True)

    def remove_all(self) -> None:
        shutil.rmtree(self.base_path, ignore_errors=True)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed there
        shutil.copy2(source, target)
