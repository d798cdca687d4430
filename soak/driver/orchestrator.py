"""A soak run's measuring: each variant in turn on a fresh target (the runner analyses after).

Whatever happens to one variant (allocator not loaded, server died, OOM, its
container removed from outside), the next one still runs, and everything
measured so far stays on disk. When the model's first version does not load,
the later variants are not tried: they would fail the same way. On SIGINT or
SIGTERM (`soak.core.interrupts`) the current variant is stopped, marked
interrupted, and the analysis still runs on what was measured.
"""

from __future__ import annotations

import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol, TypeVar

from soak.core import interrupts
from soak.core.errors import SoakError
from soak.core.owner import Owner
from soak.core.procfs import parse_cpu_list
from soak.driver.neighbour import Neighbour
from soak.driver.plan import RunPlan, VariantPlan
from soak.driver.progress import Progress
from soak.driver.settle import SettleRule
from soak.driver.staging import VersionStager
from soak.driver.swap_driver import FirstLoadFailed, ServerDied, SwapDriver
from soak.samplers.breakdown import BreakdownSampler, connect_probe
from soak.samplers.clock import SwapClock
from soak.samplers.latency import GrpcPredict, LatencyProber, PredictCall, RestPredict
from soak.samplers.memory import MemorySampler
from soak.samplers.metrics import MetricsScraper
from soak.samplers.monitor_loop import MonitorLoop
from soak.samplers.payload import (
    build_predict_payload,
    fetch_metadata,
    grpc_inputs,
    load_request_file,
)
from soak.samplers.server_log import ServerLogWatcher
from soak.samplers.split import SplitPredict, split_body
from soak.samplers.status import GrpcStatus, StatusPoller
from soak.store.csv_log import CsvLog
from soak.store.facts import VariantFacts
from soak.store.records import (
    MIB,
    BreakdownPoint,
    BreakdownRow,
    Event,
    EventKind,
    LatencySample,
    MemorySample,
    MetricSample,
    Status,
)
from soak.store.run_dir import RunDir, VariantDir
from soak.targets import monitoring, probe_library
from soak.targets.allocators import verify
from soak.targets.base import Target


@dataclass
class VariantResult:
    name: str
    status: str  # completed | interrupted | failed
    reason: str | None = None
    model_failed: bool = False  # the model's first version did not load


class _Startable(Protocol):
    def start(self) -> None: ...


_S = TypeVar("_S", bound=_Startable)


