"""Loads and unloads versions like TF Serving's AspiredVersionsManager.

The source tells the manager which versions are aspired; a loop thread applies
TF Serving's AvailabilityPreservingPolicy one action at a time: unload a no-longer-aspired
version only once an aspired one is available, else load the newest new aspired version.
Loads and unloads run in the loop thread itself (`--num_load_threads=0`,
`--num_unload_threads=0`, TF Serving's default) or in thread pools of the given size.

A version that fails to load stays in the manager in error (state END with its error) for as
long as the source keeps aspiring it, so it is not retried every poll; the old version keeps
serving meanwhile. The state monitor (what the REST status API reports) remembers every
version ever seen, including those that ended.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum, StrEnum
from pathlib import Path

from soak_model_server import status
from soak_model_server.logs import servable_id
from soak_model_server.servable import Servable, serving_error_from
from soak_model_server.status import ServingError

log = logging.getLogger(__name__)

LOAD_POOL_NAME = "BasicManager_Load_ThreadPool"
UNLOAD_POOL_NAME = "BasicManager_Unload_ThreadPool"
_TICK_SECONDS = 0.1  # TF Serving's manage_state_interval_micros default


class State(StrEnum):
    """ModelVersionStatus.State of TF Serving's status API."""

    START = "START"
    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    UNLOADING = "UNLOADING"
    END = "END"


@dataclass(frozen=True)
class VersionStatus:
    version: int
    state: State
    error_code: str = status.OK
    error_message: str = ""


class _Phase(Enum):
    """LoaderHarness states, reduced to the ones the policy looks at."""

    NEW = "new"
    LOADING = "loading"
    READY = "ready"
    UNLOADING = "unloading"
    DISABLED = "disabled"
    ERROR = "error"


@dataclass
class _Harness:
    version: int
    path: Path
    aspired: bool = True
    phase: _Phase = _Phase.NEW
    servable: Servable | None = None


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int
    interval_seconds: float


