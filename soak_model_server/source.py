"""TF Serving's FileSystemStoragePathSource with the `latest` version policy (1 version).

Every `--file_system_poll_wait_seconds` it lists the model base path, keeps children whose
names are version numbers (so a temp dir being staged, e.g. `.tmp-4`, is invisible until it
is renamed to `4`), and aspires the highest. 0 polls once; a negative value never polls.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

_VERSION_NAME = re.compile(r"[0-9]+")


def find_versions(base_path: Path) -> dict[int, Path]:
    """Numeric version directories under `base_path` (OSError if it cannot be listed)."""
    versions: dict[int, Path] = {}
    with os.scandir(base_path) as entries:
        for entry in entries:
            if _VERSION_NAME.fullmatch(entry.name) and entry.is_dir():
                versions[int(entry.name)] = Path(entry.path)
    return versions


class FileSystemSource:
    """Polls the base path and hands the aspired version to `on_aspired`."""

    def __init__(
        self,
        model_name: str,
        base_path: Path,
        poll_wait_seconds: int,
        on_aspired: Callable[[dict[int, Path]], None],
    ) -> None:
        self._model_name = model_name
        self._base_path = base_path
        self._poll_wait_seconds = poll_wait_seconds
        self._on_aspired = on_aspired
        self._stop = threading.Event()
        self._last_problem: str | None = None
        self._thread = threading.Thread(
            target=self._run, name="FileSystemStoragePathSource", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def poll_once(self) -> None:
        try:
            versions = find_versions(self._base_path)
        except OSError as error:
            self._report(
                f"Could not find base path {self._base_path} for servable {self._model_name} "
                f"with error {error.strerror or error}",
                logging.ERROR,
            )
            return  # keep serving what we have, as TF Serving does on a failed poll
        if not versions:
            self._report(
                f"No versions of servable {self._model_name} found under base path "
                f"{self._base_path}. Did you forget to name your leaf directory as a number "
                "(eg. '/1/')?",
                logging.WARNING,
            )
            self._on_aspired({})
            return
        self._last_problem = None
        latest = max(versions)
        self._on_aspired({latest: versions[latest]})

    def _report(self, message: str, level: int) -> None:
        """Log a problem once, not on every poll."""
        if message != self._last_problem:
            log.log(level, message)
            self._last_problem = message

    def _run(self) -> None:
        if self._poll_wait_seconds < 0:
            return
        while True:
            self.poll_once()
            if self._poll_wait_seconds == 0 or self._stop.wait(self._poll_wait_seconds):
                return
