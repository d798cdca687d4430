"""Console script `soak-model-server`: a TF Serving-compatible server (the stand-in).

Flags and the monitoring config are checked and the gRPC and REST ports probed before
TensorFlow is imported, so usage errors come back in milliseconds. TF_ENABLE_ONEDNN_OPTS=0 is
set before the import (unless the environment sets it), so tensors are allocated with plain
malloc as in a stock TF Serving build: with oneDNN on, TensorFlow keeps its own pool and the
process allocator hardly matters.
"""

from __future__ import annotations

import gc
import os
import socket
import sys

from soak_model_server.flags import PROG, parse_flags_or_exit
from soak_model_server.logs import setup_logging

EXIT_FAILED = 1


def _check_port_free(host: str, port: int, what: str) -> None:
    """Exit with one line if a port cannot be bound (before the slow TF import)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((host, port))
    except OSError as error:
        print(
            f"{PROG}: error: cannot listen on {what} port {host}:{port}: {error.strerror or error}",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(EXIT_FAILED) from None
    finally:
        probe.close()


def main(argv: list[str] | None = None) -> None:
    flags = parse_flags_or_exit(sys.argv[1:] if argv is None else argv)
    _check_port_free(flags.rest_api_bind, flags.port, "gRPC")
    prometheus_path = None
    if flags.rest_api_port:
        _check_port_free(flags.rest_api_bind, flags.rest_api_port, "REST")
        if flags.monitoring_config_file:
            from soak_model_server.metrics import prometheus_path_from_config

            try:
                prometheus_path = prometheus_path_from_config(flags.monitoring_config_file)
            except ValueError as error:
                print(
                    f"Failed to start server. Error: INVALID_ARGUMENT: {error}",
                    file=sys.stderr,
                    flush=True,
                )
                raise SystemExit(EXIT_FAILED) from None
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    setup_logging()

    from soak_model_server.server import run_server  # imports TensorFlow

    # TensorFlow's import leaves ~340 000 objects to the cycle collector: a full collection
    # (each unload makes one, and Python's own come at random) then held the GIL, and so every
    # request, for ~260 ms. Frozen, they are never walked again: an unload's takes ~3 ms,
    # as TF Serving's C++ unload stalls no request.
    gc.freeze()
    code = run_server(flags, prometheus_path)
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: TensorFlow's threads and a load still running in a pool can
    # make a normal exit hang or crash; everything worth keeping is flushed already.
    os._exit(code)


if __name__ == "__main__":
    main()