class Manager:
    """Versions of one model: harnesses, the serving map and the state monitor."""

    def __init__(
        self,
        model_name: str,
        load: Callable[[int, Path], Servable],
        num_load_threads: int,
        num_unload_threads: int,
        retry: RetryPolicy,
    ) -> None:
        self.model_name = model_name
        self._load_fn = load
        self._retry = retry
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # notified on every status change
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._pending_aspired: dict[int, Path] | None = None
        self._harnesses: dict[int, _Harness] = {}
        self._serving: dict[int, Servable] = {}
        self._monitor: dict[int, VersionStatus] = {}
        self._load_pool = _pool(LOAD_POOL_NAME, num_load_threads)
        self._unload_pool = _pool(UNLOAD_POOL_NAME, num_unload_threads)
        self._thread = threading.Thread(
            target=self._loop, name="AspiredVersionsManager", daemon=True
        )
        for kind, pool, flag, threads in (
            ("loads", self._load_pool, "num_load_threads", num_load_threads),
            ("unloads", self._unload_pool, "num_unload_threads", num_unload_threads),
        ):
            if pool is None:
                log.info("Servable %s run serially in the manager thread (--%s=0)", kind, flag)
            else:
                name = LOAD_POOL_NAME if kind == "loads" else UNLOAD_POOL_NAME
                log.info("Servable %s run in thread pool %s with %d threads", kind, name, threads)

    # --- called by the source and the server -----------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop deciding; wait up to `timeout` s for the loop (a load cannot be interrupted)."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)
        for pool in (self._load_pool, self._unload_pool):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    def set_aspired_versions(self, versions: dict[int, Path]) -> None:
        """The source's latest view: the versions that should be served (version -> dir)."""
        with self._lock:
            self._pending_aspired = dict(versions)
        self._wake.set()

    def wait_for_first_version(self, stop: threading.Event) -> VersionStatus | None:
        """Block until a version is AVAILABLE, or every aspired version failed (returned, in
        END with its error), or `stop` is set (None). TF Serving starts serving only then."""
        with self._changed:
            while not stop.is_set():
                available = [s for s in self._monitor.values() if s.state is State.AVAILABLE]
                if available:
                    return available[0]
                in_progress = any(
                    h.phase in (_Phase.NEW, _Phase.LOADING) for h in self._harnesses.values()
                )
                failed = [s for s in self._monitor.values() if s.error_code != status.OK]
                if failed and not in_progress and self._pending_aspired is None:
                    return failed[0]
                self._changed.wait(0.2)
        return None

    # --- called by request handlers --------------------------------------------------------

    @contextmanager
    def lease(
        self, model_name: str, version: int | None, label: str | None = None
    ) -> Iterator[Servable]:
        """The servable for a request (newest available if `version` is None), held until the
        block ends so an unload waits for it. NOT_FOUND as TF Serving words it. There are no
        version labels (no model config file), so any label is unrecognized, as in TF
        Serving's ServerCore::GetModelVersionForLabel."""
        if not model_name:
            raise ServingError(status.INVALID_ARGUMENT, "ModelSpec has no name specified.")
        if label is not None:
            raise ServingError(
                status.INVALID_ARGUMENT, f"Unrecognized servable version label: {label}"
            )
        with self._lock:
            servable = None
            if model_name == self.model_name and self._serving:
                key = max(self._serving) if version is None else version
                servable = self._serving.get(key)
            if servable is None:
                request = (
                    f"Latest({model_name})"
                    if version is None
                    else f"Specific({model_name}, {version})"
                )
                raise ServingError(status.NOT_FOUND, f"Servable not found for request: {request}")
            servable.acquire()
        try:
            yield servable
        finally:
            servable.release()

    def version_statuses(self, model_name: str, version: int | None) -> list[VersionStatus]:
        """The state monitor's view, newest version first; NOT_FOUND as TF Serving words it."""
        with self._lock:
            known = self._monitor if model_name == self.model_name else {}
            if version is None:
                if not known:
                    raise ServingError(
                        status.NOT_FOUND, f"Could not find any versions of model {model_name}"
                    )
                return [known[v] for v in sorted(known, reverse=True)]
            if version not in known:
                raise ServingError(
                    status.NOT_FOUND, f"Could not find version {version} of model {model_name}"
                )
            return [known[version]]

    # --- the loop --------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(_TICK_SECONDS)
            self._wake.clear()
            if self._stopping.is_set():
                return
            with self._lock:
                self._apply_aspired()
                action = self._next_action()
                self._forget_finished()
            if action is not None:
                kind, harness = action
                if kind == "load":
                    self._dispatch(self._load_pool, self._load, harness)
                else:
                    self._dispatch(self._unload_pool, self._unload, harness)

    def _dispatch(self, pool: ThreadPoolExecutor | None, work, harness: _Harness) -> None:
        if pool is None:
            work(harness)
        else:
            pool.submit(work, harness)

    def _apply_aspired(self) -> None:
        aspired = self._pending_aspired
        if aspired is None:
            return
        self._pending_aspired = None
        for version, harness in list(self._harnesses.items()):
            if version in aspired:
                continue
            harness.aspired = False
            if harness.phase is _Phase.NEW:  # never started loading: just drop it
                del self._harnesses[version]
                self._publish(version, State.END)
        for version, path in aspired.items():
            known = self._harnesses.get(version)
            if known is None:
                self._harnesses[version] = _Harness(version, path)
                self._publish(version, State.START)
            elif known.phase in (_Phase.NEW, _Phase.LOADING, _Phase.READY):
                known.aspired = True
            # A version being unloaded, unloaded or in error is re-added by a later poll,
            # once it has left the manager.

    def _next_action(self) -> tuple[str, _Harness] | None:
        """AvailabilityPreservingPolicy::GetNextAction; marks the chosen harness busy."""
        harnesses = list(self._harnesses.values())
        has_aspired = any(h.aspired for h in harnesses)
        has_aspired_serving = any(h.aspired and h.phase is _Phase.READY for h in harnesses)
        unaspired_serving = [h for h in harnesses if not h.aspired and h.phase is _Phase.READY]
        if unaspired_serving and (
            not has_aspired or has_aspired_serving or len(unaspired_serving) > 1
        ):
            harness = min(unaspired_serving, key=lambda h: h.version)
            harness.phase = _Phase.UNLOADING
            del self._serving[harness.version]  # no new requests; running ones finish
            self._publish(harness.version, State.UNLOADING)
            return "unload", harness
        new_aspired = [h for h in harnesses if h.aspired and h.phase is _Phase.NEW]
        if new_aspired:
            harness = max(new_aspired, key=lambda h: h.version)
            harness.phase = _Phase.LOADING
            log.info("Approving load for servable version %s", self._id(harness))
            self._publish(harness.version, State.LOADING)
            return "load", harness
        return None

    def _forget_finished(self) -> None:
        for version, harness in list(self._harnesses.items()):
            if harness.phase is _Phase.DISABLED or (
                harness.phase is _Phase.ERROR and not harness.aspired
            ):
                del self._harnesses[version]

    # --- load and unload (loop thread or pools) --------------------------------------------

    def _load(self, harness: _Harness) -> None:
        sid = self._id(harness)
        log.info("Loading servable version %s", sid)
        error: ServingError | None = None
        for attempt in range(self._retry.max_retries + 1):
            if attempt:
                log.info("Retrying of Loading servable: %s retry: %d", sid, attempt)
            try:
                servable = self._load_fn(harness.version, harness.path)
            except Exception as exc:
                error = serving_error_from(exc)
                log.error("Loading servable: %s failed: %s", sid, error)
            else:
                self._loaded(harness, servable)
                return
            if attempt == self._retry.max_retries or not harness.aspired:
                break
            if self._stopping.wait(self._retry.interval_seconds):
                break
        log.error("Encountered an error for servable version %s: %s", sid, error)
        with self._lock:
            harness.phase = _Phase.ERROR
            self._publish(harness.version, State.END, error)
        self._wake.set()

    def _loaded(self, harness: _Harness, servable: Servable) -> None:
        with self._lock:
            harness.servable = servable
            harness.phase = _Phase.READY
            self._serving[harness.version] = servable
            self._publish(harness.version, State.AVAILABLE)
        log.info("Successfully loaded servable version %s", self._id(harness))
        self._wake.set()

    def _unload(self, harness: _Harness) -> None:
        sid = self._id(harness)
        log.info("Unloading servable version %s", sid)
        servable, harness.servable = harness.servable, None
        if servable is not None:
            servable.close()
        del servable
        with self._lock:
            harness.phase = _Phase.DISABLED
            self._publish(harness.version, State.END)
        log.info("Done unloading servable version %s", sid)
        self._wake.set()

    # --- helpers ---------------------------------------------------------------------------

    def _publish(self, version: int, state: State, error: ServingError | None = None) -> None:
        """Record a state change in the monitor (caller holds the lock)."""
        if error is None:
            self._monitor[version] = VersionStatus(version, state)
        else:
            self._monitor[version] = VersionStatus(version, state, error.code, error.message)
        self._changed.notify_all()

    def _id(self, harness: _Harness) -> str:
        return servable_id(self.model_name, harness.version)


def _pool(name: str, threads: int) -> ThreadPoolExecutor | None:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name) if threads else None
