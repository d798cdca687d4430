"""The timeline rebuilt from events.csv, on rows recorded by a real run."""

import csv
import io

import pytest

from soak.analysis.inputs import read_events
from soak.analysis.latency import SWAP_TAIL_S, swap_window
from soak.analysis.numeric_csv import complete_bytes
from soak.analysis.timeline import build_timeline
from soak.store.records import Event

# The start of a real glibc run's events.csv (stand-in server, 16 MiB demo model),
# then a third swap cut off by a kill before it settled.
RECORDED = """t,swap,event,version,detail
1795609376.3161118,0,staged,1,1
1795609376.3167398,0,started,,32432
1795609378.7231936,0,available,1,
1795609384.7355254,0,settled,1,259.9
1795609384.7420352,1,staged,2,2
1795609385.6220498,1,loading,2,
1795609385.7982295,1,unloading,1,
1795609385.7982295,1,available,2,
1795609385.8221002,1,end,1,
1795609389.828557,1,settled,2,271.8
1795609389.8358216,2,staged,3,3
1795609390.6225796,2,loading,3,
1795609390.7941682,2,unloading,2,
1795609390.7941682,2,available,3,
1795609390.8221042,2,end,2,
1795609394.8289652,2,settled,3,288.4
1795609394.8367605,3,staged,4,1
1795609395.623443,3,loading,4,
1795609395.87953,3,unloading,3,
1795609395.87953,3,avail"""


def test_swaps_from_recorded_events(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(RECORDED, encoding="utf-8")
    timeline = build_timeline(read_events(path))

    assert timeline.started_t == pytest.approx(1795609376.3161118)
    assert timeline.baseline_version == 1
    assert timeline.baseline_t == pytest.approx(1795609384.7355254)
    assert timeline.server_exit is None and timeline.stopped_t is None
    first, second, third = timeline.swaps
    assert (first.index, first.version, first.old_version) == (1, 2, 1)
    assert (second.version, second.old_version) == (3, 2)
    assert first.available_t - first.staged_t == pytest.approx(1.056, abs=0.001)
    assert first.settled_t - first.old_end_t == pytest.approx(4.006, abs=0.001)
    assert first.completed and second.completed and not first.load_failed
    assert first.next_staged_t == second.staged_t

    # Killed mid-swap: the half-written "available" row is gone, nothing settled.
    assert (third.version, third.old_version) == (4, 3)
    assert not third.completed
    assert third.available_t is None and third.old_end_t is None
    assert third.end_t is None

    start, end = swap_window(first)
    assert (start, end) == (first.staged_t, pytest.approx(first.old_end_t + SWAP_TAIL_S))
    assert swap_window(third) == (third.staged_t, float("inf"))


def test_failed_load_keeps_the_old_version_serving(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(
        "t,swap,event,version,detail\n"
        "10.0,0,available,1,\n"
        "12.0,0,settled,1,100.0\n"
        "13.0,1,staged,2,2\n"
        "14.0,1,load_failed,2,bad graph\n"
        "18.0,1,settled,1,101.0\n"
        "19.0,2,staged,3,3\n"
        "20.0,2,available,3,\n"
        "20.1,2,end,1,\n"
        "24.0,2,settled,3,101.0\n",
        encoding="utf-8",
    )
    failed, ok = build_timeline(read_events(path)).swaps
    assert failed.load_failed and failed.completed and failed.available_t is None
    assert ok.old_version == 1  # version 2 never served
    assert ok.old_end_t == pytest.approx(20.1)
    assert not ok.load_failed


def dict_reader_events(path):
    """read_events as it was: csv.DictReader, a dict per row."""
    events = []
    text = complete_bytes(path).decode("utf-8", errors="replace")  # less a cut last line
    for row in csv.DictReader(io.StringIO(text)):
        try:
            version = row.get("version") or ""
            events.append(
                Event(
                    t=float(row["t"]),
                    swap=int(row["swap"]),
                    event=str(row["event"]),
                    version=int(version) if version.strip() else None,
                    detail=row.get("detail") or "",
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return events


@pytest.mark.parametrize(
    "text",
    [
        RECORDED,
        "t,swap,event,version,detail\n1.0,0,staged,1,1\n\n2.0,1\n3.0,1,staged\n4.0,x,staged,2,\n"
        '5.0,1,staged,two,\n6.0,2,staged, ,d,extra\n7.0,3,end,3,"a, b"\n',
        "swap,event,t\n0,staged,1.5\n1,settled,2.5,9\n",  # another order, a longer row
        "t,swap,event,t\n1.0,0,staged,2.0\n",  # of equal names, the last counts
        "t,event,version\n1.0,staged,1\n",  # no swap column: nothing
        "",
    ],
)
def test_events_read_as_csv_dictreader_reads_them(tmp_path, text):
    path = tmp_path / "events.csv"
    path.write_text(text, encoding="utf-8")
    assert read_events(path) == dict_reader_events(path)
