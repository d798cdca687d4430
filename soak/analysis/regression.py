"""Is a run worse than its reference by more than the runs' own noise? (`soak check --baseline`,
`--against-history`, the plugin's `assert_no_regression`).

A figure regresses when

    new - ref > allowed = max(P % of |ref|, floor, Z * sqrt(u_new^2 + r^2))

- `ref`: the reference: the baseline run's figure, or the median over the
  last N comparable runs of the history;
- `P`: the allowed worsening in percent (`--max-regression`, default 10);
- `floor`: the variant's threshold (MiB per swap, max(1 MiB, 1 % of the model)) for
  memory figures, 1 ms for latency: below it no change is a finding;
- `u_new`: the run's own noise in that figure, from the scatter of its per-swap
  values (`VariantResult.noise`, soak/analysis/noise.py);
- `r`: how uncertain the reference is:
  - with 3 or more reference runs, their measured spread: the standard
    deviation of the figure over them (it holds each run's own noise, and
    what no single run shows: the machine's load at the time, where an
    allocator happened to settle);
  - with fewer, the reference's own noise `u_ref` (as `u_new`, the median over
    the reference runs) and, for latency, its drift `d` between runs, which
    no single run can show: LATENCY_DRIFT (20 %) of the reference's p99.
    Measured on this 2-core shared machine, six identical default runs
    (jemalloc) had steady p99s of 7.9 to 14.0 ms and swap p99s of 195 to 318
    ms, a standard deviation of 18 % and 17 % of their median; the p50 moved
    with them (the machine's load), while each run's windows scattered by 1-3
    ms only. Memory has no such term: a run's own scatter covers its
    run-to-run spread;
- `Z` = 3.

Two identical runs thus never differ by more than their noise allows; a
planted leak (16 MiB per swap against a clean run's ~0) is far outside it. The
price of one baseline run: latency must be about twice as bad to count (use
the history, whose measured spread replaces the assumed drift, or an absolute
limit such as --max-swap-p99-ms).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from soak.analysis.result import VariantResult

NOISE_Z = 3.0  # standard deviations of noise a regression must exceed
MIN_RUNS_FOR_SPREAD = 3  # reference runs needed to measure their spread
LATENCY_DRIFT = 0.2  # latency's run-to-run sd, as a share of it, while the spread is unmeasured
LATENCY_FLOOR_MS = 1.0
DEFAULT_REGRESSION_PCT = 10.0


@dataclass(frozen=True)
class Figure:
    """A figure a limit applies to: its summary.json name, unit, and where it is."""

    name: str
    unit: str
    memory: bool  # a memory figure (else latency)
    of: Callable[[VariantResult], float | None]


RETAINED_MB_PER_SWAP = Figure(
    "retained_mb_per_swap", "MiB", True, lambda v: v.memory.retained_mb_per_swap
)
RETAINED_MB = Figure("retained_mb", "MiB", True, lambda v: v.memory.retained_mb)
STEADY_P99_MS = Figure("steady_p99_ms", "ms", False, lambda v: v.latency.steady_p99_ms)
SWAP_P99_MS = Figure("swap_p99_ms", "ms", False, lambda v: v.latency.swap_p99_ms)
ERRORS = Figure("errors", "", False, lambda v: v.latency.errors)

# The figures compared with a reference, in the order of the lines.
COMPARED = (RETAINED_MB_PER_SWAP, RETAINED_MB, STEADY_P99_MS, SWAP_P99_MS)


@dataclass(frozen=True)
class Measured:
    """One run's figure and its noise (`u` above; None: not known)."""

    value: float | None
    noise: float | None


def measured(v: VariantResult) -> dict[str, Measured]:
    """The compared figures of a variant, each with the run's own noise in it."""
    return {f.name: Measured(f.of(v), v.noise.of(f.name)) for f in COMPARED}


@dataclass(frozen=True)
class Reference:
    """What a run is compared with: one baseline run, or comparable runs of the history."""

    description: str  # "the baseline run RUN_DIR", "the median of 5 comparable runs in FILE"
    runs: tuple[Mapping[str, Measured], ...]  # per run: figure name -> Measured


