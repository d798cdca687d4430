"""Why memory is kept: live data, or free memory the allocator holds
(docs/contract.md#allocator-probe; docs/verdicts.md#why-the-memory-is-kept).

From one variant's breakdown.csv (the process's memory from smaps_rollup and the
allocator's own figures from the probe inside the server, at the baseline, after
each swap settled, and after the trim experiment) and its verdict, an
`Attribution` (soak/analysis/result.py). All figures are MiB over the baseline's
row, at the verdict's level: the median over the swaps the verdict judges
(`Verdict.swaps_judged`, after the warmup swaps), the same swaps and the same
median as `Verdict.level_mb`, so that

    level_mb = live_mb + held_mb            (an anonymous metric: anon_bytes, cgroup_anon)
    level_mb = live_mb + held_mb + non_heap_mb   (a metric with file pages: rss, working set)

- `live_mb`: the allocator's in-use bytes (handed out, not freed) over the baseline's.
- `live_mb_per_swap`: their Theil–Sen slope over the judged swaps (`verdict.theil_sen`):
  a leak of live data grows here; memory the allocator holds does not.
- `held_mb`: the kept anonymous memory minus `live_mb`: free memory the allocator
  holds, plus anonymous memory outside it (thread stacks, direct mappings).
- `non_heap_mb`: file-backed RSS (smaps_rollup Rss - Anonymous) over the baseline's.
  It needs no probe.
- `released_mb`: anonymous memory at the last settled swap minus after the release
  (`malloc_trim(0)`, jemalloc's purge, ...): what the allocator gave back.
- `left_after_release_mb`: anonymous memory after the release minus the baseline's.

The probe explains; it never decides: the verdict stays what the rules made it, and
`explain` only adds a clause to its reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from soak.analysis.result import PROBE_NOT_RECORDED, PROBE_ON, Attribution, Series
from soak.analysis.verdict import LEAK, PLATEAU, Verdict, kept_bound_mb, theil_sen
from soak.store.records import MIB, BreakdownPoint, BreakdownRow, Event, EventKind

# The verdict metrics that count file-backed pages (the others are anonymous memory).
FILE_BACKED_METRICS = ("rss_bytes", "cgroup_working_set_bytes")
LIVE_HEAP, HELD, NON_HEAP = "live heap", "held by the allocator", "non-heap"


@dataclasses.dataclass(frozen=True)
class Points:
    """breakdown.csv of one variant, by point: the baseline, each settled swap, the release."""

    baseline: BreakdownRow | None
    settled: dict[int, BreakdownRow]  # swap -> its row (the first, if written twice)
    released: BreakdownRow | None

    @classmethod
    def of(cls, rows: Sequence[BreakdownRow]) -> Points:
        settled: dict[int, BreakdownRow] = {}
        for row in rows:
            if row.point == BreakdownPoint.SETTLED and row.swap >= 1:
                settled.setdefault(row.swap, row)
        return cls(
            baseline=next((r for r in rows if r.point == BreakdownPoint.BASELINE), None),
            settled=settled,
            released=next((r for r in reversed(rows) if r.point == BreakdownPoint.RELEASED), None),
        )

    @property
    def last_settled(self) -> BreakdownRow | None:
        return self.settled[max(self.settled)] if self.settled else None

    def over_baseline(self, swaps: Sequence[int], column: str) -> dict[int, float]:
        """`column` at each of `swaps` that has it, minus the baseline's, in MiB."""
        base = _mb(self.baseline, column)
        if base is None:
            return {}
        found = {}
        for swap in swaps:
            value = _mb(self.settled.get(swap), column)
            if value is not None:
                found[swap] = value - base
        return found


def probe_state(variant_json_probe: str | None, events: Sequence[Event]) -> tuple[str, str | None]:
    """(probe, allocator seen): variant.json's "probe", else the `probe` event's; older runs
    have neither ("off: not recorded (older soak)")."""
    event = next((e for e in events if e.event == EventKind.PROBE), None)
    detail = event.detail.strip() if event is not None else ""
    seen = None
    if detail.startswith("on:"):
        seen = detail.removeprefix("on:").strip() or None
    if variant_json_probe:
        probe = variant_json_probe.strip()
    elif detail.startswith("on"):
        probe = PROBE_ON
    elif detail.startswith("off"):
        probe = detail
    else:
        probe = PROBE_NOT_RECORDED
    return probe, seen


