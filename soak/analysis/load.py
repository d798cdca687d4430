"""A run's result as its consumers (gate, history, plugin) read it: summary.json, else a
fresh analysis; what an older soak's summary.json lacks comes from the run dir."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from soak.analysis import summary_json
from soak.analysis.analyse import analyse_run, rounded
from soak.analysis.identity import run_identity, variant_identity
from soak.analysis.inputs import read_events, read_run_toml_file
from soak.analysis.result import RunResult
from soak.store.facts import Environment
from soak.store.run_dir import RunDir


def load_result(run_dir: Path) -> RunResult:
    """RUN_DIR/summary.json if it is there and sound, else a fresh analysis of the raw data."""
    try:
        result = summary_json.read(Path(run_dir))
    except summary_json.NotASummary:
        result = analyse_run(Path(run_dir))
    if result.identity is None:
        result = backfilled(result, Path(run_dir))
    return replace(result, run_dir=str(run_dir))  # name the run as the user did


def backfilled(result: RunResult, run_dir: Path) -> RunResult:
    """An older soak's summary.json with what it did not hold: the identity (run.toml),
    the environment (environment.json), and when the run started and finished (events.csv)."""
    run = RunDir(run_dir)
    config, specs = read_run_toml_file(run.run_toml)
    named = {spec.name: spec for spec in specs}
    environment = Environment.read(run.environment_json)
    times = [e.t for v in run.variants() for e in read_events(v.events_csv)]
    return replace(
        result,
        started_t=rounded(min(times, default=None)),
        finished_t=rounded(max(times, default=None)),
        identity=run_identity(config, environment),
        environment=environment,
        variants=tuple(
            replace(v, identity=variant_identity(config, v.name, v.allocator, named.get(v.name)))
            for v in result.variants
        ),
    )
