"""The analysis of a run as one typed object: what summary.json holds, and what the report draws.

`analyse_run` (soak/analysis/analyse.py) builds a `RunResult`; report, terminal
table, gate, comparison and the pytest plugin read it; summary_json.py writes it
to summary.json (docs/contract.md#summaryjson) and reads it back. Figures are MiB (2^20 bytes),
milliseconds and seconds, rounded to 3 places as summary.json holds them, so a
result read back from summary.json equals the one it was written from (but
for the plot data, `VariantResult.timeline`, which summary.json does not hold).
The result is complete: the history, the gate and the plugin need nothing else
of the run dir.
None means the data has no answer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from soak.analysis.verdict import LEAK, Verdict
from soak.store.facts import Environment

SCHEMA = "soak.summary/1"
PROBE_ON = "on"
PROBE_NOT_RECORDED = "off: not recorded (older soak)"  # runs of a soak without the probe
LIVE_LEAK = "leak of live memory"  # a leak whose growth the allocator's in-use bytes show
LIVE_SHARE = 0.5  # a leak is live when in-use grows at least this share of its slope


@dataclass(frozen=True)
class SwapResult:
    """What one swap did: timings, memory, and latency in its window."""

    index: int
    version: int | None
    load_s: float | None  # staged -> new version AVAILABLE
    settle_s: float | None  # old version END (else staged) -> settled
    settled_mb: float | None
    peak_mb: float | None  # highest metric from staging to settled
    retained_mb: float | None  # settled minus the baseline
    increment_mb: float | None  # settled minus the previous settled level
    completed: bool  # memory settled (or the settle bound was reached)
    settle_timed_out: bool
    load_failed: bool
    rss_settled_mb: float | None
    cgroup_anon_settled_mb: float | None
    cgroup_working_set_settled_mb: float | None
    p99_ms: float | None = None  # successful requests in the swap's latency window
    errors: int = 0  # failed requests in that window
    # successful requests in the steady window after it (until the next staging or the stop):
    # how far a steady p99 moves from one window to the next
    steady_p99_ms: float | None = None
    # TF Serving's own timing of this swap's load and warmup, from its Prometheus metrics
    # (--metrics; soak/analysis/tfs_metrics.py); None without them
    tfs_load_ms: float | None = None
    tfs_warmup_ms: float | None = None
    # the server's CPU (memory.csv cpu_s; soak/analysis/cpu.py), None without it: seconds
    # from staging until memory settled (the load, and the requests served meanwhile) ...
    cpu_s: float | None = None
    # ... and CPU-ms per request in the steady window after it (from settled to the next
    # staging), None when that window has too few requests or samples
    steady_cpu_ms_per_request: float | None = None
    # the latency of the first request the new version served (None: none was seen)
    first_after_ms: float | None = None


@dataclass(frozen=True)
class MemoryResult:
    """A variant's memory: levels, and the verdict on the settled memory per swap."""

    metric: str
    baseline_mb: float | None
    peak_mb: float | None
    final_mb: float | None  # the last settled level (the baseline if no swap settled)
    retained_mb: float | None  # final minus baseline
    verdict: Verdict
    threshold_mb: float
    rss_baseline_mb: float | None
    rss_final_mb: float | None
    total_basis: str  # what a memory limit applies to: a column of memory.csv
    total_final_mb: float | None  # that column at the last settled point
    settle_timeouts: int

    @property
    def retained_mb_per_swap(self) -> float | None:
        """The verdict's robust slope (`retained_mb_per_swap`, docs/contract.md#summaryjson)."""
        return self.verdict.mb_per_swap


@dataclass(frozen=True)
class LatencyFigures:
    """A variant's latency by window (see soak/analysis/latency.py)."""

    steady_p50_ms: float | None
    steady_p99_ms: float | None
    steady_max_ms: float | None
    swap_p50_ms: float | None
    swap_p99_ms: float | None
    swap_max_ms: float | None
    max_ms: float | None  # steady and swap windows together
    errors: int  # steady and swap windows together
    steady_errors: int
    swap_errors: int
    requests: int  # steady and swap windows together
    first_after_swap_ms: float | None  # median over swaps (see first_after_swap)
    first_after_swap_max_ms: float | None
    late_sends: int  # sent more than LATE_SEND_MS after the intended time
    protocol: str = "rest"  # how the requests went: "rest" or "grpc" (--protocol)
    split: int = 1  # each request sent as this many parallel parts (--split)