def attribute(
    rows: Sequence[BreakdownRow],
    events: Sequence[Event],
    probe: str | None,
    verdict: Verdict,
    metric: str,
) -> Attribution:
    """One variant's attribution (see the module docstring for each figure)."""
    probe_text, seen = probe_state(probe, events)
    points = Points.of(rows)
    judged = verdict.swaps_judged
    live = points.over_baseline(judged, "in_use_bytes")
    non_heap = points.over_baseline(judged, "file_rss_bytes")
    free_held = points.over_baseline(judged, "free_held_bytes")
    at_level = verdict.level_mb is not None
    live_mb = _median(live) if at_level else None
    non_heap_mb = _median(non_heap) if at_level else None
    held_mb = None
    if verdict.level_mb is not None and live_mb is not None:
        kept_anon: float | None = verdict.level_mb
        if metric in FILE_BACKED_METRICS:
            kept_anon = None if non_heap_mb is None else verdict.level_mb - non_heap_mb
        held_mb = None if kept_anon is None else kept_anon - live_mb
    live_slope = None
    if len(live) >= 2:
        live_slope = theil_sen(list(live), list(live.values()))[0]

    before, after = _mb(points.last_settled, "anon_bytes"), _mb(points.released, "anon_bytes")
    base_anon = _mb(points.baseline, "anon_bytes")
    release = next((e for e in events if e.event == EventKind.RELEASE), None)
    return Attribution(
        probe=probe_text,
        allocator_seen=seen,
        live_mb=live_mb,
        live_mb_per_swap=live_slope,
        held_mb=held_mb,
        free_held_mb=_median(free_held) if at_level else None,
        non_heap_mb=non_heap_mb,
        released_mb=None if before is None or after is None else before - after,
        left_after_release_mb=None if after is None or base_anon is None else after - base_anon,
        release_call=(release.detail.strip() or None) if release is not None else None,
    )


def breakdown_series(rows: Sequence[BreakdownRow]) -> tuple[Series, ...]:
    """The report's stacked plot over swaps: live heap, held, non-heap (MiB over the
    baseline's; x the swap, 0 the baseline). Empty without the allocator's in-use bytes."""
    points = Points.of(rows)
    swaps = sorted(points.settled)
    live = points.over_baseline(swaps, "in_use_bytes")
    anon = points.over_baseline(swaps, "anon_bytes")
    files = points.over_baseline(swaps, "file_rss_bytes")
    shown = [s for s in swaps if s in live and s in anon]
    if not shown:
        return ()
    x = (0.0, *(float(s) for s in shown))
    return (
        Series(LIVE_HEAP, x, (0.0, *(live[s] for s in shown))),
        Series(HELD, x, (0.0, *(anon[s] - live[s] for s in shown))),
        Series(NON_HEAP, x, (0.0, *(files.get(s, 0.0) for s in shown))),
    )


def release_bar(rows: Sequence[BreakdownRow]) -> tuple[float, float, float] | None:
    """Anonymous MiB at the baseline, before the release (the last settled swap) and after it."""
    points = Points.of(rows)
    values = [_mb(r, "anon_bytes") for r in (points.baseline, points.last_settled, points.released)]
    if any(v is None for v in values):
        return None
    base, before, after = values
    assert base is not None and before is not None and after is not None
    return base, before, after


