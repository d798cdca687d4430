"""Shared by the verdict benchmarks: run `soak run` as a user would and read what it wrote."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class VariantOutcome:
    run_dir: Path
    variant: str
    verdict: str
    reason: str
    retained_mb: float | None  # final settled memory over the baseline
    level_mb: float | None  # where it settles now (later-half median), over the baseline
    swaps: int  # completed
    series: tuple[float, ...]  # retained MiB after each completed swap
    check_exit: int  # `soak check RUN --variant NAME` with no limits
    elapsed_s: float  # the whole `soak run`


def soak_run(run_dir: Path, *args: str) -> list[VariantOutcome]:
    """One `soak run --out run_dir ARGS`, then `soak check` per variant; one outcome each."""
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "soak", "run", "--quiet", "--out", str(run_dir), *args],
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    elapsed = time.monotonic() - started
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return []
    outcomes = []
    for v in summary["variants"]:
        series = tuple(s["retained_mb"] for s in v["swaps"] if s.get("retained_mb") is not None)
        check = subprocess.run(
            [sys.executable, "-m", "soak", "check", str(run_dir), "--variant", v["name"]],
            check=False,
            capture_output=True,
        )
        outcomes.append(
            VariantOutcome(
                run_dir=run_dir,
                variant=v["name"],
                verdict=v["memory"]["verdict"],
                reason=v["memory"].get("verdict_reason") or "",
                retained_mb=v["memory"]["retained_mb"],
                level_mb=v["memory"].get("level_mb"),
                swaps=v["swaps_completed"],
                series=series,
                check_exit=check.returncode,
                elapsed_s=elapsed,
            )
        )
    return outcomes


def line(label: str, o: VariantOutcome) -> str:
    retained = f"{o.retained_mb:+.1f}" if o.retained_mb is not None else "?"
    level = f"{o.level_mb:+.1f}" if o.level_mb is not None else "?"
    return (
        f"{label:24s} {o.variant:9s} {o.verdict:12s} retained {retained:>7s} level {level:>7s} MiB "
        f"swaps {o.swaps:2d} check exit {o.check_exit}  ({o.elapsed_s:.0f} s)  {o.reason}"
    )


def spread(values: list[float]) -> str:
    """'min..max (median m)' of what was measured."""
    if not values:
        return "-"
    return f"{min(values):+.1f}..{max(values):+.1f} (median {statistics.median(values):+.1f})"
