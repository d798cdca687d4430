"""The run history: every finished run in an SQLite file, for trends and baselines.

`soak run` records each run it finishes (completed, interrupted or failed) in
`history.sqlite` beside the run dir (`soak-runs/history.sqlite` for the default
`soak-runs/TIME`; `--history FILE` elsewhere): one row per run (status, model,
backend, image, config hash, soak version, host facts) and one per variant
(verdict and key figures, with each figure's noise for `soak check
--against-history`; why memory is kept, the server's CPU per request and the
pod's memory). All of it comes from the run's `RunResult`, so `soak history --add
RUN_DIR`, for a run that could not record itself (killed, or run elsewhere), records
what the live run would have. `soak history` lists them.

Safe to share: each run is written in one transaction (`BEGIN IMMEDIATE`) on a
WAL journal with a busy timeout, so two runs finishing at once both land, a
reader never waits for a writer, and a process killed mid-write leaves the file
as it was before that run (SQLite's journal rolls the half-written transaction
back). The file is recorded again (replaced) when the same run dir is added twice.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from soak.analysis.regression import COMPARED, Measured
from soak.analysis.result import RunIdentity, RunResult, VariantIdentity, VariantResult
from soak.core.errors import UsageError
from soak.store.facts import Environment, machine_text
from soak.store.records import Status

# 2: variants' attribution (live_mb, held_mb, released_mb, left_after_...)
# 3: the server's CPU and the pod's memory (cpu_ms_per_request, swap_cpu_s, pod_memory_mb)
SCHEMA_VERSION = 3
BUSY_TIMEOUT_S = 60.0  # how long a writer waits for another one


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


_RUN_COLUMNS = [f.name for f in fields(RecordedRun) if f.name != "variants"]
_VARIANT_COLUMNS = [f.name for f in fields(RecordedVariant)]
# Columns added after schema 1, by the version that added them: a writer adds them to an
# older file (ALTER TABLE), a reader of an older file reads them as NULL.
_ADDED_VARIANT_COLUMNS = {
    2: ("live_mb", "held_mb", "released_mb", "left_after_release_mb"),
    3: ("cpu_ms_per_request", "swap_cpu_s", "pod_memory_mb"),
}
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    run_dir TEXT NOT NULL UNIQUE,
    {", ".join(c for c in _RUN_COLUMNS if c != "run_dir")},
    environment TEXT,
    recorded_t REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS variants (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    {", ".join(_VARIANT_COLUMNS)},
    PRIMARY KEY (run_id, name)
);
CREATE INDEX IF NOT EXISTS variants_by_config ON variants (config_hash, name);
CREATE INDEX IF NOT EXISTS runs_by_start ON runs (started_t);
"""


# --- writing -----------------------------------------------------------------------------


def record(path: Path, result: RunResult, run_dir: Path | None = None) -> RecordedRun:
    """Record a finished run in the history (`run_dir`: how to name it, else its own)."""
    recorded = recorded_run(result, run_dir)
    environment = result.environment.to_json() if result.environment else {}
    with _transaction(Path(path), create=True) as con:
        con.execute("DELETE FROM runs WHERE run_dir = ?", (recorded.run_dir,))
        values = [getattr(recorded, c) for c in _RUN_COLUMNS]
        cursor = con.execute(
            f"INSERT INTO runs ({', '.join(_RUN_COLUMNS)}, environment, recorded_t) "
            f"VALUES ({', '.join('?' * (len(_RUN_COLUMNS) + 2))})",
            [*values, json.dumps(environment, default=str), time.time()],
        )
        run_id = cursor.lastrowid
        con.executemany(
            f"INSERT INTO variants (run_id, {', '.join(_VARIANT_COLUMNS)}) "
            f"VALUES ({', '.join('?' * (len(_VARIANT_COLUMNS) + 1))})",
            [[run_id, *(getattr(v, c) for c in _VARIANT_COLUMNS)] for v in recorded.variants],
        )
    return recorded


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


# --- reading -----------------------------------------------------------------------------


def runs(
    path: Path,
    model: str | None = None,
    variant: str | None = None,
    config_hash: str | None = None,
) -> list[RecordedRun]:
    """The recorded runs, oldest first, with their variants (only `variant`'s, if given).

    `config_hash` is a prefix of the run's hash or of a variant's.
    """
    with _transaction(Path(path), create=False) as con:
        where, params = [], []
        if model is not None:
            where.append("r.model_name = ?")
            params.append(model)
        rows = con.execute(
            f"SELECT r.id, {', '.join('r.' + c for c in _RUN_COLUMNS)} FROM runs r "
            f"{'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY r.started_t, r.id",
            params,
        ).fetchall()
        variants: dict[int, list[RecordedVariant]] = {}
        present = {row[1] for row in con.execute("PRAGMA table_info(variants)")}
        selected = [c if c in present else f"NULL AS {c}" for c in _VARIANT_COLUMNS]
        for row in con.execute(
            f"SELECT run_id, {', '.join(selected)} FROM variants ORDER BY rowid"
        ):
            variants.setdefault(row[0], []).append(_variant_row(row[1:]))
    out = []
    for row in rows:
        run = RecordedRun(**dict(zip(_RUN_COLUMNS, row[1:], strict=True)))
        chosen = [v for v in variants.get(row[0], []) if variant is None or v.name == variant]
        if config_hash is not None and not run.config_hash.startswith(config_hash):
            chosen = [v for v in chosen if v.config_hash.startswith(config_hash)]
        if (variant is not None or config_hash is not None) and not chosen:
            continue
        out.append(_with_variants(run, chosen))
    return out