@dataclass(frozen=True)
class Regression:
    """One figure of one variant against its reference."""

    variant: str
    figure: Figure
    new: float | None
    ref: float | None
    pct: float
    floor: float
    u_new: float  # the run's own noise in the figure (0: unknown)
    r: float  # the reference's uncertainty: the runs' spread, else u_ref and the drift
    runs: int  # reference runs with the figure
    spread_measured: bool  # r is the reference runs' spread (3 runs or more)
    drift: float = 0.0  # d: latency's assumed run-to-run drift (spread unmeasured)

    @property
    def pct_part(self) -> float:
        return abs(self.ref) * self.pct / 100 if self.ref is not None else 0.0

    @property
    def noise(self) -> float:
        return NOISE_Z * math.hypot(self.u_new, self.r)

    @property
    def allowed(self) -> float:
        return max(self.pct_part, self.floor, self.noise)

    @property
    def regressed(self) -> bool:
        return self.new is not None and self.ref is not None and self.new - self.ref > self.allowed

    @property
    def unknown(self) -> bool:
        """The reference has the figure, the run does not: it cannot be compared."""
        return self.new is None and self.ref is not None

    def line(self, run: str, reference: str) -> str:
        """The gate's line for a regression (or a figure that cannot be compared)."""
        f, u = self.figure, _u(self.figure.unit)
        if self.unknown:
            return f"{self.variant}: {f.name} unknown, cannot be compared with {reference} in {run}"
        assert self.new is not None and self.ref is not None
        if self.spread_measured:
            why = f"the {self.runs} runs' spread {_n(self.r)}"
        else:
            why = "the reference's own " + _n(self.r)
            if self.drift:
                why += f" with {LATENCY_DRIFT:.0%} drift"
        noise = (
            f"noise {NOISE_Z:g} x {_n(self.noise / NOISE_Z)} (this run's {_n(self.u_new)}, {why})"
        )
        parts = [f"{self.pct:g} % of it {_n(self.pct_part)}", f"floor {_n(self.floor)}", noise]
        return (
            f"{self.variant}: {f.name} {_n(self.new)}{u} regressed from {_n(self.ref)}{u}: "
            f"{_n(self.new - self.ref, '+')}{u} > {_n(self.allowed)}{u} allowed "
            f"(the largest of {', '.join(parts)}) in {run} vs {reference}"
        )


def compare(
    v: VariantResult,
    reference_runs: Sequence[Mapping[str, Measured]],
    pct: float = DEFAULT_REGRESSION_PCT,
    figures: Sequence[Figure] = COMPARED,
) -> list[Regression]:
    """Each figure of `v` against the reference runs (see the module's formula)."""
    new = measured(v)
    out = []
    for f in figures:
        known = [x for r in reference_runs if (x := r[f.name].value) is not None]
        ref = statistics.median(known) if known else None
        spread_measured = len(known) >= MIN_RUNS_FOR_SPREAD
        drift = 0.0
        if spread_measured:
            r = statistics.stdev(known)
        else:
            noises = [n for run in reference_runs if (n := run[f.name].noise) is not None]
            u_ref = statistics.median(noises) if noises else 0.0
            if ref is not None and not f.memory:
                drift = LATENCY_DRIFT * abs(ref)
            r = math.hypot(u_ref, drift)
        out.append(
            Regression(
                variant=v.name,
                figure=f,
                new=new[f.name].value,
                ref=ref,
                pct=pct,
                floor=v.memory.threshold_mb if f.memory else LATENCY_FLOOR_MS,
                u_new=new[f.name].noise or 0.0,
                r=r,
                runs=len(known),
                spread_measured=spread_measured,
                drift=drift,
            )
        )
    return out


def _n(value: float, sign: str = "") -> str:
    """A figure for a gate line: 3 significant digits at least, no exponent."""
    text = f"{value:{sign}.3g}" if abs(value) < 1000 else f"{value:{sign}.0f}"
    return text if "e" not in text else f"{value:{sign}.3f}"


def _u(unit: str) -> str:
    return f" {unit}" if unit else ""
