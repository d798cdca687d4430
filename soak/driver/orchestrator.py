"""A soak run: each variant in turn on a fresh target, then the analysis.

Whatever happens to one variant (allocator not loaded, server died, OOM), the
next one still runs, and everything measured so far stays on disk. On Ctrl-C
the current variant is stopped, marked interrupted, and the analysis still
runs on what was measured.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from soak.driver.plan import RunPlan, VariantPlan
from soak.driver.staging import VersionStager
from soak.driver.swap_driver import ServerDied, SwapDriver
from soak.errors import SoakError
from soak.progress import Progress
from soak.samplers.clock import SwapClock
from soak.samplers.latency import GrpcPredict, LatencyProber, PredictCall
from soak.samplers.memory import MemorySampler
from soak.samplers.payload import (
    build_predict_payload,
    fetch_metadata,
    grpc_inputs,
    load_request_file,
)
from soak.samplers.status import GrpcStatus, StatusPoller
from soak.settings import RunConfig
from soak.store.csv_log import CsvLog
from soak.store.records import MIB, Event, EventKind, LatencySample, MemorySample
from soak.store.run_dir import RunDir, VariantDir
from soak.targets.allocators import verify
from soak.targets.base import Target


@dataclass
class VariantResult:
    name: str
    status: str  # completed | interrupted | failed
    reason: str | None = None


class Interrupted(Exception):
    """Raised after an interrupted run has been cleaned up and analysed."""


class SwapCount(Protocol):
    """Whether a variant swaps again (analysis.swap_budget.SwapBudget)."""

    @property
    def planned(self) -> str: ...

    def record(self, index: int, settled_mb: float | None) -> None: ...

    def stop_reason(self, done: int) -> str | None: ...


class Orchestrator:
    """Executes a RunPlan: each variant in turn, everything written to the run dir."""

    def __init__(self, plan: RunPlan, progress: Progress, new_budget: Callable[[], SwapCount]):
        self.plan = plan
        self.config = plan.config
        self.progress = progress
        self.new_budget = new_budget  # a fresh swap count per variant
        self.run_dir = RunDir(plan.run_dir)

    def run(self) -> list[VariantResult]:
        """Soak every variant; raises Interrupted (after cleanup) on Ctrl-C."""
        results = []
        for variant in self.plan.variants:
            result = self.run_variant(variant)
            results.append(result)
            if result.status == "interrupted":
                raise Interrupted(results)
        return results

    def run_variant(self, variant: VariantPlan) -> VariantResult:
        vdir = self.run_dir.variant(variant.name)
        vdir.path.mkdir(parents=True, exist_ok=True)
        facts: dict[str, Any] = {
            "name": variant.name,
            "allocator": variant.allocator,
            "library": variant.library,
            "allocator_verified": False,
            "status": "running",
            "reason": None,
            "model_size_bytes": self.plan.model.size_bytes,
        }
        _write_json(vdir.variant_json, facts)
        events = CsvLog(vdir.events_csv, Event)
        session = _VariantSession(self, variant, vdir, events, facts)
        try:
            session.soak()
            facts["status"] = "completed"
        except KeyboardInterrupt:
            facts["status"], facts["reason"] = "interrupted", "interrupted by the user"
            events.append(Event(time.time(), session.clock.swap, EventKind.INTERRUPTED))
        except (ServerDied, SoakError) as exc:
            facts["status"], facts["reason"] = "failed", _with_log(str(exc), vdir)
            if isinstance(exc, ServerDied):
                events.append(
                    Event(time.time(), session.clock.swap, EventKind.SERVER_EXITED, None, str(exc))
                )
        finally:
            session.close()
            events.close()
            _write_json(vdir.variant_json, facts)
        self.progress.variant_done(variant.name, facts["status"], facts["reason"])
        return VariantResult(variant.name, facts["status"], facts["reason"])


class _VariantSession:
    """The live parts of one variant: target, samplers, driver; closed in any case."""

    def __init__(
        self,
        orch: Orchestrator,
        variant: VariantPlan,
        vdir: VariantDir,
        events: CsvLog,
        facts: dict[str, Any],
    ):
        self.orch, self.variant, self.vdir, self.events, self.facts = (
            orch,
            variant,
            vdir,
            events,
            facts,
        )
        self.config = orch.config
        self.clock = SwapClock()
        self.target: Target | None = None
        self.threads: list = []
        self.logs: list[CsvLog] = []
        self.stager = VersionStager(orch.plan.model.versions, vdir.models)

    def soak(self) -> None:
        config, progress = self.config, self.orch.progress
        spec = self.variant.launch_spec(
            config.model_name, self.vdir.models.resolve(), self.vdir.server_log
        )
        self.stager.stage(1)
        self.events.append(
            Event(time.time(), 0, EventKind.STAGED, 1, self.stager.source_for(1).name)
        )
        self.target = self.orch.plan.backend.make_target(spec, self.orch.plan.run_id)
        progress.message(f"[{self.variant.name}] starting server ({self.variant.allocator})")
        self.target.start()
        described = self.target.describe()
        self.facts["target"] = described
        started = described.get("pid") or described.get("container_id") or ""
        self.events.append(Event(time.time(), 0, EventKind.STARTED, None, str(started)))

        memory_log = self._log(
            self.vdir.memory_csv, MemorySample, ["t", *self.target.memory_columns(), "swap"]
        )
        memory = self._thread(MemorySampler(self.target, memory_log, self.clock, self.events))
        grpc_status = (
            partial(GrpcStatus, self.variant.grpc_port, config.model_name)
            if config.protocol == "grpc"
            else None
        )
        poller = self._thread(
            StatusPoller(
                self.target.rest_url,
                config.model_name,
                self.events,
                self.clock,
                fetch=grpc_status,
            )
        )
        driver = SwapDriver(
            self.target,
            self.stager,
            poller,
            memory,
            self.events,
            self.clock,
            metric=config.metric,
            settle_timeout_s=config.settle_timeout,
            load_timeout_s=config.load_timeout,
            purge_delay_s=self.variant.purge_delay_s,
        )
        driver.wait_first_version()
        self._verify_allocator(self.target)

        # The request is built from the metadata read over REST (TF Serving always serves
        # REST next to gRPC as soak starts it); over gRPC the same body goes as tensors.
        metadata = (
            fetch_metadata(self.target.rest_url, config.model_name)
            if config.protocol == "grpc" or not config.request_file
            else None
        )
        body = (
            load_request_file(Path(config.request_file))
            if config.request_file
            else build_predict_payload(metadata or {}, config.batch)
        )
        url = f"{self.target.rest_url}/v1/models/{config.model_name}:predict"
        call: PredictCall | None = None
        if config.protocol == "grpc":
            signature_name, inputs = grpc_inputs(body, metadata)
            call = GrpcPredict(self.variant.grpc_port, config.model_name, inputs, signature_name)
        prober = self._thread(
            LatencyProber(
                url,
                body,
                config.rps,
                self._log(self.vdir.latency_csv, LatencySample),
                self.clock,
                max_duration_s=_max_duration(config),
                concurrency=config.concurrency,
                call=call,
            )
        )
        budget = self.orch.new_budget()
        progress.variant_started(self.variant.name, budget.planned, memory, prober)
        budget.record(0, driver.baseline() / MIB)
        progress.swap_done(0)
        driver.hold(config.steady_s)
        index = 0
        while (why := budget.stop_reason(index)) is None:
            index += 1
            outcome = driver.swap(index)
            budget.record(index, outcome.settled_bytes / MIB)
            progress.swap_done(index, outcome)
            driver.hold(config.steady_s)
        driver.event(EventKind.SWAPS_DONE, driver.serving_version, why)
        progress.message(f"[{self.variant.name}] {why}")

    def _verify_allocator(self, target: Target) -> None:
        ok, why = verify(self.variant.allocator, target.mapped_paths())
        self.facts["allocator_verified"] = ok
        self.facts["allocator_check"] = why
        if not ok:
            raise SoakError(f"variant {self.variant.name}: {why}")

    def _log(self, path: Path, record_type: type, names: list[str] | None = None) -> CsvLog:
        log = CsvLog(path, record_type, names)
        self.logs.append(log)
        return log

    def _thread(self, sampler):
        sampler.start()
        self.threads.append(sampler)
        return sampler

    def close(self) -> None:
        """Stop traffic first, then the target, then the samplers; keep every row."""
        for sampler in reversed(self.threads):
            if isinstance(sampler, LatencyProber):
                sampler.stop()
        if self.target is not None:
            reason = self.target.exit_reason()
            self.target.stop()
            if reason is None:
                self.events.append(Event(time.time(), self.clock.swap, EventKind.STOPPED))
        for sampler in reversed(self.threads):
            sampler.stop()
        for log in self.logs:
            log.close()
        if not self.config.keep_models:
            self.stager.remove_all()


def _max_duration(config: RunConfig) -> float:
    """A hard bound on the traffic loop, whatever happens to the driver."""
    per_swap = config.load_timeout + config.settle_timeout + 60
    swaps = config.max_swaps if config.swaps == "auto" else int(config.swaps)
    return (swaps + 1) * per_swap


def _with_log(message: str, vdir: VariantDir) -> str:
    last = vdir.last_server_log_line()
    return f"{message} (server log: {last})" if last and "server" in message else message


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)
