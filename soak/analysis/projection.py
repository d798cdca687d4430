"""When would a leaking server hit its memory limit at the measured rate?

The limit applies to the whole server, so we project from its total memory:
the cgroup working set (what Kubernetes evicts on) when the target is a
container, else RSS. The rate is the verdict's slope of the verdict metric:
retained heap shows up one for one in both. Only a `leak` is projected; a
plateau or a release has no crossing to predict.
"""

from __future__ import annotations

from dataclasses import replace

from soak.analysis.result import Projection
from soak.analysis.verdict import LEAK
from soak.store.records import MIB


def project(
    verdict: str,
    mb_per_swap: float | None,
    current_mb: float | None,
    basis: str,
    limit_bytes: int | None,
    swaps_per_day: float | None,
) -> Projection | None:
    """The projection to the memory limit, or None when no memory limit was given."""
    if limit_bytes is None:
        return None
    limit_mb = limit_bytes / MIB
    out = Projection(
        limit_mb=limit_mb,
        basis=basis,
        current_mb=current_mb,
        mb_per_swap=mb_per_swap,
        swaps_per_day=swaps_per_day,
        swaps_to_limit=None,
        days_to_limit=None,
        note="",
    )
    if current_mb is None:
        return replace(out, note="no memory figure to project from")
    if current_mb >= limit_mb:
        return replace(
            out,
            swaps_to_limit=0.0,
            days_to_limit=0.0 if swaps_per_day else None,
            note="already at or above the limit",
        )
    if verdict != LEAK or not mb_per_swap or mb_per_swap <= 0:
        return replace(out, note=f"not projected: the verdict is {verdict}, not a leak")
    swaps = (limit_mb - current_mb) / mb_per_swap
    days = swaps / swaps_per_day if swaps_per_day else None
    when = f", about {days:.1f} days at {swaps_per_day:g} swaps a day" if days is not None else ""
    return replace(
        out,
        swaps_to_limit=swaps,
        days_to_limit=days,
        note=f"reaches {limit_mb:.0f} MiB after about {swaps:.0f} more swaps{when}",
    )
