"""Append-only CSV logs that flush at least once a second.

Several sampler threads write while the run goes; a crash or a kill loses at
most the last second of rows (SPEC §3).
"""

from __future__ import annotations

import csv
import threading
import time
from dataclasses import astuple
from pathlib import Path

from soak.store.records import columns

FLUSH_INTERVAL_S = 1.0


class CsvLog:
    """A thread-safe CSV appender of one record type."""

    def __init__(self, path: Path, record_type: type, column_names: list[str] | None = None):
        self.path = path
        self._names = column_names or columns(record_type)
        self._all_names = columns(record_type)
        self._lock = threading.Lock()
        new = not path.exists() or path.stat().st_size == 0
        self._file = path.open("a", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)
        if new:
            self._writer.writerow(self._names)
            self._file.flush()
        self._last_flush = time.monotonic()

    def append(self, record) -> None:
        values = dict(zip(self._all_names, astuple(record), strict=True))
        row = ["" if values[n] is None else values[n] for n in self._names]
        with self._lock:
            if self._file.closed:
                return
            self._writer.writerow(row)
            now = time.monotonic()
            if now - self._last_flush >= FLUSH_INTERVAL_S:
                self._file.flush()
                self._last_flush = now

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.flush()
                self._file.close()