class RunInterrupted(Exception):
    """Raised after an interrupted run has been cleaned up: the results so far, the signal."""

    def __init__(self, results: list[VariantResult], signum: int):
        super().__init__(results, signum)
        self.results = results
        self.signum = signum


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
        """Soak every variant; raises RunInterrupted (after cleanup) on SIGINT/SIGTERM."""
        results: list[VariantResult] = []
        model_failure: str | None = None  # the first version of the model did not load
        try:
            for variant in self.plan.variants:
                if interrupts.pending():
                    break
                if model_failure is not None:
                    results.append(self.skip_variant(variant, model_failure))
                    continue
                result = self.run_variant(variant)
                results.append(result)
                if result.status == Status.INTERRUPTED:
                    break  # (a plain Ctrl-C too, when no handlers are installed)
                if result.model_failed:
                    model_failure = f"not tried: in variant {variant.name}, {result.reason}"
        finally:
            self._remove_own_leftovers()
        signum = interrupts.pending()
        if signum is None and any(r.status == Status.INTERRUPTED for r in results):
            signum = signal.SIGINT
        if signum is not None:
            raise RunInterrupted(results, signum)
        return results

    def _remove_own_leftovers(self) -> None:
        """Whatever of this run still exists (normally nothing: each variant removes its own)."""
        try:
            removed = self.plan.backend.remove_run_leftovers(self.plan.run_id)
        except Exception as exc:  # the engine went away: say so, keep going
            self.progress.notice(f"could not check for leftovers of this run: {exc}")
            return
        for what in removed:
            self.progress.notice(f"removed a leftover of this run: {what}")

    def skip_variant(self, variant: VariantPlan, reason: str) -> VariantResult:
        """A variant not started because it would fail as an earlier one did."""
        vdir = self.run_dir.variant(variant.name)
        vdir.path.mkdir(parents=True, exist_ok=True)
        CsvLog(vdir.events_csv, Event).close()  # an empty timeline: the variant is known
        facts = self._facts(variant)
        facts.status, facts.reason = Status.FAILED, reason
        facts.write(vdir.variant_json)
        self.progress.variant_done(variant.name, Status.FAILED, reason)
        return VariantResult(variant.name, Status.FAILED, reason)

    def _facts(self, variant: VariantPlan) -> VariantFacts:
        return VariantFacts(
            name=variant.name,
            allocator=variant.allocator,
            library=variant.library,
            model_size_bytes=self.plan.model.size_bytes,
            split=variant.split,
        )

    def run_variant(self, variant: VariantPlan) -> VariantResult:
        vdir = self.run_dir.variant(variant.name)
        vdir.path.mkdir(parents=True, exist_ok=True)
        facts = self._facts(variant)
        facts.write(vdir.variant_json)
        events = CsvLog(vdir.events_csv, Event)
        session = _VariantSession(self, variant, vdir, events, facts)
        error: BaseException | None = None
        try:
            with interrupts.interruptible():
                session.soak()
        except BaseException as exc:  # classified below, after cleanup: nothing is lost
            error = exc
        # Signals are held from here on: stopping the server is never cut in half.
        model_failed = False
        t = time.time()
        if error is None:
            facts.status = Status.COMPLETED
        elif isinstance(error, KeyboardInterrupt):
            signum = getattr(error, "signum", signal.SIGINT)
            facts.status = Status.INTERRUPTED
            facts.reason = f"interrupted by {interrupts.signal_name(signum)}"
            events.append(Event(t, session.clock.swap, EventKind.INTERRUPTED, None, facts.reason))
        else:
            facts.status = Status.FAILED
            facts.reason = session.failure_reason(error)
            model_failed = isinstance(error, FirstLoadFailed)
            if isinstance(error, ServerDied) or session.server_gone():
                events.append(
                    Event(t, session.clock.swap, EventKind.SERVER_EXITED, None, facts.reason)
                )
        if facts.probe is None:  # it stopped before the probe was asked (not an older soak)
            facts.probe = "off: the variant ended before the probe was asked"
        try:
            session.close()
        finally:
            events.close()
            facts.write(vdir.variant_json)
        if error is not None and not isinstance(error, (KeyboardInterrupt, Exception)):
            raise error  # SystemExit and the like: not ours to swallow
        self.progress.variant_done(variant.name, facts.status, facts.reason)
        return VariantResult(variant.name, facts.status, facts.reason, model_failed)


