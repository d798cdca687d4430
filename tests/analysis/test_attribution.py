"""Why memory is kept (docs/contract.md#allocator-probe): reading breakdown.csv, the
attribution's arithmetic, and the run dirs of a soak without the probe.

The verdicts themselves are judged on real runs with planted leaks (tests/run/); here the
breakdown rows are written through the real CsvLog and record type, as the driver writes
them, and each figure is checked against its definition (soak/analysis/attribution.py).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from soak.analysis import summary_json
from soak.analysis.analyse import analyse_run
from soak.analysis.attribution import (
    HELD,
    LIVE_HEAP,
    NON_HEAP,
    attribute,
    breakdown_series,
    explain,
    probe_state,
    release_bar,
)
from soak.analysis.inputs import _opt_bytes, read_breakdown
from soak.analysis.numeric_csv import complete_bytes
from soak.analysis.result import LIVE_LEAK, PROBE_NOT_RECORDED, Attribution
from soak.analysis.verdict import LEAK, PLATEAU, RELEASED, Verdict, theil_sen
from soak.gate.check import verdict_lines
from soak.history import schema
from soak.history import store as history
from soak.report.html import render
from soak.report.terminal import attribution_line, summary_table
from soak.store.csv_log import CsvLog
from soak.store.records import MIB, BreakdownPoint, BreakdownRow, Event, EventKind, columns

T0 = 1_700_000_000.0
BASE = {"anon": 300.0, "file": 120.0, "in_use": 200.0}


def row(swap, point, anon, file, in_use, t=None):
    """A breakdown row from MiB figures (None: the column is empty)."""

    def b(mb):
        return None if mb is None else int(round(mb * MIB))

    rss = None if anon is None or file is None else anon + file
    free = None if in_use is None else 40.0
    return BreakdownRow(
        t=T0 + 10 * swap + (5 if point == BreakdownPoint.RELEASED else 0) if t is None else t,
        swap=swap,
        point=point,
        anon_bytes=b(anon),
        rss_bytes=b(rss),
        lazyfree_bytes=0 if anon is not None else None,
        file_rss_bytes=b(file),
        in_use_bytes=b(in_use),
        free_held_bytes=b(free),
        mapped_bytes=b(None if in_use is None else in_use + 40.0),
        arenas=None if in_use is None else 3,
    )


def rows_for(kept, live, non_heap, released_anon=None, probe=True):
    """Baseline, one settled row per swap (MiB over the baseline), and the release's row."""
    out = [row(0, "baseline", BASE["anon"], BASE["file"], BASE["in_use"] if probe else None)]
    for k, (kept_k, live_k, nh_k) in enumerate(zip(kept, live, non_heap, strict=True), 1):
        in_use = BASE["in_use"] + live_k if probe else None
        out.append(row(k, "settled", BASE["anon"] + kept_k, BASE["file"] + nh_k, in_use))
    if released_anon is not None:
        last = len(kept)
        in_use = BASE["in_use"] + live[-1] if probe else None
        out.append(row(last, "released", released_anon, BASE["file"] + non_heap[-1], in_use))
    return out


def write_breakdown(vdir: Path, rows) -> None:
    log = CsvLog(vdir / "breakdown.csv", BreakdownRow)
    for r in rows:
        log.append(r)
    log.close()


PROBE_EVENTS = [
    Event(T0 - 1, 0, EventKind.PROBE, None, "on: glibc"),
    Event(T0 + 200, 6, EventKind.RELEASE, 7, "malloc_trim(0)"),
    Event(T0 + 205, 6, EventKind.RELEASED, 7, "302.0"),
]
KEPT = [40.0, 90.0, 100.0, 110.0, 105.0, 100.0]  # anonymous MiB over the baseline, swaps 1..6
LIVE = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]  # in-use MiB over the baseline's
NON_HEAP_MB = [2.0, 2.0, 3.0, 3.0, 3.5, 3.0]  # file-backed MiB over the baseline's
JUDGED = (3, 4, 5, 6)  # after 2 warmup swaps


def plateau_verdict(level_mb, judged=JUDGED):
    return Verdict(PLATEAU, "keeps it", 0.5, 0.0, level_mb, 2.0, judged, kept_bound_mb=25.0)