@dataclass(frozen=True)
class Projection:
    """Whether the pod's memory fits the memory limit, and when it reaches it
    (soak/analysis/projection.py)."""

    limit_mb: float
    basis: str
    current_mb: float | None  # the highest memory seen (the swap peak), on `basis`
    mb_per_swap: float | None  # the growth it is projected at (the pod memory's rate)
    swaps_per_day: float | None
    swaps_to_limit: float | None  # more swaps until the peak reaches the limit (None: never)
    days_to_limit: float | None
    note: str
    fits: bool | None = None  # pod_memory_mb within the limit (None: no figure)
    pod_memory_mb: float | None = None


@dataclass(frozen=True)
class CpuFigures:
    """The server's CPU (soak/analysis/cpu.py), from memory.csv's cpu_s: None without it."""

    steady_ms_per_request: float | None = None  # median over the steady windows
    # the interquartile range over those windows: [25th, 75th percentile]
    steady_ms_per_request_spread: tuple[float, float] | None = None
    swap_cpu_s: float | None = None  # median over swaps of the CPU s from staging to settled
    windows: int = 0  # steady windows with a figure
    swaps: int = 0  # swaps with a CPU figure


@dataclass(frozen=True)
class PodMemory:
    """What a pod needs (soak/analysis/pod_memory.py): the highest memory seen plus what
    `plan_swaps` swaps keep at the growth's rate (its upper bound unless ruled out)."""

    mb: float  # pod_memory_mb
    peak_mb: float  # the highest memory seen in the run (a swap holds two versions)
    basis: str  # the memory.csv column: rss_bytes, or cgroup_working_set_bytes
    mb_per_swap: float  # the growth rate used (>= 0)
    rate: str  # "upper bound", "measured" (growth ruled out) or "none" (no slope)
    plan_swaps: int
    more_swaps: int  # plan_swaps minus the swaps completed (>= 0)


@dataclass(frozen=True)
class Shift:
    """One figure of a variant against the reference (soak/analysis/shift.py): the
    Hodges–Lehmann shift (variant minus reference) and its 95 % interval."""

    shift: float | None
    low: float | None  # None: too few values for an interval
    high: float | None
    label: str | None  # better | same | worse (lower is better); None: too few values
    margin: float | None = None  # a difference counts beyond this (and the interval)
    n: int = 0  # the variant's values
    n_reference: int = 0
    reference_median: float | None = None

    @property
    def percent(self) -> float | None:
        """The shift as a share of the reference's median, in %."""
        if self.shift is None or not self.reference_median:
            return None
        return 100.0 * self.shift / abs(self.reference_median)

    @property
    def percent_half_width(self) -> float | None:
        """Half the interval's width, in % of the reference's median."""
        if self.low is None or self.high is None or not self.reference_median:
            return None
        return 100.0 * (self.high - self.low) / 2 / abs(self.reference_median)


NO_SHIFT = Shift(None, None, None, None)


@dataclass(frozen=True)
class VariantComparison:
    """A variant against the run's reference (its first variant), figure by figure:
    lower is better for all four (soak/analysis/comparison.py)."""

    reference: str
    kept_mb: Shift = NO_SHIFT  # per-swap retained MiB over the swaps the verdict judges
    cpu_ms_per_request: Shift = NO_SHIFT  # per steady window
    steady_p99_ms: Shift = NO_SHIFT  # per swap's steady window
    swap_p99_ms: Shift = NO_SHIFT  # per swap's window

    FIGURES = ("kept_mb", "cpu_ms_per_request", "steady_p99_ms", "swap_p99_ms")

    def figure(self, name: str) -> Shift:
        shift: Shift = getattr(self, name)
        return shift


