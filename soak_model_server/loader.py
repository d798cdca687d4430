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

from soak_model_server import status
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
    retain_mb_per_load: int


def load_servable(version: int, path: Path, options: LoadOptions) -> Servable:
    """Load one version; raise ServingError (TF Serving's code and message) on failure."""
    started = time.monotonic()
    graph = tf.Graph()
    config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=options.intra_op_threads,
        inter_op_parallelism_threads=options.inter_op_threads,
    )
    session = tf.compat.v1.Session(graph=graph, config=config)
    try:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, options.tags, str(path))
        servable = Servable(
            options.model_name, version, path, graph, session, meta_graph, options.run_timeout_ms
        )
        log.info(
            "SavedModel load for tags { %s }; Status: success: OK. Took %d microseconds.",
            " ".join(options.tags),
            int((time.monotonic() - started) * 1e6),
        )
        if options.enable_warmup:
            run_warmup(servable, options.warmup_iterations)
    except Exception as exc:
        session.close()
        raise serving_error_from(exc) from None
    if options.retain_mb_per_load:
        retain_heap(options.retain_mb_per_load)
    return servable


def run_warmup(servable: Servable, iterations: int) -> None:
    """Replay the version's warmup records, each `iterations` times (TF Serving's warmup)."""
    warmup_path = servable.path / WARMUP_FILE
    if not warmup_path.is_file():
        log.info("No warmup data file found at %s", warmup_path)
        return
    log.info("Starting to read warmup data for model at %s with model-warmup-options ", warmup_path)
    started = time.monotonic()
    try:
        requests = read_warmup_requests(servable.path)
    except ValueError as error:
        code = status.DATA_LOSS if "not a valid TFRecord" in str(error) else status.INVALID_ARGUMENT
        raise ServingError(code, str(error)) from None
    for request in requests:
        for _ in range(max(1, iterations)):  # TF Serving: a value <= 0 means the default, 1
            servable.run(request.signature_name, request.inputs)
    log.info(
        "Finished reading warmup data for model at %s. Number of warmup records read: %d. "
        "Elapsed time (microseconds): %d.",
        warmup_path,
        len(requests),
        int((time.monotonic() - started) * 1e6),
    )


def retain_heap(mib: int) -> None:
    """Keep `mib` MiB of malloc'ed, written heap forever (--debug_retain_mb_per_load)."""
    _RETAINED.append(np.ones(mib * 2**20, dtype=np.uint8))  # ones: every page is written
    log.info(
        "Retaining %d MiB of heap per load (--debug_retain_mb_per_load); %d MiB retained so far",
        mib,
        sum(block.nbytes for block in _RETAINED) // 2**20,
    )