# --- reading --------------------------------------------------------------------------------


def test_breakdown_csv_reads_back_as_written_empty_cells_as_none(tmp_path):
    written = rows_for(KEPT, LIVE, NON_HEAP_MB, released_anon=302.0)
    written[2] = dataclasses.replace(written[2], in_use_bytes=None, arenas=None)  # probe silent
    write_breakdown(tmp_path, written)
    text = (tmp_path / "breakdown.csv").read_text()
    assert text.splitlines()[0] == ",".join(columns(BreakdownRow))
    assert ",," in text.splitlines()[3]  # an empty cell, as the CsvLog writes None
    assert read_breakdown(tmp_path / "breakdown.csv") == written


def test_breakdown_csv_of_a_killed_or_garbled_run(tmp_path):
    path = tmp_path / "breakdown.csv"
    header = ",".join(columns(BreakdownRow))
    path.write_text(
        f"{header}\n"
        "1700000000.0,0,baseline,314572800,440401920,0,125829120,,,,\n"  # the probe off
        "1700000010.0,1,settled,not-a-number,1,0,1,,,,\n"  # garbled: skipped
        "1700000011.0,1,,314572800,1,0,1,,,,\n"  # no point: skipped
        "1700000012.0,2,settled,314572800.0,440401920,0,125829120,1,2,3,4\n"
        "1700000020.0,3,settled,3145"  # cut by the kill: dropped
    )
    rows = read_breakdown(path)
    assert [(r.swap, r.point) for r in rows] == [(0, "baseline"), (2, "settled")]
    assert rows[0].anon_bytes == 300 * MIB and rows[0].file_rss_bytes == 120 * MIB
    assert (rows[0].in_use_bytes, rows[0].free_held_bytes, rows[0].arenas) == (None, None, None)
    assert (rows[1].anon_bytes, rows[1].in_use_bytes, rows[1].arenas) == (300 * MIB, 1, 4)
    assert read_breakdown(tmp_path / "missing.csv") == []
    path.write_text(header + "\n")
    assert read_breakdown(path) == []


