"""What the history keeps of a run: one `RecordedRun` with a `RecordedVariant` per variant.

All of it comes from the run's `RunResult` (`recorded_run`), so `soak history --add
RUN_DIR`, for a run that could not record itself (killed, or run elsewhere), records
what the live run would have. The fields are the history's columns (soak.history.schema).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from soak.analysis.regression import COMPARED, Measured
from soak.analysis.result import RunIdentity, RunResult, VariantIdentity, VariantResult
from soak.store.facts import Environment, machine_text


@dataclass(frozen=True)
class RecordedVariant:
    """One variant of a recorded run: its figures as summary.json has them, and their noise."""

    name: str
    allocator: str
    library: str | None
    allocator_verified: bool
    status: str
    config_hash: str
    server_args: str  # JSON list: the variant's own server flags (after the run's)
    env: str  # JSON object: the variant's environment
    verdict: str
    reason: str
    swaps_completed: int
    threshold_mb: float | None
    baseline_mb: float | None
    final_mb: float | None
    retained_mb: float | None
    level_mb: float | None
    retained_mb_per_swap: float | None
    noise_mb: float | None
    steady_p50_ms: float | None
    steady_p99_ms: float | None
    swap_p99_ms: float | None
    max_ms: float | None
    first_after_swap_ms: float | None
    errors: int
    requests: int
    retained_mb_noise: float | None
    retained_mb_per_swap_noise: float | None
    steady_p99_ms_noise: float | None
    swap_p99_ms_noise: float | None
    # why memory is kept (docs/contract.md#allocator-probe; None: the probe was off, or a run
    # recorded before it)
    live_mb: float | None = None
    held_mb: float | None = None
    released_mb: float | None = None
    left_after_release_mb: float | None = None
    # what fixes cost (docs/contract.md#fixes; None: no cpu_s in memory.csv, or a run recorded
    # before it)
    cpu_ms_per_request: float | None = None  # steady, the median over the windows
    swap_cpu_s: float | None = None
    pod_memory_mb: float | None = None

    def measured(self) -> dict[str, Measured]:
        """The compared figures with their noise, as `regression.measured` gives them."""
        return {
            f.name: Measured(getattr(self, f.name), getattr(self, f.name + "_noise"))
            for f in COMPARED
        }


@dataclass(frozen=True)
class RecordedRun:
    run_dir: str
    started_t: float
    finished_t: float
    status: str
    backend: str
    model_name: str
    model_size_bytes: int | None
    model_path: str  # --model as given, or "demo model, N MiB"
    image: str | None  # the Docker image (docker backend)
    server_binary: str | None  # the server (process backend)
    server_args: str  # JSON list: the run's server flags
    config_hash: str
    soak_version: str
    metric: str
    swaps_planned: str  # a count, or "auto"
    host: str | None
    os: str | None
    kernel: str | None
    cores: int | None
    usable_cores: int | None
    memory_total_bytes: int | None
    glibc_version: str | None
    python: str | None
    tensorflow: str | None
    docker_version: str | None
    variants: tuple[RecordedVariant, ...] = ()

    def variant(self, name: str) -> RecordedVariant | None:
        return next((v for v in self.variants if v.name == name), None)

    @property
    def machine(self) -> str:
        """What tells two machines apart for a comparison (pytest-benchmark's machine_info)."""
        return machine_text(self.host, self.cores, self.memory_total_bytes)


def recorded_run(result: RunResult, run_dir: Path | None = None) -> RecordedRun:
    """What the history keeps of a run: its result, configuration and host."""
    identity = result.identity or _UNKNOWN_IDENTITY
    env = result.environment or Environment()
    started = result.started_t or result.finished_t or time.time()
    return RecordedRun(
        run_dir=str(Path(run_dir if run_dir is not None else result.run_dir).resolve()),
        started_t=started,
        finished_t=result.finished_t or started,
        status=result.status,
        backend=result.backend,
        model_name=result.model.name,
        model_size_bytes=result.model.size_bytes,
        model_path=identity.model_path,
        image=identity.image,
        server_binary=identity.server_binary,
        server_args=json.dumps(list(identity.server_args)),
        config_hash=identity.config_hash,
        soak_version=result.soak_version,
        metric=result.metric,
        swaps_planned=identity.swaps,
        host=env.host,
        os=env.os,
        kernel=env.kernel,
        cores=env.cores,
        usable_cores=env.usable_cores,
        memory_total_bytes=env.memory_total_bytes,
        glibc_version=env.glibc_version,
        python=env.python,
        tensorflow=env.tensorflow,
        docker_version=env.docker_version,
        variants=tuple(_recorded_variant(v) for v in result.variants),
    )


# A result without its identity: the run dir held neither run.toml nor a summary.json that
# names it (load_result backfills what it can): it is compared with no other run.
_UNKNOWN_IDENTITY = RunIdentity(config_hash="unknown", model_path="unknown", swaps="unknown")


def _recorded_variant(v: VariantResult) -> RecordedVariant:
    m, verdict, lat = v.memory, v.memory.verdict, v.latency
    identity = v.identity or VariantIdentity(config_hash="unknown")
    return RecordedVariant(
        name=v.name,
        allocator=v.allocator,
        library=v.library,
        allocator_verified=v.allocator_verified,
        status=v.status,
        config_hash=identity.config_hash,
        server_args=json.dumps(list(identity.server_args)),
        env=json.dumps(dict(identity.env), sort_keys=True),
        verdict=verdict.verdict,
        reason=verdict.reason,
        swaps_completed=v.swaps_completed,
        threshold_mb=m.threshold_mb,
        baseline_mb=m.baseline_mb,
        final_mb=m.final_mb,
        retained_mb=m.retained_mb,
        level_mb=verdict.level_mb,
        retained_mb_per_swap=m.retained_mb_per_swap,
        noise_mb=verdict.noise_mb,
        steady_p50_ms=lat.steady_p50_ms,
        steady_p99_ms=lat.steady_p99_ms,
        swap_p99_ms=lat.swap_p99_ms,
        max_ms=lat.max_ms,
        first_after_swap_ms=lat.first_after_swap_ms,
        errors=lat.errors,
        requests=lat.requests,
        **{f"{f.name}_noise": v.noise.of(f.name) for f in COMPARED},
        live_mb=v.attribution.live_mb,
        held_mb=v.attribution.held_mb,
        released_mb=v.attribution.released_mb,
        left_after_release_mb=v.attribution.left_after_release_mb,
        cpu_ms_per_request=v.cpu.steady_ms_per_request,
        swap_cpu_s=v.cpu.swap_cpu_s,
        pod_memory_mb=v.pod_memory_mb,
    )
