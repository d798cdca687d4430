"""The rows of the run directory's CSV files (docs/contract.md#run-directory).

These dataclasses are the contract between the samplers that write rows and
the analysis that reads them back; the CSV header is the field order.
`t` values are seconds since the epoch; `swap` is 0 during the baseline and
k during swap k (from its staging until the next swap is staged).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum

MIB = 1 << 20

# Memory columns every target reports, and the ones only containers add.
PROCESS_MEMORY_COLUMNS = ("rss_bytes", "anon_bytes")
CGROUP_MEMORY_COLUMNS = ("cgroup_anon_bytes", "cgroup_working_set_bytes")
# The server's cumulative CPU seconds, read with its memory (every target reports it).
CPU_COLUMNS = ("cpu_s",)
# A settled level is the median of memory.csv over this long before its `settled` event:
# the window the driver's settle rule judges and the analysis reads back.
LEVEL_WINDOW_S = 1.0


@dataclass(frozen=True, slots=True)
class MemorySample:
    """One reading of the server's memory. Cgroup figures are None for processes.

    `cpu_s` is the server's cumulative CPU time (user + system, seconds) at `t`: the
    process's /proc/PID/stat, or a container's cgroup (entrypoint included, as Kubernetes
    counts it). None where unknown; memory.csv of an older soak has no such column.
    """

    t: float
    rss_bytes: int
    anon_bytes: int
    cgroup_anon_bytes: int | None = None
    cgroup_working_set_bytes: int | None = None
    swap: int = 0
    cpu_s: float | None = None


@dataclass(frozen=True, slots=True)
class LatencySample:
    """One predict request, timed from when it *should* have been sent.

    `latency_ms` is `t_end - t_intended`, so a stalled server shows up as
    latency instead of as fewer requests (coordinated omission).
    `status` is the HTTP status, or 0 when no response came (refused, timeout).
    """

    t_intended: float
    t_start: float
    t_end: float
    latency_ms: float
    status: int
    swap: int


@dataclass(frozen=True, slots=True)
class MetricSample:
    """One series of TF Serving's Prometheus page (--metrics), when its value changed.

    `name` is the sample name as the page writes it (e.g.
    `:tensorflow:cc:saved_model:load_latency`, `..._bucket`, `..._sum`), `labels` the
    label text between the braces as written (`model_path="/models/m/2"`; "" for none).
    A series gets a row at the first scrape and then whenever its value changed, so its
    value at any time is its latest row.
    """

    t: float
    swap: int
    name: str
    labels: str
    value: float


@dataclass(frozen=True, slots=True)
class Event:
    """A step of the run's timeline: see `EventKind`."""

    t: float
    swap: int
    event: str
    version: int | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class BreakdownRow:
    """What the server's memory is made of at one point (breakdown.csv,
    docs/contract.md#run-directory).

    `point` is `baseline`, `settled` (after each swap) or `released` (after the trim
    experiment at the end of the variant). The process figures come from
    /proc/PID/smaps_rollup; the allocator's own (`in_use_bytes`, `free_held_bytes`,
    `mapped_bytes`, `arenas`) from the probe inside the server, None where it is off
    or the allocator does not tell.
    """

    t: float
    swap: int
    point: str
    anon_bytes: int | None
    rss_bytes: int | None
    lazyfree_bytes: int | None
    file_rss_bytes: int | None
    in_use_bytes: int | None
    free_held_bytes: int | None
    mapped_bytes: int | None
    arenas: int | None


class BreakdownPoint:
    """Names used in breakdown.csv `point` column."""

    BASELINE = "baseline"
    SETTLED = "settled"
    RELEASED = "released"


class Status(StrEnum):
    """A variant's status in variant.json (and a run's in summary.json): a str, as stored."""

    RUNNING = "running"  # variant.json while it runs: still there if soak was killed
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"  # stopped by the user (or soak was killed)
    FAILED = "failed"  # the target or the allocator failed; the next variant still runs


class EventKind:
    """Names used in events.csv `event` column."""

    STARTED = "started"  # target process/container started (detail: pid or id)
    STAGED = "staged"  # version renamed into the base path
    LOADING = "loading"  # server reports the version LOADING
    AVAILABLE = "available"  # server reports the version AVAILABLE
    UNLOADING = "unloading"  # server reports the version UNLOADING
    END = "end"  # server reports the version END
    LOAD_FAILED = "load_failed"  # version ended with an error status
    SETTLED = "settled"  # memory stopped falling (detail: settled anon MiB)
    SETTLE_TIMEOUT = "settle_timeout"  # settle bound reached before memory settled
    SERVER_EXITED = "server_exited"  # the target died (detail: reason)
    SAMPLER_FAILED = "sampler_failed"  # a sampler gave up while the target ran (detail: why)
    INTERRUPTED = "interrupted"  # the user stopped the run
    STOPPED = "stopped"  # the target was stopped at the end
    SWAPS_DONE = "swaps_done"  # no more swaps (detail: why: as planned, decided, or the bound)
    PROBE = "probe"  # the allocator probe answered, or is off (detail: allocator, or why off)
    RELEASE = "release"  # the trim experiment asked the allocator to release (detail: its call)
    RELEASED = "released"  # memory settled after the release (detail: settled anon MiB)
    # the probe released free memory right after the old version unloaded (a variant with
    # release_after_unload, e.g. glibc-trim; detail: its call)
    TRIMMED = "trimmed"
    # the allocator's decay delay passed after a swap: the probe ran its time-based purging,
    # which low traffic may not have ticked (jemalloc; detail: its call)
    DECAYED = "decayed"


def columns(record_type: type) -> list[str]:
    """CSV header of a record type, in field order."""
    return [f.name for f in fields(record_type)]
