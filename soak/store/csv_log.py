"""Append-only CSV logs, written every half second.

Several sampler threads write while the run goes; a crash or a kill loses at
most the last second of rows (docs/contract.md#run-directory). An append only keeps
the record; one flusher thread (for all logs) formats and writes the rows of every
log that has new ones every FLUSH_INTERVAL_S. The samplers then do no formatting or
I/O right after their wake-ups, when Python runs cold and costs most (soak's own CPU,
benchmarks/monitor_overhead.py): rows formatted in a batch cost less, and a write
stuck on the disk holds the flusher, not the prober's next send. Rare rows (events)
are not held back more than half a second.
"""

from __future__ import annotations

import csv
import threading
import time
import weakref
from operator import attrgetter
from pathlib import Path
from typing import Any

from soak.store.records import columns

# A row waits at most this long (plus the time to flush) before it is on disk.
FLUSH_INTERVAL_S = 0.5


class CsvLog:
    """A thread-safe CSV appender of one record type."""

    def __init__(self, path: Path, record_type: type, column_names: list[str] | None = None):
        self.path = path
        names = column_names or columns(record_type)
        values = attrgetter(*names)  # a tuple of the fields, in column order
        self._values = values if len(names) > 1 else lambda record: (values(record),)
        self._lock = threading.Lock()  # the pending records (appends are quick under it)
        self._write_lock = threading.Lock()  # the file: one flush or close at a time
        self._pending: list[Any] = []
        self._closed = False
        new = not path.exists() or path.stat().st_size == 0
        self._file = path.open("a", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)
        if new:
            self._writer.writerow(names)
            self._file.flush()
        _Flusher.register(self)

    def append(self, record: Any) -> None:
        with self._lock:
            if not self._closed:
                self._pending.append(record)

    def flush(self) -> None:
        """Write the pending rows to the file (the flusher's job; also at close)."""
        with self._write_lock:
            with self._lock:
                pending, self._pending = self._pending, []
            if not pending or self._file.closed:
                return
            values = self._values
            self._writer.writerows(
                ["" if v is None else v for v in values(record)] for record in pending
            )
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.flush()
        with self._write_lock:
            self._file.close()


class _Flusher:
    """One daemon thread that flushes every log with new rows each FLUSH_INTERVAL_S
    (logs weakly held)."""

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
            time.sleep(FLUSH_INTERVAL_S)
            with cls._lock:
                logs = list(cls._logs)
            for log in logs:
                log.flush()
