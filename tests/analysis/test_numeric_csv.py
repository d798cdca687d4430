"""read_csv_frame: the typed, chunked read gives the frame the old read as text gave."""

import numpy as np
import pandas as pd
import pytest

from soak.analysis import numeric_csv
from soak.analysis.numeric_csv import read_csv_frame
from soak.store.records import LatencySample, MemorySample, columns

HEADER = "t,rss_bytes,anon_bytes,swap,cpu_s\n"
FILES = {
    "well formed, out of order": HEADER + "2.0,200,20,1,0.5\n1.0,100,10,0,0.2\n3.0,300,30,1,0.7\n",
    "empty optional cells": HEADER + "1.0,100,10,,\n2.0,200,20,1,\n",
    "a required cell empty": HEADER + "1.0,100,,0,0.1\n2.0,200,20,1,0.2\n",
    "cut by a kill": HEADER + "1.0,100,10,0,0.1\n2.0,20",
    "a line too long": HEADER + "1.0,100,10,0,0.1\n2.0,200,20,1,0.2,9\n3.0,300,30,1,0.3\n",
    "a line too short": HEADER + "1.0,100,10,0,0.1\n2.0,200\n3.0,300,30\n",
    "garbage": HEADER + "1.0,100,10,0,0.1\n2.0,oops,20,1,0.2\n3.0,300,30,1,0.3\n",
    "nan and inf": HEADER + "1.0,nan,10,0,inf\n2.0,200,20,1,-inf\n",
    "columns of another soak": "cpu_s,t,extra,anon_bytes,rss_bytes\n0.1,1.0,x,10,100\n",
    "header only": HEADER,
    "header cut": "t,rss_b",
    "blank": "\n\n",
    "no time column": "rss_bytes,anon_bytes\n100,10\n",
}


@pytest.fixture
def read_as_text(monkeypatch):
    """read_csv_frame with the typed read failing, as it does on text in a number column."""

    def text_only(path, names):
        raise ValueError("as text")

    def read(path, names):
        with monkeypatch.context() as m:
            m.setattr(numeric_csv, "_numbers", text_only)
            return read_csv_frame(path, names)

    return read


@pytest.mark.parametrize("name", sorted(FILES))
def test_typed_read_equals_the_read_as_text(tmp_path, read_as_text, name):
    path = tmp_path / "memory.csv"
    path.write_text(FILES[name], encoding="utf-8")
    names = columns(MemorySample)
    typed, text = read_csv_frame(path, names), read_as_text(path, names)
    assert list(typed.columns) == list(text.columns) == names
    for n in names:
        a, b = typed[n].to_numpy(dtype=float), text[n].to_numpy(dtype=float)
        assert np.array_equal(a, b, equal_nan=True), (name, n, a, b)


def test_a_long_file_is_read_in_chunks_as_one(tmp_path, monkeypatch, read_as_text):
    monkeypatch.setattr(numeric_csv, "CHUNK_ROWS", 7)
    rng = np.random.default_rng(1)
    t = rng.uniform(1.7e9, 1.7e9 + 100, 100)  # latency.csv: in order of answers, not of t
    frame = pd.DataFrame(
        {
            "t_intended": t,
            "t_start": t + 0.001,
            "t_end": t + 0.003,
            "latency_ms": rng.uniform(1, 5, 100),
            "status": rng.choice([200, 0, 503], 100),
            "swap": np.arange(100) // 10,
        }
    )
    path = tmp_path / "latency.csv"
    frame.to_csv(path, index=False, float_format="%.17g")
    names = columns(LatencySample)
    typed, text = read_csv_frame(path, names), read_as_text(path, names)
    assert len(typed) == 100
    assert typed["t_intended"].is_monotonic_increasing
    for n in names:
        assert np.array_equal(typed[n].to_numpy(dtype=float), text[n].to_numpy(dtype=float))


def test_a_well_formed_file_is_not_read_as_text(tmp_path, monkeypatch):
    path = tmp_path / "memory.csv"
    path.write_text(FILES["well formed, out of order"], encoding="utf-8")

    def no_text(path):
        raise AssertionError("read as text")

    monkeypatch.setattr(numeric_csv, "_parsed", no_text)
    assert read_csv_frame(path, columns(MemorySample))["t"].tolist() == [1.0, 2.0, 3.0]