def comparable(
    path: Path,
    variant: str,
    config_hash: str,
    model_name: str,
    model_path: str,
    n: int,
    run_dir: Path | str | None = None,
    started_t: float | None = None,
) -> list[tuple[RecordedRun, RecordedVariant]]:
    """The last `n` runs comparable with a variant of `run_dir`: the same variant name,
    config hash and model (name, and --model as given or the demo model's size),
    completed with the allocator verified; oldest first.

    `run_dir` itself is left out, and so are runs that started after it (when
    it is recorded, else `started_t`).
    """
    own = str(Path(run_dir).resolve()) if run_dir is not None else None
    recorded = runs(path, model=model_name, variant=variant)
    before_t = next((r.started_t for r in recorded if r.run_dir == own), None)
    if before_t is None:
        before_t = started_t
    found = []
    for run in recorded:
        v = run.variant(variant)
        if v is None or v.config_hash != config_hash or run.model_path != model_path:
            continue
        if v.status != Status.COMPLETED or not v.allocator_verified or run.run_dir == own:
            continue
        if before_t is not None and run.started_t > before_t:
            continue
        found.append((run, v))
    return found[-n:] if n > 0 else []


@dataclass(frozen=True)
class Trend:
    """One variant's runs with one config hash and model: the series `soak history` draws."""

    variant: str
    config_hash: str
    model_name: str
    model_path: str
    points: tuple[tuple[RecordedRun, RecordedVariant], ...]  # oldest first

    @property
    def model_size_bytes(self) -> int | None:
        """The newest run's model size."""
        return self.points[-1][0].model_size_bytes if self.points else None


def trends(runs: Sequence[RecordedRun], last: int | None = None) -> list[Trend]:
    """The runs grouped by variant, config hash and model, in order of first appearance;
    each group's last `last` runs."""
    groups: dict[tuple[str, str, str, str], list[tuple[RecordedRun, RecordedVariant]]] = {}
    for run in runs:
        for v in run.variants:
            key = (v.name, v.config_hash, run.model_name, run.model_path)
            groups.setdefault(key, []).append((run, v))
    return [
        Trend(*key, points=tuple(points[-last:] if last else points))
        for key, points in groups.items()
    ]


def _variant_row(row: Sequence[Any]) -> RecordedVariant:
    values = dict(zip(_VARIANT_COLUMNS, row, strict=True))
    values["allocator_verified"] = bool(values["allocator_verified"])
    return RecordedVariant(**values)


def _with_variants(run: RecordedRun, variants: list[RecordedVariant]) -> RecordedRun:
    return replace(run, variants=tuple(variants))


# --- the file ----------------------------------------------------------------------------


@contextmanager
def _transaction(path: Path, create: bool) -> Iterator[sqlite3.Connection]:
    """A connection inside one transaction: committed at the end, else rolled back.

    `create`: a writer (the file and its tables are made if missing; the
    transaction takes the write lock at once, so two writers queue on the busy
    timeout instead of failing); else a reader of an existing history.
    """
    if not create and not path.is_file():
        raise UsageError(
            f"no history at {path} (soak run records every finished run in history.sqlite "
            "beside its run dir; --history FILE names another)"
        )
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)) as con:
            con.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            if create:
                con.execute("PRAGMA journal_mode = WAL")  # kept by the file
                con.execute("PRAGMA synchronous = FULL")
            con.execute("PRAGMA foreign_keys = ON")
            con.execute("BEGIN IMMEDIATE" if create else "BEGIN")
            try:
                _ensure_schema(con, path, create)
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"history {path}: {exc}") from None


def _ensure_schema(con: sqlite3.Connection, path: Path, create: bool) -> None:
    version = con.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise UsageError(f"history {path} was written by a newer soak (schema {version})")
    if version == SCHEMA_VERSION:
        return
    if not create:
        if version >= 1:  # an older schema: read as it is, added columns as NULL
            return
        raise UsageError(f"{path} is not a soak history")
    if version >= 1:  # migrate: the columns later schemas added
        present = {row[1] for row in con.execute("PRAGMA table_info(variants)")}
        for added_in, names in sorted(_ADDED_VARIANT_COLUMNS.items()):
            if added_in > version:
                for name in names:
                    if name not in present:
                        con.execute(f"ALTER TABLE variants ADD COLUMN {name}")
    else:
        for statement in _SCHEMA.split(";"):  # not executescript: it would commit first
            if statement.strip():
                con.execute(statement)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