def explain(
    attribution: Attribution,
    verdict: Verdict,
    allocator: str,
    threshold_mb: float,
    live_leak: bool,
) -> str | None:
    """What the probe says about a `leak` or `plateau`, as a clause for its reason (None:
    nothing to say: the probe was off, or the verdict is neither)."""
    a = attribution
    if not a.on or verdict.verdict not in (LEAK, PLATEAU):
        return None
    who = a.allocator_seen or allocator
    bound = (
        verdict.kept_bound_mb if verdict.kept_bound_mb is not None else kept_bound_mb(threshold_mb)
    )
    call = a.release_call or "the release"
    back = f"a release gave back {a.released_mb:.1f} MiB" if a.released_mb is not None else None
    stayed = (
        f"{a.left_after_release_mb:+.1f} MiB stayed"
        if a.left_after_release_mb is not None
        else None
    )
    # the release took back what was kept (what stayed is within the kept-memory bound)
    undone = a.left_after_release_mb is not None and a.left_after_release_mb <= bound

    if verdict.verdict == LEAK:
        if live_leak:
            assert a.live_mb_per_swap is not None
            text = (
                f"live heap grows {a.live_mb_per_swap:.1f} MiB per swap "
                "(the allocator's in-use bytes)"
            )
            if back:
                return f"{text}; {back}: this is not the allocator"
            return f"{text}: live data, not free memory the allocator holds"
        parts = []
        if a.live_mb_per_swap is not None:
            parts.append(
                f"the allocator's in-use bytes grow only {a.live_mb_per_swap:.1f} MiB per swap"
            )
        if back:
            parts.append(f"{back} ({stayed})" if stayed else back)
        if not parts:
            return None
        if back and undone:
            return "; ".join(parts) + f": the growth is free memory {who} holds, not live data"
        if back and a.live_mb_per_swap is not None:
            return "; ".join(parts) + (
                f": the growth is not live data but free memory {who} could not return "
                "(fragments), or anonymous memory outside it (thread stacks, direct mappings)"
            )
        return "; ".join(parts)

    # plateau: what the kept memory is made of
    assert verdict.level_mb is not None
    kept = f"of the {verdict.level_mb:+.1f} MiB kept"
    if a.live_mb is not None and a.live_mb > bound:
        text = f"{kept}, {a.live_mb:+.1f} MiB is live data (the allocator's in-use bytes)"
        return f"{text}; {back}" if back else text
    if back and undone:
        return (
            f"{kept}, {a.released_mb:.1f} MiB came back on {call}: "
            f"free memory {who} holds, not live data"
        )
    if back and a.live_mb is not None and _inside(a):  # not live, and not all came back
        return (
            f"{kept}, only {a.live_mb:+.1f} MiB is live data; the rest is not live data but "
            f"free memory {who} holds (by its own count {a.free_held_mb:+.1f} MiB more); "
            f"{a.released_mb:.1f} MiB came back on {call} and {stayed}, free memory that "
            f"{call} does not return"
            + (" (the tops of glibc's thread arenas)" if who == "glibc" else "")
        )
    if back and a.live_mb is not None:  # not live, and not all of it came back
        return (
            f"{kept}, only {a.live_mb:+.1f} MiB is live data (the allocator's in-use bytes); "
            f"{a.released_mb:.1f} MiB came back on {call} and {stayed}: free memory {who} "
            "could not return (fragments), or anonymous memory outside it (thread stacks, "
            "direct mappings), not live data"
        )
    if back:
        return f"{kept}, {a.released_mb:.1f} MiB came back on {call} and {stayed}"
    if a.live_mb is not None and a.held_mb is not None:
        return (
            f"{kept}, {a.live_mb:+.1f} MiB is live data and {a.held_mb:+.1f} MiB free memory "
            f"{who} holds or other anonymous memory (no release was tried)"
        )
    return None


def _inside(a: Attribution) -> bool:
    """The allocator's own books hold the kept memory that is not live: it is free
    memory inside the allocator (not thread stacks or mappings outside it)."""
    return (
        a.held_mb is not None and a.free_held_mb is not None and a.free_held_mb >= 0.9 * a.held_mb
    )


def _mb(row: BreakdownRow | None, column: str) -> float | None:
    value = None if row is None else getattr(row, column)
    return None if value is None else value / MIB


def _median(values: dict[int, float]) -> float | None:
    return float(np.median(list(values.values()))) if values else None
