"""How does `soak report` grow with a run's length, on real data? Time and peak memory.

Tiles a real run directory into a long one: each variant's swaps (from the first
staging to `swaps_done`) are repeated back to back, time-shifted by the span of
those swaps, with swap indices, versions and the server's cumulative CPU
continued, until the variant lasts about H hours; the baseline before them and
the trim experiment after them stay once, at the start and the end. The analysis
sees one long run of many swaps that behave like the real ones, e.g.

    python benchmarks/tiled_run.py --hours 6 24 72 --code /tmp/soak-before --code .

then times `python -m soak report` on each tiled run in a child process, for each
source tree (peak RSS and CPU of the child alone, os.wait4). run.toml says
`swaps = N`, N the most swaps a variant of the tiled run has (a long run is
scheduled, not `auto`). Target (issue 21): the 24 h run under 5 s and 500 MiB.
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from synthetic_24h import ROOT, add_timing_arguments, data_rows, time_report

# a real default run (glibc and jemalloc, `--swaps auto`) of the demo model
DEFAULT_SOURCE = ROOT / "tests/analysis/data/real_runs/default-run"
RUN_FILES = ("environment.json",)  # copied as they are; summary.json and report.html are rewritten
VARIANT_FILES = ("variant.json", "server.log")


@dataclass(frozen=True)
class Cycle:
    """A variant's swaps in the source run: [start, end) holds swaps 1..swaps."""

    start: float  # the first swap's staging
    end: float  # swaps_done: where the next swap would have been staged
    swaps: int
    cpu_s: float  # the server's CPU seconds over [start, end) (0: memory.csv has no cpu_s)

    @property
    def period(self) -> float:
        return self.end - self.start


def tile_run(source: Path, out: Path, hours: float) -> dict[str, int]:
    """Write the tiled run of `source` at `out`; the swaps of each variant, by name."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in RUN_FILES:
        if (source / name).exists():
            shutil.copy2(source / name, out / name)
    config = tomllib.loads((source / "run.toml").read_text(encoding="utf-8"))
    counts = {}
    for spec in config["variants"]:
        vdir = source / spec["name"]
        if (vdir / "events.csv").exists():
            counts[spec["name"]] = _tile_variant(vdir, out / spec["name"], hours)
    _write_run_toml(source / "run.toml", out, max(counts.values()))
    return counts


def _tile_variant(source: Path, out: Path, hours: float) -> int:
    out.mkdir()
    for name in VARIANT_FILES:
        if (source / name).exists():
            shutil.copy2(source / name, out / name)
    events = _read_text_csv(source / "events.csv")
    memory = pd.read_csv(source / "memory.csv")
    cycle = _cycle(events, memory)
    duration = float(events[-1]["t"]) - float(events[0]["t"])
    repeats = max(1, round((hours * 3600 - (duration - cycle.period)) / cycle.period))
    total = cycle.swaps * repeats

    tiled_events = []
    for row in events:
        for shift in _shifts(float(row["t"]), cycle, repeats):
            tiled_events.append(_shifted_event(row, shift, total))
    _write_text_csv(out / "events.csv", list(events[0]), tiled_events)
    _write_frame(_tiled_frame(memory, "t", cycle, repeats), out / "memory.csv")
    latency = pd.read_csv(source / "latency.csv")
    _write_frame(_tiled_frame(latency, "t_intended", cycle, repeats), out / "latency.csv")
    if (source / "breakdown.csv").exists():
        breakdown = _read_text_csv(source / "breakdown.csv")
        tiled = [
            _shifted_row(row, shift)
            for row in breakdown
            for shift in _shifts(float(row["t"]), cycle, repeats)
        ]
        _write_text_csv(out / "breakdown.csv", list(breakdown[0]), tiled)
    return total


def _cycle(events: list[dict[str, str]], memory: pd.DataFrame) -> Cycle:
    staged = [e for e in events if e["event"] == "staged" and int(e["swap"]) >= 1]
    done = next(e for e in events if e["event"] == "swaps_done")
    start, end = float(staged[0]["t"]), float(done["t"])
    cpu = 0.0
    if "cpu_s" in memory:
        t, cpu_s = memory["t"].to_numpy(), memory["cpu_s"].to_numpy(dtype=float)
        first, after = np.searchsorted(t, [start, end])
        cpu = float(cpu_s[after] - cpu_s[first])
    return Cycle(start, end, int(staged[-1]["swap"]), cpu)


@dataclass(frozen=True)
class Shift:
    """How far one copy of a record moves: in time, in swaps (and versions), in CPU s."""

    t: float
    swaps: int
    cpu_s: float


def _shifts(t: float, cycle: Cycle, repeats: int) -> list[Shift]:
    """The copies of a record at time `t`: once before the swaps, `repeats` times inside
    them, once (moved past the last repeat) after them."""
    if t < cycle.start:
        return [Shift(0.0, 0, 0.0)]
    if t < cycle.end:
        return [Shift(r * cycle.period, r * cycle.swaps, r * cycle.cpu_s) for r in range(repeats)]
    r = repeats - 1
    return [Shift(r * cycle.period, r * cycle.swaps, r * cycle.cpu_s)]


def _shifted_row(row: dict[str, str], shift: Shift) -> dict[str, str]:
    moved = dict(row, t=repr(float(row["t"]) + shift.t))
    if int(row["swap"]) >= 1:
        moved["swap"] = str(int(row["swap"]) + shift.swaps)
    return moved


def _shifted_event(row: dict[str, str], shift: Shift, total: int) -> dict[str, str]:
    moved = _shifted_row(row, shift)
    if row["version"].strip() and int(row["swap"]) >= 1:
        moved["version"] = str(int(row["version"]) + shift.swaps)
    if row["event"] == "swaps_done":
        moved["detail"] = f"{total} swaps done, as planned"
    return moved


def _tiled_frame(frame: pd.DataFrame, time_column: str, cycle: Cycle, repeats: int) -> pd.DataFrame:
    """A CSV's rows tiled like the events: the rows inside the swaps `repeats` times."""
    t = frame[time_column].to_numpy()
    inside = frame[(t >= cycle.start) & (t < cycle.end)]
    last = _shifts(cycle.end, cycle, repeats)[0]
    parts = [frame[t < cycle.start]]
    parts += [_moved(inside, shift) for shift in _shifts(cycle.start, cycle, repeats)]
    parts.append(_moved(frame[t >= cycle.end], last))
    return pd.concat(parts, ignore_index=True)