@dataclass(frozen=True)
class Attribution:
    """Why memory is kept (docs/contract.md#allocator-probe; soak/analysis/attribution.py): MiB
    over the baseline.

    `live_mb`, `held_mb` and `non_heap_mb` are at the verdict's level: the median over
    the swaps the verdict judges (after the warmup swaps), as `Verdict.level_mb` is.
    None where unknown: the probe was off, the allocator does not tell, no release.
    """

    probe: str = PROBE_NOT_RECORDED  # "on", or "off: REASON"
    allocator_seen: str | None = None  # the allocator the probe reported
    live_mb: float | None = None  # the allocator's in-use bytes, over the baseline's
    live_mb_per_swap: float | None = None  # Theil–Sen slope of in-use over the judged swaps
    held_mb: float | None = None  # the kept anonymous memory minus live_mb
    # the allocator's own count of free memory it holds (glibc fordblks, ...), over the
    # baseline's: what of held_mb is free memory inside the allocator, by its own books
    free_held_mb: float | None = None
    non_heap_mb: float | None = None  # file-backed RSS, over the baseline's
    released_mb: float | None = None  # anon of the last settled point minus after the release
    left_after_release_mb: float | None = None  # anon after the release minus the baseline's
    release_call: str | None = None  # what the probe called, e.g. "malloc_trim(0)"

    @property
    def on(self) -> bool:
        return self.probe == PROBE_ON

    @property
    def off_reason(self) -> str | None:
        """Why the probe was off (None: it was on)."""
        return None if self.on else self.probe.removeprefix("off:").strip()


@dataclass(frozen=True)
class Series:
    """One line of a plot: x in seconds since the variant started, y in MiB or ms."""

    name: str
    x: tuple[float, ...]
    y: tuple[float, ...]

    def __repr__(self) -> str:
        return f"Series({self.name!r}, {len(self.x)} points)"


@dataclass(frozen=True)
class VariantTimeline:
    """What the report plots over time for one variant, reduced to a few thousand points.

    Times are seconds since `t0` (the variant's first event, else its first sample).
    """

    t0: float
    started_t: float | None  # the first event (epoch s), if any
    baseline_s: float | None
    staged_s: tuple[float, ...]  # per swap
    settled_s: tuple[float | None, ...]  # per swap
    swap_windows: tuple[tuple[float, float], ...]  # latency windows, clipped to the data
    memory: tuple[Series, ...]  # the verdict metric first, then RSS / working set
    latency_ok: Series  # successful requests (the envelope of each time bin when long)
    latency_errors: Series  # failed requests (status != 200)
    first_after_swap: Series | None = None  # the first request each new version served
    # What settled memory is made of, per point of breakdown.csv (x: swap index, 0 the
    # baseline; y: MiB over the baseline's): "live heap", "held by the allocator", "non-heap".
    # Empty without the probe's in-use bytes.
    breakdown: tuple[Series, ...] = ()
    # The trim experiment, anonymous MiB: (baseline, before the release, after it); None: none
    release_mb: tuple[float, float, float] | None = None
    release_s: float | None = None  # when the release was asked for


@dataclass(frozen=True)
class Noise:
    """This run's own noise in each figure a regression check compares
    (soak/analysis/noise.py): None where too few swaps show it."""

    retained_mb: float | None = None  # settled memory's scatter around its trend
    retained_mb_per_swap: float | None = None  # that scatter over the swaps' spread
    steady_p99_ms: float | None = None  # sd of the steady windows' p99s
    swap_p99_ms: float | None = None  # sd of the swap windows' p99s

    def of(self, figure: str) -> float | None:
        value: float | None = getattr(self, figure)
        return value


@dataclass(frozen=True)
class VariantIdentity:
    """What a variant's figures are comparable by: its config hash (the run's settings and
    the variant's own, soak.config.settings) and the flags and environment it adds."""

    config_hash: str
    server_args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # sorted by name


