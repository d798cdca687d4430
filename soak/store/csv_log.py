"""Append-only CSV logs that flush at least once a second.

Several sampler threads write while the run goes; a crash or a kill loses at
most the last second of rows (SPEC §3). A row is flushed by the next append
that comes FLUSH_INTERVAL_S or more after the last flush, or by the flusher
thread (one for all logs) when no append comes: rare rows (events) are not
held back.
"""

from __future__ import annotations

import csv
import threading
import time
import weakref
from dataclasses import astuple
from pathlib import Path

from soak.store.records import columns

# A row waits at most this long to be flushed (plus the flusher's tick): with the
# samplers' 0.1 s period, a kill loses well under a second of rows.
FLUSH_INTERVAL_S = 0.5
FLUSHER_TICK_S = 0.1


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
        self._dirty = False
        _Flusher.register(self)

    def append(self, record) -> None:
        values = dict(zip(self._all_names, astuple(record), strict=True))
        row = ["" if values[n] is None else values[n] for n in self._names]
        with self._lock:
            if self._file.closed:
                return
            self._writer.writerow(row)
            self._dirty = True
            self._flush_if_due(time.monotonic())

    def _flush_if_due(self, now: float) -> None:
        """With the lock held."""
        if self._dirty and now - self._last_flush >= FLUSH_INTERVAL_S and not self._file.closed:
            self._file.flush()
            self._last_flush = now
            self._dirty = False

    def flush_if_due(self) -> None:
        with self._lock:
            self._flush_if_due(time.monotonic())

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.flush()
                self._file.close()


class _Flusher:
    """One daemon thread that flushes logs whose rows waited a second (weakly held)."""

    _logs: weakref.WeakSet[CsvLog] = weakref.WeakSet()
    _lock = threading.Lock()
    _thread: threading.Thread | None = None

    @classmethod
    def register(cls, log: CsvLog) -> None:
        with cls._lock:
            cls._logs.add(log)
            if cls._thread is None or not cls._thread.is_alive():
                cls._thread = threading.Thread(target=cls._run, name="soak-csv-flush", daemon=True)
                cls._thread.start()

    @classmethod
    def _run(cls) -> None:
        while True:
            time.sleep(FLUSHER_TICK_S)
            with cls._lock:
                logs = list(cls._logs)
            for log in logs:
                log.flush_if_due()
