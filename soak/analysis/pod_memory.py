"""The memory a pod needs: the answer for `resources.limits.memory` (`pod_memory_mb`,
docs/contract.md#fixes).

    pod_memory_mb = peak + rate * max(0, plan_swaps - swaps completed)

- `peak`: the highest memory the server reached while it served (until the run
  stopped it), on what a limit applies to: the cgroup working set for a container
  (what Kubernetes evicts on), else RSS. It is a swap's peak: TF Serving loads the
  new version before it unloads the old one, so a swap holds about two models, and
  it includes everything kept until then. The figure is never below it.
- `rate`: what each further swap keeps, from the verdict's Theil–Sen slope over the
  swaps it judges: its one-sided 95 % upper bound, slope + 1.645 * sigma /
  sqrt(sum (x - mean x)^2) as verdict.py bounds it, unless the verdict ruled growth
  out (`growth` below the threshold: then the measured slope); never below 0.
  Without a slope (fewer than two swaps judged) the rate is 0 and `rate` says "none".
- `plan_swaps` (run.toml, `--plan-swaps`, default 30): the swaps a production server
  does between restarts.
"""

from __future__ import annotations

import math

import numpy as np

from soak.analysis.memory import MemorySeries
from soak.analysis.result import PodMemory
from soak.analysis.verdict import BELOW, NOISE_MARGIN, Verdict
from soak.store.records import MIB

UPPER_BOUND, MEASURED, NO_RATE = "upper bound", "measured", "none"


def basis_column(series: MemorySeries) -> str:
    """What a memory limit applies to: the working set of a container, else RSS."""
    return "cgroup_working_set_bytes" if series.has("cgroup_working_set_bytes") else "rss_bytes"


def growth_rate(verdict: Verdict) -> tuple[float, str]:
    """(MiB per swap >= 0, which rate) the pod's memory grows at (module docstring)."""
    slope = verdict.mb_per_swap
    if slope is None or not math.isfinite(slope):
        return 0.0, NO_RATE
    if verdict.growth == BELOW:
        return max(0.0, slope), MEASURED
    x = np.asarray(verdict.swaps_judged, dtype=float)
    spread = float(np.sqrt(np.sum((x - x.mean()) ** 2))) if len(x) else 0.0
    sigma = verdict.noise_mb or 0.0
    se = sigma / spread if spread > 0 else 0.0
    return max(0.0, slope + NOISE_MARGIN * se), UPPER_BOUND


def pod_memory(
    series: MemorySeries,
    verdict: Verdict,
    swaps_completed: int,
    plan_swaps: int,
    served_until_t: float | None,
) -> PodMemory | None:
    """The pod's memory (None: memory.csv has no figure to take the peak of)."""
    column = basis_column(series)
    if not series.has(column):
        return None
    values = series.values(column)
    if served_until_t is not None:
        values = values[: int(np.searchsorted(series.t, served_until_t, side="right"))]
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    peak = float(values.max()) / MIB
    rate, which = growth_rate(verdict)
    more = max(0, plan_swaps - swaps_completed)
    return PodMemory(
        mb=math.ceil((peak + rate * more) * 1000) / 1000,  # rounded up: never below the peak
        peak_mb=peak,
        basis=column,
        mb_per_swap=rate,
        rate=which,
        plan_swaps=plan_swaps,
        more_swaps=more,
    )