def dict_reader_breakdown(path):
    """read_breakdown as it was: csv.DictReader, a dict per row."""
    figures = [c for c in columns(BreakdownRow) if c not in ("t", "swap", "point")]
    text = complete_bytes(path).decode("utf-8", errors="replace")
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        point = (row.get("point") or "").strip()
        if not point:
            continue
        try:
            rows.append(
                BreakdownRow(
                    t=float(row["t"]),
                    swap=int(row["swap"]),
                    point=point,
                    **{name: _opt_bytes(row.get(name)) for name in figures},
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return rows


@pytest.mark.parametrize(
    "text",
    [
        ",".join(columns(BreakdownRow)) + "\n"
        "1.0,0,baseline,3,4,0,1,,,,\n\n2.0,1,settled,x,1,0,1,,,,\n3.0,2, settled ,5,6\n"
        "4.0\n5.0,3,settled,7,8,0,1,1,2,3,4,extra\n6.0,4,released,1e3,inf,0,1,,,,\n",
        "point,swap,t,anon_bytes,anon_bytes\nsettled,1,2.0,5,6\n",  # of equal names, the last
        "t,swap,anon_bytes\n1.0,0,5\n",  # no point column: nothing
        "",
    ],
)
def test_breakdown_read_as_csv_dictreader_reads_it(tmp_path, text):
    path = tmp_path / "breakdown.csv"
    path.write_text(text, encoding="utf-8")
    assert read_breakdown(path) == dict_reader_breakdown(path)


def test_probe_state_from_variant_json_else_the_event_else_not_recorded():
    on = [Event(T0, 0, EventKind.PROBE, None, "on: jemalloc")]
    off = [Event(T0, 0, EventKind.PROBE, None, "off: --no-probe")]
    assert probe_state("on", on) == ("on", "jemalloc")
    assert probe_state(None, on) == ("on", "jemalloc")  # killed before variant.json said it
    assert probe_state(None, off) == ("off: --no-probe", None)
    assert probe_state("off: --no-probe", off) == ("off: --no-probe", None)
    assert probe_state(None, []) == (PROBE_NOT_RECORDED, None)


# --- the arithmetic -------------------------------------------------------------------------


def test_figures_at_the_verdicts_level_add_up_to_it():
    rows = rows_for(KEPT, LIVE, NON_HEAP_MB, released_anon=302.0)
    level = float(np.median([KEPT[k - 1] for k in JUDGED]))  # as the verdict takes it: 102.5
    a = attribute(rows, PROBE_EVENTS, "on", plateau_verdict(level), "anon_bytes")
    assert a.probe == "on" and a.on and a.allocator_seen == "glibc"
    assert a.live_mb == pytest.approx(np.median([LIVE[k - 1] for k in JUDGED]))  # 4.5
    assert a.live_mb + a.held_mb == pytest.approx(level)  # anon: live + held is the level
    assert a.held_mb == pytest.approx(98.0)
    assert a.non_heap_mb == pytest.approx(np.median([NON_HEAP_MB[k - 1] for k in JUDGED]))
    slope = theil_sen(list(JUDGED), [LIVE[k - 1] for k in JUDGED])[0]
    assert a.live_mb_per_swap == pytest.approx(slope) == pytest.approx(1.0)
    assert a.released_mb == pytest.approx(BASE["anon"] + KEPT[-1] - 302.0)  # 98
    assert a.left_after_release_mb == pytest.approx(302.0 - BASE["anon"])  # 2
    assert a.release_call == "malloc_trim(0)"


def test_a_metric_with_file_pages_counts_non_heap_in_the_level():
    rows = rows_for(KEPT, LIVE, NON_HEAP_MB, released_anon=302.0)
    level = 105.5  # rss over the baseline: 102.5 anonymous + 3.0 file-backed
    a = attribute(rows, PROBE_EVENTS, "on", plateau_verdict(level), "rss_bytes")
    assert a.live_mb + a.held_mb + a.non_heap_mb == pytest.approx(level)
    assert a.held_mb == pytest.approx(98.0)


def test_only_the_judged_swaps_count_and_a_missing_row_is_left_out():
    rows = rows_for(KEPT, LIVE, NON_HEAP_MB)
    rows = [r for r in rows if r.swap != 5]  # no row for swap 5
    a = attribute(rows, [], "on", plateau_verdict(100.0, judged=(4, 5, 6)), "anon_bytes")
    assert a.live_mb == pytest.approx(5.0)  # median of swaps 4 and 6
    assert a.live_mb_per_swap == pytest.approx(1.0)
    assert a.released_mb is None and a.left_after_release_mb is None and a.release_call is None


def test_no_level_no_figures_at_it():
    """A verdict without a level (too few swaps, the server died) has nothing to split."""
    rows = rows_for(KEPT[:3], LIVE[:3], NON_HEAP_MB[:3], released_anon=301.0)
    verdict = Verdict("inconclusive", "only 1 swap", None, None, None, None, (3,))
    a = attribute(rows, PROBE_EVENTS, "on", verdict, "anon_bytes")
    assert (a.live_mb, a.held_mb, a.non_heap_mb, a.live_mb_per_swap) == (None,) * 4
    assert a.released_mb == pytest.approx(99.0)  # the release does not need a level
    assert a.left_after_release_mb == pytest.approx(1.0)


def test_probe_off_leaves_the_allocators_figures_unknown():
    rows = rows_for(KEPT, LIVE, NON_HEAP_MB, probe=False)
    events = [Event(T0, 0, EventKind.PROBE, None, "off: --no-probe")]
    a = attribute(rows, events, "off: --no-probe", plateau_verdict(102.5), "anon_bytes")
    assert not a.on and a.off_reason == "--no-probe"
    assert (a.live_mb, a.held_mb, a.live_mb_per_swap, a.released_mb) == (None,) * 4
    assert a.non_heap_mb == pytest.approx(3.0)  # smaps_rollup needs no probe
    assert breakdown_series(rows) == ()  # nothing to stack without in-use bytes
    assert release_bar(rows) is None


def test_the_plot_data_per_swap():
    rows = rows_for(KEPT, LIVE, NON_HEAP_MB, released_anon=302.0)
    live, held, non_heap = breakdown_series(rows)
    assert (live.name, held.name, non_heap.name) == (LIVE_HEAP, HELD, NON_HEAP)
    assert live.x == (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0)
    assert live.y == pytest.approx([0.0, *LIVE])
    assert held.y == pytest.approx([0.0, *(k - n for k, n in zip(KEPT, LIVE, strict=True))])
    assert non_heap.y == pytest.approx([0.0, *NON_HEAP_MB])
    assert release_bar(rows) == pytest.approx((300.0, 400.0, 302.0))


# --- the reason's clause --------------------------------------------------------------------


def test_what_the_reason_says():
    held = Attribution(
        probe="on",
        allocator_seen="glibc",
        live_mb=1.0,
        live_mb_per_swap=0.02,
        held_mb=113.4,
        non_heap_mb=0.5,
        released_mb=115.4,
        left_after_release_mb=-1.0,
        release_call="malloc_trim(0)",
    )
    text = explain(held, plateau_verdict(114.4), "glibc", 1.28, live_leak=False)
    assert text == (
        "of the +114.4 MiB kept, 115.4 MiB came back on malloc_trim(0): "
        "free memory glibc holds, not live data"
    )
    leak = Verdict(LEAK, "grows", 16.2, 16.0, 90.0, 1.0, JUDGED, kept_bound_mb=32.0)
    live = dataclasses.replace(
        held, live_mb=88.0, live_mb_per_swap=16.0, held_mb=2.0, released_mb=3.0,
        left_after_release_mb=95.0,
    )  # fmt: skip
    assert explain(live, leak, "glibc", 1.28, live_leak=True) == (
        "live heap grows 16.0 MiB per swap (the allocator's in-use bytes); "
        "a release gave back 3.0 MiB: this is not the allocator"
    )
    fragmented = dataclasses.replace(
        held, live_mb_per_swap=0.1, held_mb=89.0, released_mb=88.0, left_after_release_mb=2.0
    )
    assert explain(fragmented, leak, "glibc", 1.28, live_leak=False).endswith(
        ": the growth is free memory glibc holds, not live data"
    )
    off = Attribution("off: --no-probe")
    assert explain(off, leak, "glibc", 1.28, live_leak=False) is None
    released = dataclasses.replace(plateau_verdict(0.3), verdict=RELEASED)
    assert explain(held, released, "glibc", 1.28, live_leak=False) is None


# --- run dirs -------------------------------------------------------------------------------


def leaking(k):
    return 8.0 * k


def releasing(k):
    return 0.2 if k else 0.0


def add_probe(vdir: Path, rows, events, probe="on"):
    """What the driver adds to a variant's dir when the probe is on (or off)."""
    write_breakdown(vdir, rows)
    log = CsvLog(vdir / "events.csv", Event)
    for e in events:
        log.append(e)
    log.close()
    meta = json.loads((vdir / "variant.json").read_text())
    (vdir / "variant.json").write_text(json.dumps(meta | {"probe": probe}))


def settled_rows(run: Path, variant: str, live_per_swap: float, released_anon_mb: float | None):
    """Breakdown rows at the simulated run's settled points, anon as its memory.csv has it."""
    result = analyse_run(run).variant(variant)
    base = result.memory.baseline_mb
    kept = [s.retained_mb for s in result.swaps]
    n = len(kept)
    rows = [row(0, "baseline", base, BASE["file"], BASE["in_use"])]
    for k, kept_k in enumerate(kept, 1):
        rows.append(
            row(k, "settled", base + kept_k, BASE["file"] + 1.0, BASE["in_use"] + live_per_swap * k)
        )
    if released_anon_mb is not None:
        in_use = BASE["in_use"] + live_per_swap * n
        rows.append(row(n, "released", released_anon_mb, BASE["file"] + 1.0, in_use))
    return rows


def test_a_run_dir_of_an_older_soak_analyses_and_round_trips(make_run, sim_variant):
    """No breakdown.csv, no probe key in variant.json, no probe events."""
    run = make_run(
        [sim_variant("glibc", "glibc", leaking), sim_variant("je", "jemalloc", releasing)]
    )
    result = analyse_run(run)
    assert all(v.attribution == Attribution() for v in result.variants)
    assert all(v.attribution.probe == PROBE_NOT_RECORDED for v in result.variants)
    assert all(
        v.timeline.breakdown == () and v.timeline.release_mb is None for v in result.variants
    )
    summary_json.write(run, result)
    written = json.loads((run / "summary.json").read_text())
    assert written["variants"][0]["attribution"] == {
        "probe": "off: not recorded (older soak)",
        "live_mb": None,
        "held_mb": None,
        "non_heap_mb": None,
        "released_mb": None,
        "left_after_release_mb": None,
        "live_mb_per_swap": None,
        "free_held_mb": None,
        "allocator": None,
        "release_call": None,
    }
    assert summary_json.read(run) == result.without_plot_data()
    # a summary.json written before the probe reads back with attribution off, all None
    for v in written["variants"]:
        del v["attribution"]
    (run / "summary.json").write_text(json.dumps(written))
    assert summary_json.read(run) == result.without_plot_data()
    page = render(result)
    assert "Not recorded: this run is from a soak without the allocator probe" in page
    assert "glibc: attribution off: not recorded (older soak)" in summary_table(result)


def test_a_run_dir_with_the_probe(make_run, sim_variant):
    run = make_run(
        [sim_variant("glibc", "glibc", leaking), sim_variant("je", "jemalloc", releasing)]
    )
    before = analyse_run(run)
    rows = settled_rows(run, "glibc", 7.5, released_anon_mb=310.0)
    add_probe(run / "glibc", rows, PROBE_EVENTS[:1] + [
        dataclasses.replace(e, swap=8) for e in PROBE_EVENTS[1:]
    ])  # fmt: skip
    no_probe_rows = [
        dataclasses.replace(r, in_use_bytes=None, free_held_bytes=None, mapped_bytes=None)
        for r in settled_rows(run, "je", 0.0, None)
    ]
    add_probe(
        run / "je", no_probe_rows, [Event(T0, 0, EventKind.PROBE, None, "off: --no-probe")],
        probe="off: --no-probe",
    )  # fmt: skip
    result = analyse_run(run)
    glibc, je = result.variant("glibc"), result.variant("je")

    # the verdicts are the same with the probe: it explains, it does not decide
    assert [v.memory.verdict.verdict for v in result.variants] == [
        v.memory.verdict.verdict for v in before.variants
    ]
    a, verdict = glibc.attribution, glibc.memory.verdict
    assert a.on and a.allocator_seen == "glibc" and a.release_call == "malloc_trim(0)"
    judged = verdict.swaps_judged
    assert a.live_mb == pytest.approx(float(np.median([7.5 * k for k in judged])), abs=1e-3)
    assert a.live_mb_per_swap == pytest.approx(7.5, abs=1e-3)
    assert a.held_mb == pytest.approx(verdict.level_mb - a.live_mb, abs=2e-3)
    assert a.non_heap_mb == pytest.approx(1.0, abs=1e-3)
    last_anon = rows[-2].anon_bytes / MIB
    assert a.released_mb == pytest.approx(last_anon - 310.0, abs=1e-3)
    assert a.left_after_release_mb == pytest.approx(310.0 - rows[0].anon_bytes / MIB, abs=1e-3)
    assert je.attribution.probe == "off: --no-probe" and je.attribution.live_mb is None
    assert je.attribution.non_heap_mb == pytest.approx(1.0, abs=1e-3)

    # the release's events belong to no swap
    assert [s.settle_timed_out for s in glibc.swaps] == [False] * 8
    assert glibc.timeline.release_s == pytest.approx(T0 + 200 - glibc.timeline.t0)

    summary_json.write(run, result)
    assert summary_json.read(run) == result.without_plot_data()
    written = json.loads((run / "summary.json").read_text())["variants"][0]["attribution"]
    assert written["probe"] == "on" and written["live_mb"] == a.live_mb

    page = render(result)
    assert page.count('<img alt="" src="data:image/svg+xml;base64,') == 7  # 6 + glibc's
    assert "The probe was off: --no-probe; without it soak cannot tell" in page
    assert "<code>malloc_trim(0)</code>" in page
    table = summary_table(result)
    assert f"glibc: {attribution_line(glibc)}" in table
    assert attribution_line(glibc).startswith("attribution (glibc): live +")
    assert "released on malloc_trim(0)" in attribution_line(glibc)
    assert "je: attribution off: --no-probe" in table


def test_a_leak_named_live_by_the_gate_and_the_report(make_run, sim_variant):
    """The wording: a leak whose in-use bytes grow as fast is a leak of live memory."""
    run = make_run([sim_variant("glibc", "glibc", leaking)])
    result = analyse_run(run)
    glibc = result.variant("glibc")
    assert glibc.memory.verdict.verdict == LEAK and glibc.verdict_text == LEAK
    live = dataclasses.replace(glibc, attribution=Attribution("on", "glibc", live_mb_per_swap=8.0))
    held = dataclasses.replace(glibc, attribution=Attribution("on", "glibc", live_mb_per_swap=0.1))
    assert live.live_leak and live.verdict_text == LIVE_LEAK
    assert not held.live_leak and held.verdict_text == LEAK
    assert verdict_lines(live, "RUN")[0].startswith("glibc: verdict leak of live memory (")
    assert verdict_lines(held, "RUN")[0].startswith("glibc: verdict leak (")
    page = render(dataclasses.replace(result, variants=(live,)))
    assert "<span class=v-leak>leak of live memory</span>" in page


# --- the history ----------------------------------------------------------------------------


def test_the_history_keeps_the_attribution_and_migrates_an_older_file(
    make_run, sim_variant, tmp_path
):
    run = make_run([sim_variant("glibc", "glibc", leaking)])
    rows = settled_rows(run, "glibc", 7.5, released_anon_mb=310.0)
    add_probe(run / "glibc", rows, PROBE_EVENTS)
    result = analyse_run(run)
    a = result.variant("glibc").attribution

    # a history of schema 1: the variants table without the attribution's columns
    old = tmp_path / "old.sqlite"
    added = [c for names in schema.ADDED_VARIANT_COLUMNS.values() for c in names]
    v1_columns = [c for c in schema.VARIANT_COLUMNS if c not in added]
    run_columns = [c for c in schema.RUN_COLUMNS if c != "run_dir"]
    with sqlite3.connect(old) as con:
        con.execute(
            f"CREATE TABLE runs (id INTEGER PRIMARY KEY, run_dir TEXT NOT NULL UNIQUE, "
            f"{', '.join(run_columns)}, environment TEXT, recorded_t REAL NOT NULL)"
        )
        con.execute(
            f"CREATE TABLE variants (run_id INTEGER NOT NULL REFERENCES runs(id) "
            f"ON DELETE CASCADE, {', '.join(v1_columns)}, PRIMARY KEY (run_id, name))"
        )
        con.execute("PRAGMA user_version = 1")
    first = history.recorded_run(result, run)
    with sqlite3.connect(old) as con:  # a run recorded by the older soak
        cursor = con.execute(
            f"INSERT INTO runs (run_dir, {', '.join(run_columns)}, environment, recorded_t) "
            f"VALUES (?, {', '.join('?' * len(run_columns))}, '{{}}', 0)",
            ["/elsewhere/run", *(getattr(first, c) for c in run_columns)],
        )
        v = first.variants[0]
        con.execute(
            f"INSERT INTO variants (run_id, {', '.join(v1_columns)}) "
            f"VALUES (?, {', '.join('?' * len(v1_columns))})",
            [cursor.lastrowid, *(getattr(v, c) for c in v1_columns)],
        )
    older = history.runs(old)  # a reader reads it as it is
    assert older[0].variants[0].live_mb is None and older[0].variants[0].held_mb is None
    assert sqlite3.connect(old).execute("PRAGMA user_version").fetchone()[0] == 1

    history.record(old, result, run)  # a writer migrates it
    version = sqlite3.connect(old).execute("PRAGMA user_version").fetchone()[0]
    assert version == schema.SCHEMA_VERSION
    both = {r.run_dir: r.variants[0] for r in history.runs(old)}
    assert both["/elsewhere/run"].released_mb is None
    recorded = both[str(run.resolve())]
    assert (recorded.live_mb, recorded.held_mb) == (a.live_mb, a.held_mb)
    assert (recorded.released_mb, recorded.left_after_release_mb) == (
        a.released_mb,
        a.left_after_release_mb,
    )
    fresh = tmp_path / "new.sqlite"
    history.record(fresh, result, run)
    assert history.runs(fresh)[0].variants[0].live_mb == a.live_mb


# --- real runs ------------------------------------------------------------------------------

# Recorded by `soak run` with the probe (stand-in, glibc, process backend; server.log, the
# report and summary.json left out; glibc-demo's latency.csv cut to its header):
# - planted-glibc: a small model, --debug_retain_mb_per_load=16 (a planted live leak), 6 swaps
# - glibc-demo: the 128 MiB demo model, 8 swaps: what glibc keeps without a leak
REAL_RUNS = Path(__file__).parent / "data" / "real_runs"
PLANTED_MB = 16.0


def real_run(name: str, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(REAL_RUNS / name, tmp_path / name))


def csv_figures(run: Path, column: str) -> dict[tuple[str, int], float]:
    """(point, swap) -> MiB, read with the csv module alone."""
    import csv

    with open(run / "glibc" / "breakdown.csv", newline="") as f:
        return {(r["point"], int(r["swap"])): int(r[column]) / MIB for r in csv.DictReader(f)}


def svg_text(uri: str) -> str:
    import base64

    return base64.b64decode(uri.split(",", 1)[1]).decode()


def test_real_planted_leak_is_live_heap_growth(tmp_path):
    from soak.report.html import draw
    from soak.report.outputs import write_outputs

    run = real_run("planted-glibc", tmp_path)
    result = write_outputs(run)
    glibc = result.variant("glibc")
    a, verdict = glibc.attribution, glibc.memory.verdict
    assert a.on and a.allocator_seen == "glibc" and a.release_call == "malloc_trim(0)"
    # the planted 16 MiB per load, in the allocator's in-use bytes
    assert a.live_mb_per_swap == pytest.approx(PLANTED_MB, rel=0.05)
    in_use = csv_figures(run, "in_use_bytes")
    judged = verdict.swaps_judged
    expected = np.median([in_use["settled", k] - in_use["baseline", 0] for k in judged])
    assert a.live_mb == pytest.approx(expected, abs=1e-3)
    assert a.live_mb + a.held_mb == pytest.approx(verdict.level_mb, abs=2e-3)
    anon = csv_figures(run, "anon_bytes")
    last = max(k for point, k in anon if point == "settled")
    assert a.released_mb == pytest.approx(anon["settled", last] - anon["released", last], abs=1e-3)
    # what stays after the trim holds every planted load since the baseline
    assert a.left_after_release_mb >= 0.9 * last * PLANTED_MB
    assert a.released_mb < 0.25 * a.left_after_release_mb
    assert glibc.verdict_text == LIVE_LEAK
    assert "live heap grows 16.0 MiB per swap (the allocator's in-use bytes)" in verdict.reason
    assert summary_json.read(run) == result.without_plot_data()

    plots = draw(result)
    svg = svg_text(plots.attribution[0])
    for label in (LIVE_HEAP, HELD, NON_HEAP, "before release", "after release", "malloc_trim(0)"):
        assert label in svg
    assert "release" in svg_text(plots.memory[0])  # the release marked on the timeline
    page = (run / "report.html").read_text()
    assert page.count('<img alt="" src="data:image/svg+xml;base64,') == 5
    assert "<span class=v-leak>leak of live memory</span>" in page


def test_real_glibc_keeps_free_memory_not_live_data(tmp_path):
    from soak.report.html import draw
    from soak.report.outputs import write_outputs

    run = real_run("glibc-demo", tmp_path)
    result = write_outputs(run)
    glibc = result.variant("glibc")
    a, verdict = glibc.attribution, glibc.memory.verdict
    assert verdict.verdict == PLATEAU and glibc.verdict_text == PLATEAU
    assert abs(a.live_mb) < 1.0 and abs(a.live_mb_per_swap) < 0.1  # no live growth
    assert a.held_mb == pytest.approx(verdict.level_mb - a.live_mb, abs=2e-3)
    assert a.held_mb > 0.9 * verdict.level_mb  # what glibc keeps is not live data
    assert a.non_heap_mb == 0.0  # the file-backed pages did not move
    assert a.released_mb > 0
    assert "not live data" in verdict.reason
    assert summary_json.read(run) == result.without_plot_data()
    plots = draw(result)
    assert plots.attribution[0] is not None and plots.latency == (None,)  # no latency rows
    table = summary_table(result)
    assert "glibc: attribution (glibc): live +0.3 MiB" in table
