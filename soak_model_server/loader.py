"""SavedModel -> Servable, the way TF Serving's SavedModelBundle loader does it.

A new tf.Graph and Session per version (ConfigProto with the intra/inter-op flags), the
SavedModel's graph imported under the `serve` tag, the restore op and the init op run
(`tf.compat.v1.saved_model.loader.load`), then the warmup requests replayed. Tensors are
allocated by TensorFlow's CPU allocator, i.e. by malloc when oneDNN is off, so the process's
allocator sees exactly what it would see in `tensorflow_model_server`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.python.saved_model import loader_impl

from soak_model_server import inference, metrics, status
from soak_model_server.servable import Servable, serving_error_from
from soak_model_server.status import ServingError
from soak_model_server.warmup import WARMUP_FILE, read_warmup_requests

log = logging.getLogger(__name__)

# The planted leak of --debug_retain_mb_per_load: touched heap that is never freed.
_RETAINED: list[np.ndarray] = []


@dataclass(frozen=True)
class LoadOptions:
    model_name: str
    tags: list[str]
    intra_op_threads: int
    inter_op_threads: int
    enable_warmup: bool
    warmup_iterations: int
    run_timeout_ms: int
    retain_mb_per_load: float
    cold_start_ms: float = 0.0  # --debug_cold_start_ms


def load_servable(version: int, path: Path, options: LoadOptions) -> Servable:
    """Load one version; raise ServingError (TF Serving's code and message) on failure."""
    started = time.monotonic()
    model_path = str(path)
    graph = tf.Graph()
    config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=options.intra_op_threads,
        inter_op_parallelism_threads=options.inter_op_threads,
    )
    session = tf.compat.v1.Session(graph=graph, config=config)
    try:
        try:
            meta_graph = _load_saved_model(session, options.tags, model_path)
        except Exception:
            _log_load(options.tags, "fail", model_path, started)
            raise
        _log_load(options.tags, "success", model_path, started)
        servable = Servable(
            options.model_name,
            version,
            path,
            graph,
            session,
            meta_graph,
            options.run_timeout_ms,
            options.cold_start_ms,
        )
        if options.enable_warmup:
            run_warmup(servable, options.warmup_iterations)
    except Exception as exc:
        session.close()
        raise serving_error_from(exc) from None
    if options.retain_mb_per_load:
        retain_heap(options.retain_mb_per_load)
    return servable


def _load_saved_model(session: tf.compat.v1.Session, tags: list[str], export_dir: str):
    """tf.compat.v1.saved_model.loader.load, stage by stage for load_latency_by_stage: the
    graph import and variable restore ("restore_graph"), then the init op ("init_graph")."""
    loader = loader_impl.SavedModelLoader(export_dir)
    restore_started = time.monotonic()
    with session.graph.as_default():
        saver, _ = loader.load_graph(session.graph, tags)
        loader.restore_variables(session, saver)
        restore_micros = metrics.micros_since(restore_started)
        init_started = time.monotonic()
        loader.run_init_ops(session, tags)
    metrics.load_latency_by_stage.labels(export_dir, "restore_graph").observe(restore_micros)
    metrics.load_latency_by_stage.labels(export_dir, "init_graph").observe(
        metrics.micros_since(init_started)
    )
    return loader.get_meta_graph_def_from_tags(tags)


def _log_load(tags: list[str], outcome: str, model_path: str, started: float) -> None:
    """LoadSavedModel's log line and counters (tensorflow/cc/saved_model/loader.cc)."""
    micros = metrics.micros_since(started)
    if outcome == "success":
        log.info(
            "SavedModel load for tags { %s }; Status: success: OK. Took %d microseconds.",
            " ".join(tags),
            micros,
        )
    metrics.load_attempt_count.labels(model_path, outcome).inc()
    metrics.load_latency.labels(model_path).inc(micros)


def run_warmup(servable: Servable, iterations: int) -> None:
    """Replay the version's warmup records, each `iterations` times (TF Serving's warmup)."""
    warmup_path = servable.path / WARMUP_FILE
    if not warmup_path.is_file():
        log.info("No warmup data file found at %s", warmup_path)
        return
    log.info("Starting to read warmup data for model at %s with model-warmup-options ", warmup_path)
    started = time.monotonic()
    model_path = str(servable.path)
    records = 0
    outcome = "OK"
    try:
        try:
            requests = read_warmup_requests(servable.path)
        except ValueError as error:
            corrupt = "not a valid TFRecord" in str(error)
            code = status.DATA_LOSS if corrupt else status.INVALID_ARGUMENT
            raise ServingError(code, str(error)) from None
        for request in requests:
            records += 1
            for _ in range(max(1, iterations)):  # TF Serving: a value <= 0 means the default
                inference.predict(servable, servable.name, request.signature_name, request.inputs)
    except ServingError as error:
        outcome = str(error)  # Status::ToString(): "INVALID_ARGUMENT: ..."
        raise
    finally:
        metrics.warmup_latency.labels(model_path, outcome).observe(metrics.micros_since(started))
        metrics.warmup_records_read.labels(model_path, outcome).inc(records)
    log.info(
        "Finished reading warmup data for model at %s. Number of warmup records read: %d. "
        "Elapsed time (microseconds): %d.",
        warmup_path,
        len(requests),
        int((time.monotonic() - started) * 1e6),
    )


def retain_heap(mib: float) -> None:
    """Keep `mib` MiB of malloc'ed, written heap forever (--debug_retain_mb_per_load)."""
    _RETAINED.append(np.ones(int(mib * 2**20), dtype=np.uint8))  # ones: every page is written
    log.info(
        "Retaining %g MiB of heap per load (--debug_retain_mb_per_load); %.1f MiB retained so far",
        mib,
        sum(block.nbytes for block in _RETAINED) / 2**20,
    )