@dataclass(frozen=True)
class RunIdentity:
    """What a run is: its config hash, the model as the user named it, the server."""

    config_hash: str
    model_path: str  # --model as given, or "demo model, N MiB"
    swaps: str  # a count, or "auto"
    server_args: tuple[str, ...] = ()
    image: str | None = None  # the Docker image (docker backend)
    server_binary: str | None = None  # the server (process backend)


@dataclass(frozen=True)
class VariantResult:
    name: str
    allocator: str
    allocator_verified: bool
    status: str  # completed | interrupted | failed
    swaps_completed: int
    memory: MemoryResult
    latency: LatencyFigures
    swaps: tuple[SwapResult, ...]
    library: str | None
    reason: str | None  # why the variant failed or did not run
    server_exit: str | None  # why the server died, if it did
    projection: Projection | None  # None: no memory limit was given
    timeline: VariantTimeline | None = None  # None when read from summary.json
    swaps_done: str | None = None  # why it had no more swaps: as planned, decided, the bound
    attribution: Attribution = Attribution()  # why memory is kept (the probe's figures)
    cpu: CpuFigures = CpuFigures()  # the server's CPU (None figures: memory.csv had no cpu_s)
    pod_memory: PodMemory | None = None  # what a pod needs (None: no memory figure)
    comparison: VariantComparison | None = None  # against the reference (None: it is)
    production_change: str | None = None  # what to change in production (None: not recorded)
    noise: Noise = Noise()  # the run's own noise in the compared figures
    identity: VariantIdentity | None = None  # None: an older soak's summary.json

    @property
    def pod_memory_mb(self) -> float | None:
        return self.pod_memory.mb if self.pod_memory is not None else None

    @property
    def live_leak(self) -> bool:
        """A leak whose growth is live data: the allocator's in-use bytes grow above the
        threshold, and make up at least LIVE_SHARE of the verdict's slope."""
        live = self.attribution.live_mb_per_swap
        slope = self.memory.verdict.mb_per_swap
        return (
            self.memory.verdict.verdict == LEAK
            and live is not None
            and live > self.memory.threshold_mb
            and (slope is None or live >= LIVE_SHARE * slope)
        )

    @property
    def verdict_text(self) -> str:
        """The verdict as the report and the gate name it: a live leak says so."""
        return LIVE_LEAK if self.live_leak else self.memory.verdict.verdict


@dataclass(frozen=True)
class Comparison:
    """Which variant to use (soak/analysis/comparison.py)."""

    least_memory: str | None
    least_latency: str | None
    allocator_independent: bool
    recommendation: str
    control: str | None = None  # the released variant keeping least: its level is one-time cost
    # each variant's retained memory (its level, MiB) minus the control's, in run order
    retained_vs_control_mb: tuple[tuple[str, float | None], ...] = ()
    reference: str | None = None  # the variant the others are compared with (the first)
    # the variants that give memory back against the reference, best first
    ranking: tuple[str, ...] = ()


@dataclass(frozen=True)
class Model:
    name: str
    size_bytes: int | None


@dataclass(frozen=True)
class RunResult:
    """A whole run: summary.json as an object."""

    status: str  # completed | interrupted | failed
    backend: str
    model: Model
    variants: tuple[VariantResult, ...]
    run_dir: str
    metric: str
    threshold_mb: float
    warmup_swaps: int
    swaps_planned: int | None  # None: --swaps auto (or not recorded)
    comparison: Comparison
    soak_version: str
    max_swaps: int | None = None  # the bound of --swaps auto (None: a fixed count)
    schema: str = SCHEMA
    started_t: float | None = None  # the first event of the first variant (epoch s)
    finished_t: float | None = None  # the last event or sample of any variant
    identity: RunIdentity | None = None  # None: an older soak's summary.json
    environment: Environment | None = None  # environment.json (None: not written)

    def variant(self, name: str) -> VariantResult:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(f"no variant {name!r} in {self.run_dir}")

    def without_plot_data(self) -> RunResult:
        """The result as summary.json holds it (no `VariantResult.timeline`)."""
        return replace(self, variants=tuple(replace(v, timeline=None) for v in self.variants))
