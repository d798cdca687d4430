"""CSV logs: a row reaches the file within a second, even when no other row follows."""

from __future__ import annotations

import time

from soak.store.csv_log import CsvLog
from soak.store.records import Event


def test_a_lone_row_is_on_disk_within_a_second(tmp_path):
    path = tmp_path / "events.csv"
    log = CsvLog(path, Event)
    try:
        log.append(Event(1.0, 0, "staged", 1, "1"))
        time.sleep(0.05)
        log.append(Event(2.0, 0, "started"))  # within the interval: buffered
        deadline = time.monotonic() + 1.0
        while path.read_text().count("\n") < 3:
            assert time.monotonic() < deadline, path.read_text()
            time.sleep(0.02)
    finally:
        log.close()