class _VariantSession:
    """The live parts of one variant: target, samplers, driver; closed in any case."""

    def __init__(
        self,
        orch: Orchestrator,
        variant: VariantPlan,
        vdir: VariantDir,
        events: CsvLog,
        facts: VariantFacts,
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
        self.memory: MemorySampler | None = None
        # one thread for the memory readings and the REST prober (samplers/monitor_loop.py)
        self.loop = MonitorLoop()
        self.metrics: MetricsScraper | None = None
        self.serving = False  # the first version became available
        self.probe_socket_dir: Path | None = None  # where the server's probe listens

    def soak(self) -> None:
        config, progress = self.config, self.orch.progress
        split = self.variant.split
        if self.variant.probe:
            self.probe_socket_dir = probe_library.socket_dir_for(self.vdir.path)
        spec = self.variant.launch_spec(
            config.model_name,
            self.vdir.models.resolve(),
            self.vdir.server_log,
            monitoring_config=self._monitoring_config(),
            probe_socket_dir=self.probe_socket_dir,
        )
        self.stager.stage(1)
        self.events.append(
            Event(time.time(), 0, EventKind.STAGED, 1, self.stager.source_for(1).name)
        )
        if config.neighbour_cpus:  # contention from the load on: stopped with the samplers
            cpus = parse_cpu_list(config.neighbour_cpus)
            owner = Owner.current(self.orch.plan.run_id)
            self._thread(Neighbour(cpus, owner, config.variant_seconds_bound()))
        self.target = self.orch.plan.backend.make_target(spec, self.orch.plan.run_id)
        progress.message(f"[{self.variant.name}] starting server ({self.variant.allocator})")
        self.target.start()
        described = self.target.describe()
        self.facts.target = described
        started = described.get("pid") or described.get("container_id") or ""
        self.events.append(Event(time.time(), 0, EventKind.STARTED, None, str(started)))

        memory_log = self._log(
            self.vdir.memory_csv, MemorySample, ["t", *self.target.memory_columns(), "swap"]
        )
        memory = self._thread(
            MemorySampler(
                self.target,
                memory_log,
                self.clock,
                self.events,
                interval_s=config.memory_interval,
                # an engine's stats API takes milliseconds: then a thread of its own
                loop=self.loop if self.target.reads_memory_locally else None,
            )
        )
        self.memory = memory
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
                interval_s=config.status_interval,
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
            settle_rule=SettleRule(window_s=config.settle_window),
            load_timeout_s=config.load_timeout,
            purge_delay_s=self.variant.purge_delay_s,
            server_log=ServerLogWatcher(self.vdir.server_log, config.model_name),
        )
        driver.wait_first_version()
        self.serving = True
        if config.metrics:  # counters are cumulative: the first load is in the first scrape
            path = monitoring.prometheus_path(monitoring.given_config(self.variant.server_args))
            log = self._log(self.vdir.metrics_csv, MetricSample)
            self.metrics = self._thread(
                MetricsScraper(self.variant.rest_port, path, log, self.clock)
            )
        self._verify_allocator(self.target)
        breakdown = self._breakdown(self.target)
        if self.variant.spec.release_after_unload:
            if breakdown.probe.client is None:  # else it would be plain glibc, misnamed
                raise SoakError(
                    f"variant {self.variant.name} releases through soak's probe after each "
                    f"unload, and the probe is {breakdown.probe.summary}"
                )
            driver.after_unload = breakdown.release_call
        if breakdown.probe.client is not None:
            driver.decay = breakdown.decay_call

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
        bodies = split_body(body, split)
        call = None  # plain REST: sent from the monitor loop
        if config.protocol == "grpc" or len(bodies) > 1:
            parts = [self._predict_call(url, part, metadata) for part in bodies]
            call = parts[0] if len(parts) == 1 else SplitPredict(parts)
        prober = self._thread(
            LatencyProber(
                url,
                body,
                config.rps,
                self._log(self.vdir.latency_csv, LatencySample),
                self.clock,
                max_duration_s=config.variant_seconds_bound(),
                concurrency=config.concurrency,
                call=call,
                loop=self.loop,
            )
        )
        budget = self.orch.new_budget()
        progress.variant_started(self.variant.name, budget.planned, memory, prober)
        budget.record(0, driver.baseline() / MIB)
        breakdown.take(0, BreakdownPoint.BASELINE)
        progress.swap_done(0)
        driver.hold(config.steady_s)
        index = 0
        while (why := budget.stop_reason(index)) is None:
            index += 1
            outcome = driver.swap(index)
            breakdown.take(index, BreakdownPoint.SETTLED)
            budget.record(index, outcome.settled_bytes / MIB)
            progress.swap_done(index, outcome)
            driver.hold(config.steady_s)
        driver.event(EventKind.SWAPS_DONE, driver.serving_version, why)
        progress.message(f"[{self.variant.name}] {why}")
        self._release_experiment(driver, prober, breakdown, index)

    def _breakdown(self, target: Target) -> BreakdownSampler:
        """The probe checked (on, or off with a one-line reason) and the breakdown log."""
        probe = connect_probe(target, self.variant.allocator, self.orch.plan.probe_off)
        self.facts.probe = probe.summary
        detail = f"on: {probe.stats.allocator}" if probe.stats else probe.summary
        self.events.append(Event(time.time(), 0, EventKind.PROBE, None, detail))
        if probe.client is None:
            self.orch.progress.notice(
                f"[{self.variant.name}] attribution {probe.summary}; the run goes on without it"
            )
        return BreakdownSampler(target, self._log(self.vdir.breakdown_csv, BreakdownRow), probe)

    def _release_experiment(
        self,
        driver: SwapDriver,
        prober: LatencyProber,
        breakdown: BreakdownSampler,
        swap: int,
    ) -> None:
        """Traffic off, the allocator gives its free memory back, memory settles: what
        came back was held by the allocator, what stays is live
        (docs/contract.md#allocator-probe)."""
        if breakdown.probe.client is None:
            return
        prober.stop()
        before = breakdown.read(swap, BreakdownPoint.SETTLED)  # the progress line's only
        if driver.release(breakdown.release_call) is None:
            return
        after = breakdown.take(swap, BreakdownPoint.RELEASED)
        if before.anon_bytes is not None and after.anon_bytes is not None:
            back = (before.anon_bytes - after.anon_bytes) / MIB
            self.orch.progress.message(
                f"[{self.variant.name}] release: {back:.1f} MiB came back to the OS"
            )

    def _monitoring_config(self) -> Path | None:
        """soak's monitoring config for --metrics (none when the server flags have one)."""
        if not self.config.metrics or monitoring.given_config(self.variant.server_args):
            return None
        return monitoring.write_config(self.vdir.monitoring_config)

    def _predict_call(self, url: str, body: dict, metadata: dict | None) -> PredictCall:
        """One request (or one part of a split one) over the run's protocol."""
        if self.config.protocol == "grpc":
            signature_name, inputs = grpc_inputs(body, metadata)
            port, name = self.variant.grpc_port, self.config.model_name
            return GrpcPredict(port, name, inputs, signature_name)
        return RestPredict(url, body)

    def _verify_allocator(self, target: Target) -> None:
        ok, why = verify(self.variant.allocator, target.mapped_paths())
        self.facts.allocator_verified = ok
        self.facts.allocator_check = why
        if not ok:
            raise SoakError(f"variant {self.variant.name}: {why}")

    def _log(self, path: Path, record_type: type, names: list[str] | None = None) -> CsvLog:
        log = CsvLog(path, record_type, names)
        self.logs.append(log)
        return log

    def _thread(self, sampler: _S) -> _S:
        sampler.start()
        self.threads.append(sampler)
        return sampler

    def server_gone(self) -> bool:
        return self._exit_reason() is not None

    def _exit_reason(self) -> str | None:
        if self.target is None:
            return None
        try:
            return self.target.exit_reason()
        except Exception as exc:  # the engine itself is unreachable
            return f"state unknown ({type(exc).__name__}: {exc})"

    def failure_reason(self, error: BaseException) -> str:
        """One line: what failed. A dead server is named first, with its last memory figures."""
        if isinstance(error, (ServerDied, SoakError)):
            reason = _with_log(str(error), self.vdir)
        elif (exit_reason := self._exit_reason()) is not None:
            reason = _with_log(f"server {exit_reason}", self.vdir)
        else:
            trace = self.vdir.path / "soak-error.txt"
            trace.write_text("".join(traceback.format_exception(error)))
            reason = f"internal error: {type(error).__name__}: {error} (traceback in {trace.name})"
        last = self.memory.latest() if self.memory else None
        if last is not None and self._exit_reason() is not None:
            self.facts.last_memory = {"t": last.t, **_memory_mb(last)}
            figures = ", ".join(f"{k} {v:.1f} MiB" for k, v in _memory_mb(last).items())
            reason += f"; last memory: {figures}"
        return reason

    def close(self) -> None:
        """Stop traffic and scraping first, then the target, then the samplers; keep every row.

        The metrics scraper stops before the target, so a server going away is not
        counted as a failed scrape; the memory sampler and status poller after it, so
        they record its end.

        Forced (a second signal): the target first, at once, so nothing waits on it.
        Every step runs even if one fails; a failure is noted, never raised.
        """
        if interrupts.forced():
            self._step(self._stop_target)
        for sampler in reversed(self.threads):
            if isinstance(sampler, LatencyProber | MetricsScraper):
                self._step(sampler.stop)
        self._step(self._stop_target)
        for sampler in reversed(self.threads):
            self._step(sampler.stop)
        if self.metrics is not None:
            self.facts.metrics = self.metrics.facts()
        for log in self.logs:
            self._step(log.close)
        if not self.config.keep_models:
            self._step(self.stager.remove_all)
        self._step(self._remove_probe_sockets)

    def _remove_probe_sockets(self) -> None:
        """The sockets the server's processes listened on (their files outlive them)."""
        if self.probe_socket_dir is None:
            return
        for socket in self.probe_socket_dir.glob(probe_library.socket_glob()):
            socket.unlink(missing_ok=True)
        if self.probe_socket_dir != self.vdir.path.resolve():
            self.probe_socket_dir.rmdir()  # a short temporary dir of its own

    def _stop_target(self) -> None:
        target, self.target = self.target, None
        if target is None:
            return
        reason = target.exit_reason()
        # A server that never served has nothing to finish: no grace period (a load in
        # progress cannot be interrupted, and would hold an interrupted run for seconds).
        target.stop(graceful=self.serving)
        if reason is None:
            self.events.append(Event(time.time(), self.clock.swap, EventKind.STOPPED))

    def _step(self, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception as exc:
            note = f"cleanup step failed: {type(exc).__name__}: {exc}"
            self.facts.cleanup_errors.append(note)
            self.orch.progress.notice(f"[{self.variant.name}] {note}")


def _memory_mb(sample: MemorySample) -> dict[str, float]:
    names = ("anon_bytes", "rss_bytes", "cgroup_anon_bytes", "cgroup_working_set_bytes")
    values = {n.removesuffix("_bytes"): getattr(sample, n) for n in names}
    return {k: v / MIB for k, v in values.items() if v is not None}


def _with_log(message: str, vdir: VariantDir) -> str:
    last = vdir.last_server_log_line()
    return f"{message} (server log: {last})" if last and "server" in message else message
