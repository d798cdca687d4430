"""`soak run` from a resolved config to an analysed run directory.

Set-up problems (model, allocator libraries, Docker) are found before any
server starts; then the orchestrator soaks each variant; then the analysis
turns the CSVs into summary.json and report.html, even after Ctrl-C.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from soak.config import RunConfig
from soak.driver.model_versions import resolve_model
from soak.driver.orchestrator import Interrupted, Orchestrator, VariantResult
from soak.environment import collect
from soak.progress import Progress
from soak.store.run_dir import RunDir
from soak.targets.allocators import find_library

if TYPE_CHECKING:
    from soak.analysis.result import RunResult


@dataclass
class RunOutcome:
    run_dir: Path
    result: RunResult
    variants: list[VariantResult] = field(default_factory=list)
    interrupted: bool = False

    @property
    def failed_variants(self) -> list[VariantResult]:
        return [v for v in self.variants if v.status == "failed"]


def run_soak(config: RunConfig, progress: Progress) -> RunOutcome:
    if config.backend == "process":
        for variant in config.variants:  # a missing library is an environment error, up front
            if variant.allocator != "glibc" and not variant.library:
                find_library(variant.allocator)
    if config.model is None:
        progress.message(f"using the demo model ({config.demo_size_mb:g} MiB, generated once)")
    model = resolve_model(config.model, config.demo_size_mb)

    orchestrator = Orchestrator(config, model, progress)
    docker_facts = None
    if config.backend == "docker":
        docker_facts = _prepare_docker(orchestrator, config, progress)
    run_dir = RunDir(Path(config.out))
    run_dir.path.mkdir(parents=True, exist_ok=True)
    run_dir.run_toml.write_text(config.to_toml())
    run_dir.environment_json.write_text(
        json.dumps(collect(config, docker_facts), indent=2, default=str) + "\n"
    )

    interrupted = False
    try:
        results = orchestrator.run()
    except Interrupted as exc:
        results, interrupted = exc.args[0], True
    from soak.report.outputs import write_outputs

    result = write_outputs(run_dir.path)  # summary.json and report.html
    return RunOutcome(run_dir.path, result, results, interrupted)


def _prepare_docker(orchestrator: Orchestrator, config: RunConfig, progress: Progress) -> dict:
    """Connect, clear leftovers of dead runs, resolve (or build) the image."""
    from soak.images import image_for_allocators
    from soak.targets.docker_engine import connect, engine_facts, remove_dead_run_containers

    client = connect()
    removed = remove_dead_run_containers(client)
    if removed:
        progress.message(f"removed {len(removed)} container(s) left by dead runs")
    allocators = [v.allocator for v in config.variants if not v.library]
    config.image = image_for_allocators(client, config.image, allocators, progress=progress.message)
    orchestrator.docker = client
    return engine_facts(client)
