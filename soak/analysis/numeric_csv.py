"""A numeric CSV of a run (memory.csv, latency.csv) as a frame of numbers.

A day-long run's latency.csv is 1.7 M rows and 140 MB. It is parsed straight from
the file, CHUNK_ROWS at a time, every wanted column as float64: its bytes are never
held whole, nor the parser's words for all of its rows. Only a file with text in a
number column (garbage) is read the old way: as text, whole, each column coerced
to numbers. Both ways read the same rows: pandas' C parser, lines with too many
fields skipped, a last line cut off mid-write (a kill) left out; only the dtype of
an all-integer column differs (float64 against int64, the same values).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from soak.core.errors import UsageError
from soak.store.records import CGROUP_MEMORY_COLUMNS

CHUNK_ROWS = 1 << 20  # rows parsed at a time
# Columns that may be empty in every row without the row being broken.
OPTIONAL = set(CGROUP_MEMORY_COLUMNS) | {"swap", "cpu_s"}


def read_csv_frame(path: Path, names: list[str], checked: Sequence[str] = ()) -> pd.DataFrame:
    """The `names` columns of a numeric CSV, sorted by the first; unreadable rows dropped.

    Missing columns (a process target has no cgroup figures) come back all-NaN. A row
    must have a number in each column of `names` and `checked` that the file has, but the
    OPTIONAL ones; `checked` columns are not returned.
    """
    read = [*names, *checked]
    try:
        columns = _numbers(path, read)
    except ValueError:  # text in a number column (or nothing to parse): read as text
        columns = _coerced(path, read)
    if columns is None or names[0] not in columns:
        return empty(names)  # without times the rows cannot be placed
    required = [names[0]] + [n for n in read[1:] if n in columns and n not in OPTIONAL]
    complete = np.logical_and.reduce([~np.isnan(columns[n]) for n in required])
    rows = None if complete.all() else np.flatnonzero(complete)  # None: all, in file order
    t = columns[names[0]] if rows is None else columns[names[0]][rows]
    if not np.all(t[1:] >= t[:-1]):
        order = np.argsort(t, kind="stable")
        rows = order if rows is None else rows[order]

    def column(n: str) -> np.ndarray:  # each read column let go once it is picked
        if n not in columns:
            return np.full(len(t), np.nan)
        return columns.pop(n) if rows is None else columns.pop(n)[rows]

    return pd.DataFrame({n: column(n) for n in names}, copy=False)


def _numbers(path: Path, names: list[str]) -> dict[str, np.ndarray] | None:
    """The file's columns among `names`, as float64 (None: the file is missing).

    ValueError (pandas' ParserError and EmptyDataError are ones) if it does not parse so.
    """
    try:
        f = path.open("rb")
    except OSError:
        return None
    with f:
        chunks = pd.read_csv(
            _CompleteLines(f),
            chunksize=CHUNK_ROWS,
            dtype={n: np.float64 for n in names},
            on_bad_lines="skip",
            encoding_errors="replace",
        )
        with chunks:
            pieces: dict[str, list[np.ndarray]] = {}
            for chunk in chunks:
                for n in names:
                    if n in chunk.columns:
                        pieces.setdefault(n, []).append(chunk[n].to_numpy())
    # one column at a time: its pieces are let go as it is joined
    return {n: np.concatenate(pieces.pop(n)) for n in list(pieces)}


def _coerced(path: Path, names: list[str]) -> dict[str, np.ndarray] | None:
    """The file's columns among `names` read as text, whole, and coerced to numbers: what
    does not parse (a garbled row) is NaN (None: nothing to read)."""
    frame = _parsed(path)
    if frame is None:
        return None
    return {
        n: pd.to_numeric(frame[n], errors="coerce").to_numpy(dtype=float)
        for n in names
        if n in frame.columns
    }


class _CompleteLines(io.RawIOBase):
    """A file read up to its last newline: a kill may have cut the last line mid-write."""

    def __init__(self, f: io.BufferedReader):
        self.f = f
        self.left = _complete_size(f)
        f.seek(0)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        got = self.f.readinto(memoryview(buffer)[: self.left])
        self.left -= got
        return got


def _complete_size(f: io.BufferedReader, block: int = 1 << 16) -> int:
    """Bytes up to and including the file's last newline."""
    end = f.seek(0, os.SEEK_END)
    while end > 0:
        start = max(0, end - block)
        f.seek(start)
        at = f.read(end - start).rfind(b"\n")
        if at >= 0:
            return start + at + 1
        end = start
    return 0


def _parsed(path: Path) -> pd.DataFrame | None:
    """The CSV as pandas reads it, numbers or text (None: empty); its bytes are let go
    once parsed."""
    data = complete_bytes(path)
    if not data.strip():
        return None
    try:  # numbers parse as numbers; a column with garbage in it comes back as text
        return pd.read_csv(io.BytesIO(data), on_bad_lines="skip", encoding_errors="replace")
    except pd.errors.ParserError as exc:
        raise UsageError(f"{path}: not a readable CSV: {exc}") from None


def complete_bytes(path: Path) -> bytes:
    """The file without a last line that was cut off mid-write."""
    try:
        data = path.read_bytes()
    except OSError:
        return b""
    if data and not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
    return data


def empty(names: list[str]) -> pd.DataFrame:
    return pd.DataFrame({n: np.array([], dtype=float) for n in names})
