"""Does the pod's memory fit the memory limit, and when would it reach it?

The limit applies to the whole server, so we project from what it applies to:
the cgroup working set (what Kubernetes evicts on) when the target is a container,
else RSS; and from its peak, since a swap, which holds two versions at once, is
what crosses a limit first. The figure is the pod's memory (pod_memory.py): the
peak plus what `plan_swaps` swaps keep at the growth's rate (its 95 % upper
bound unless the verdict ruled growth out). Every verdict gets an answer:

- `fits`: the pod's memory stays within the limit over the planned swaps; with a
  growth rate, also when the peak would reach the limit;
- otherwise: the number of further swaps (and days, with --swaps-per-day) until
  the peak reaches the limit at that rate.
"""

from __future__ import annotations

from dataclasses import replace

from soak.analysis.result import PodMemory, Projection
from soak.store.records import MIB


def project(
    pod: PodMemory | None,
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
        basis=pod.basis if pod is not None else basis,
        current_mb=pod.peak_mb if pod is not None else None,
        mb_per_swap=pod.mb_per_swap if pod is not None else None,
        swaps_per_day=swaps_per_day,
        swaps_to_limit=None,
        days_to_limit=None,
        note="",
        pod_memory_mb=pod.mb if pod is not None else None,
    )
    if pod is None:
        return replace(out, note="no memory figure to project from")
    if pod.peak_mb >= limit_mb:
        return replace(
            out,
            swaps_to_limit=0.0,
            days_to_limit=0.0 if swaps_per_day else None,
            fits=False,
            note=f"already at or above the limit: the swap peak was {pod.peak_mb:.0f} MiB",
        )
    fits = pod.mb <= limit_mb
    needs = f"needs {pod.mb:.0f} MiB for {pod.plan_swaps} swaps"
    if pod.mb_per_swap <= 0:
        growth = "growth unknown" if pod.rate == "none" else "no growth"
        return replace(
            out,
            fits=fits,
            note=f"fits: {needs} (the swap peak, {growth}), the limit is {limit_mb:.0f} MiB",
        )
    swaps = (limit_mb - pod.peak_mb) / pod.mb_per_swap
    days = swaps / swaps_per_day if swaps_per_day else None
    when = f", about {days:.1f} days at {swaps_per_day:g} swaps a day" if days is not None else ""
    rate = f"{pod.mb_per_swap:.1f} MiB per swap" + (
        " (the growth's upper bound)" if pod.rate == "upper bound" else ""
    )
    reaches = f"reaches {limit_mb:.0f} MiB after about {swaps:.0f} more swaps{when}"
    return replace(
        out,
        swaps_to_limit=swaps,
        days_to_limit=days,
        fits=fits,
        note=f"fits: {needs}; at {rate} it {reaches}" if fits else f"{reaches} at {rate} ({needs})",
    )
