"""Wires source, manager, gRPC and REST fronts together, in TF Serving's startup order.

As in `tensorflow_model_server`, the server first waits until the model's first version is
loaded (or has failed: then it exits with an error), and only then opens its ports: gRPC on
--port, then REST on --rest_api_port (with the Prometheus page when the monitoring config
enables it), both on --rest_api_bind. SIGTERM and SIGINT stop it cleanly with exit code 0.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from functools import partial
from pathlib import Path

import tensorflow as tf

from soak_model_server.flags import ServerFlags
from soak_model_server.grpc_api import start_grpc_server
from soak_model_server.loader import LoadOptions, load_servable
from soak_model_server.logs import servable_id
from soak_model_server.manager import Manager, RetryPolicy, State
from soak_model_server.rest import RestApi, RestServer
from soak_model_server.source import FileSystemSource

log = logging.getLogger(__name__)

EXIT_FAILED = 1


def run_server(flags: ServerFlags, prometheus_path: str | None = None) -> int:
    """Serve until SIGTERM/SIGINT; the process exit code. `prometheus_path`: where the REST
    port serves the metrics (from --monitoring_config_file), None for nowhere."""
    tf.get_logger().setLevel(logging.ERROR)  # TF's Python deprecation chatter, not TF Serving's
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    log.info(
        "Building single TensorFlow model file config:  model_name: %s model_base_path: %s",
        flags.model_name,
        flags.model_base_path,
    )
    options = LoadOptions(
        model_name=flags.model_name,
        tags=flags.tags,
        intra_op_threads=flags.intra_op_threads,
        inter_op_threads=flags.inter_op_threads,
        enable_warmup=flags.enable_model_warmup,
        warmup_iterations=flags.num_request_iterations_for_warmup,
        run_timeout_ms=flags.rest_api_timeout_in_ms,
        retain_mb_per_load=flags.debug_retain_mb_per_load,
        cold_start_ms=flags.debug_cold_start_ms,
    )
    manager = Manager(
        flags.model_name,
        partial(load_servable, options=options),
        flags.num_load_threads,
        flags.num_unload_threads,
        RetryPolicy(flags.max_num_load_retries, flags.load_retry_interval_micros / 1e6),
    )
    source = FileSystemSource(
        flags.model_name,
        Path(flags.model_base_path),
        flags.file_system_poll_wait_seconds,
        manager.set_aspired_versions,
    )
    manager.start()
    source.start()

    first = manager.wait_for_first_version(stop)
    if first is not None and first.state is not State.AVAILABLE:
        log.error(
            "Failed to start server. Error: UNKNOWN: 1 servable(s) did not become available: "
            "{{%s due to error: %s: %s}, }",
            servable_id(flags.model_name, first.version),
            first.error_code,
            first.error_message,
        )
        return EXIT_FAILED

    rest_server = None
    grpc_server = None
    if first is not None:
        try:
            grpc_server = start_grpc_server(
                manager,
                flags.rest_api_bind,
                flags.port,
                flags.grpc_max_threads,
                flags.debug_cpu_ms_per_request,
            )
        except OSError as error:
            log.error("Failed to start server. Error: UNKNOWN: %s", error)
            return EXIT_FAILED
        log.info("Running gRPC ModelServer at %s:%d ...", flags.rest_api_bind, flags.port)
        if flags.rest_api_port:
            try:
                rest_server = RestServer(
                    flags.rest_api_bind,
                    flags.rest_api_port,
                    RestApi(manager, prometheus_path, flags.debug_cpu_ms_per_request),
                    flags.rest_api_num_threads,
                )
            except OSError as error:
                log.error(
                    "Failed to start HTTP Server at %s:%d: %s",
                    flags.rest_api_bind,
                    flags.rest_api_port,
                    error.strerror or error,
                )
                grpc_server.stop(None)
                return EXIT_FAILED
            threading.Thread(
                target=rest_server.serve_forever, name="httprestserver", daemon=True
            ).start()
            log.info("Exporting HTTP/REST API at:localhost:%d ...", flags.rest_api_port)
        while not stop.wait(0.5):
            pass

    log.info("Shutting down the server")
    if rest_server is not None:
        rest_server.shutdown()
        rest_server.server_close()
    if grpc_server is not None:
        grpc_server.stop(grace=2).wait(5)
    source.stop()
    manager.stop(timeout=5)
    log.info("Server stopped")
    sys.stderr.flush()
    return 0
