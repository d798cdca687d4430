"""What a soak's pod is given: its memory (from a run dir's pod memory figure, or as told)
and its deadline (from the config's timeouts, or as told), each with why."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from soak.analysis.load import load_result
from soak.config.settings import RunConfig
from soak.core.errors import UsageError
from soak.store.records import MIB

# Beyond the variants' measuring: scheduling and the image pull, the analysis, the two
# `soak check`s and recording the run.
DEADLINE_MARGIN_S = 15 * 60


@dataclass(frozen=True)
class Sized:
    """A figure for the manifest and the sentence that says where it came from."""

    value: int
    why: str


def memory_from_run(run_dir: Path, soak_memory: int, variants: tuple[str, ...]) -> Sized:
    """The largest pod_memory_mb of the run's variants that the Job runs too (of them all,
    if it runs none of them; the variants run one at a time, so the pod holds one server),
    plus soak's own memory. UsageError if the run has no such figure."""
    result = load_result(run_dir)
    figures = [(v.pod_memory_mb, v.name) for v in result.variants if v.pod_memory_mb is not None]
    if not figures:
        raise UsageError(
            f"run dir {run_dir} has no pod memory figure (pod_memory_mb: no memory samples, "
            "or a summary.json from before soak computed it; `soak report` recomputes it): "
            "give --memory SIZE"
        )
    mb, variant = max([f for f in figures if f[1] in variants] or figures)
    total = math.ceil(mb * MIB + soak_memory)
    return Sized(
        total,
        f"pod_memory_mb {mb:.1f} ({variant}, {run_dir}) + soak {soak_memory / MIB:.0f} MiB",
    )


def deadline_for(config: RunConfig) -> Sized:
    """The longest the config's timeouts let its variants measure, plus a margin."""
    variants = len(config.variants)
    bound = config.variant_seconds_bound()
    swaps = config.max_swaps if config.swaps == "auto" else int(config.swaps)
    plural = "s" if variants > 1 else ""
    return Sized(
        math.ceil(variants * bound + DEADLINE_MARGIN_S),
        f"{variants} variant{plural} x {swaps + 1} x {bound / (swaps + 1):.0f} s (the "
        f"baseline and {swaps} swaps, each at most load_timeout + settle_timeout + steady + "
        f"60 s) + {DEADLINE_MARGIN_S // 60} min",
    )


def quantity(size: int) -> str:
    """Bytes as a Kubernetes memory quantity: Gi when whole, else Mi rounded up."""
    if size % (1 << 30) == 0:
        return f"{size >> 30}Gi"
    return f"{math.ceil(size / MIB)}Mi"