def _moved(frame: pd.DataFrame, shift: Shift) -> pd.DataFrame:
    moved = frame.copy()
    for column in moved.columns:
        if column.startswith("t"):  # t, t_intended, t_start, t_end
            moved[column] = moved[column] + shift.t
    if "swap" in moved:
        moved["swap"] = moved["swap"].where(moved["swap"] < 1, moved["swap"] + shift.swaps)
    if "cpu_s" in moved:
        moved["cpu_s"] = moved["cpu_s"] + shift.cpu_s
    return moved


def _write_run_toml(source: Path, out: Path, swaps: int) -> None:
    """run.toml as the source's, with a fixed swap count and the new run dir."""
    lines = []
    for line in source.read_text(encoding="utf-8").splitlines():
        key = line.split("=", 1)[0].strip()
        if key == "swaps":
            line = f"swaps = {swaps}"
        elif key == "out":
            line = f'out = "{out}"'
        lines.append(line)
    (out / "run.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _read_text_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _write_text_csv(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(rows, key=lambda row: float(row["t"])))
    path.write_text(buffer.getvalue(), encoding="utf-8")


def _write_frame(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False, float_format="%.17g")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source", type=Path, default=DEFAULT_SOURCE, help="a real run dir to tile"
    )
    parser.add_argument("--hours", type=float, nargs="+", default=[24.0], help="per variant")
    parser.add_argument("--out", type=Path, default=Path("/tmp/soak-tiled"))
    add_timing_arguments(parser, repeat=2)
    parser.add_argument(
        "--memory-limit-gib",
        type=float,
        help="the child's address-space limit: a MemoryError rather than the OOM killer",
    )
    args = parser.parse_args()
    codes = args.code or [ROOT]
    limit = int(args.memory_limit_gib * (1 << 30)) if args.memory_limit_gib else None

    for hours in args.hours:
        run_dir = args.out / f"{hours:g}h"
        begin = time.perf_counter()
        if not (args.reuse and (run_dir / "run.toml").exists()):
            counts = tile_run(args.source, run_dir, hours)
            print(f"{run_dir}: swaps {counts} (written in {time.perf_counter() - begin:.1f} s)")
        memory_rows, latency_rows = (data_rows(run_dir, n) for n in ("memory.csv", "latency.csv"))
        print(
            f"{run_dir}: {hours:g} h per variant, {memory_rows} memory rows, "
            f"{latency_rows} latency rows"
        )
        for code in codes:
            for i in range(args.repeat):
                timing = time_report(code, run_dir, limit)
                print(f"{code}: {hours:g} h: run {i + 1}: {timing}", flush=True)


if __name__ == "__main__":
    main()
