"""Command-line flags, spelled and defaulted as `tensorflow_model_server` spells them.

Only flags whose behaviour the stand-in implements are accepted; any other flag is an
error (TF Serving rejects unknown flags too), so a flag that would silently do nothing
never slips into a soak run. Three flags exist only in the stand-in: `--rest_api_bind` (the
address both the gRPC and the REST ports listen on; TF Serving listens on all addresses),
`--debug_retain_mb_per_load` (a planted leak) and `--debug_cpu_ms_per_request` (a planted
CPU cost per predict request): the last two are ground truth for tests.

Load retries default as in TF Serving (`--max_num_load_retries=5`,
`--load_retry_interval_micros` one minute): a broken version stays LOADING for about five
minutes before it ends in error; pass `--max_num_load_retries=0` to fail at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

PROG = "soak-model-server"


class FlagError(Exception):
    """A bad command line: one line for the user, exit code 2."""


@dataclass(frozen=True)
class ServerFlags:
    port: int
    rest_api_port: int
    rest_api_bind: str
    rest_api_num_threads: int
    rest_api_timeout_in_ms: int
    grpc_max_threads: int
    monitoring_config_file: str
    model_name: str
    model_base_path: str
    file_system_poll_wait_seconds: int
    num_load_threads: int
    num_unload_threads: int
    max_num_load_retries: int
    load_retry_interval_micros: int
    enable_model_warmup: bool
    num_request_iterations_for_warmup: int
    tensorflow_session_parallelism: int
    tensorflow_intra_op_parallelism: int
    tensorflow_inter_op_parallelism: int
    saved_model_tags: str
    debug_retain_mb_per_load: float
    debug_cpu_ms_per_request: float
    debug_cold_start_ms: float

    @property
    def intra_op_threads(self) -> int:
        """Threads for the session's intra-op pool (0: TensorFlow chooses)."""
        return self.tensorflow_intra_op_parallelism or self.tensorflow_session_parallelism

    @property
    def inter_op_threads(self) -> int:
        """Threads for the session's inter-op pool (0: TensorFlow chooses)."""
        return self.tensorflow_inter_op_parallelism or self.tensorflow_session_parallelism

    @property
    def tags(self) -> list[str]:
        return [tag for tag in self.saved_model_tags.split(",") if tag]


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


class _OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, raised rather than printed."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise FlagError(message)


def _parser() -> argparse.ArgumentParser:
    cpus = len(os.sched_getaffinity(0))
    parser = _OneLineParser(prog=PROG, allow_abbrev=False, add_help=True)
    add = parser.add_argument
    add("--port", type=int, default=8500, help="gRPC port")
    add("--rest_api_port", type=int, default=0, help="REST port; 0 disables REST as in TF Serving")
    add("--rest_api_bind", default="127.0.0.1", help="gRPC and REST bind address (stand-in only)")
    add("--rest_api_num_threads", type=int, default=4 * cpus)
    add("--rest_api_timeout_in_ms", type=int, default=30000)
    add("--grpc_max_threads", type=int, default=4 * cpus)
    add("--monitoring_config_file", default="", help="text MonitoringConfig (Prometheus)")
    add("--model_name", default="default")
    add("--model_base_path", default="")
    add("--file_system_poll_wait_seconds", type=int, default=1)
    add("--num_load_threads", type=int, default=0)
    add("--num_unload_threads", type=int, default=0)
    add("--max_num_load_retries", type=int, default=5)
    add("--load_retry_interval_micros", type=int, default=60 * 1000 * 1000)
    add("--enable_model_warmup", type=_bool, nargs="?", const=True, default=True)
    add("--num_request_iterations_for_warmup", type=int, default=1)
    add("--tensorflow_session_parallelism", type=int, default=0)
    add("--tensorflow_intra_op_parallelism", type=int, default=0)
    add("--tensorflow_inter_op_parallelism", type=int, default=0)
    add("--saved_model_tags", default="serve")
    add(
        "--debug_retain_mb_per_load",
        type=float,
        default=0.0,
        help="planted leak: MiB of heap kept per load, may be fractional (stand-in only)",
    )
    add(
        "--debug_cpu_ms_per_request",
        type=float,
        default=0.0,
        help="planted CPU cost for tests: ms of the handling thread's CPU burnt per predict "
        "request, REST and gRPC (stand-in only)",
    )
    add(
        "--debug_cold_start_ms",
        type=float,
        default=0.0,
        help="planted cold path for tests: the first run of each loaded version's session "
        "waits this many ms, as TensorFlow's lazy initialisation does; warmup pays it during "
        "the load, else the first request does (stand-in only)",
    )
    return parser


_NON_NEGATIVE = (
    "port",
    "rest_api_port",
    "rest_api_timeout_in_ms",
    "num_load_threads",
    "num_unload_threads",
    "max_num_load_retries",
    "load_retry_interval_micros",
    "num_request_iterations_for_warmup",
    "tensorflow_session_parallelism",
    "tensorflow_intra_op_parallelism",
    "tensorflow_inter_op_parallelism",
    "debug_retain_mb_per_load",
    "debug_cpu_ms_per_request",
    "debug_cold_start_ms",
)


def parse_flags(argv: list[str]) -> ServerFlags:
    """Parse and validate `argv` (without the program name); FlagError on any problem."""
    namespace = _parser().parse_args(argv)
    flags = ServerFlags(**vars(namespace))
    for name in _NON_NEGATIVE:
        if getattr(flags, name) < 0:
            raise FlagError(f"--{name} must be >= 0, got {getattr(flags, name)}")
    for name in ("port", "rest_api_port"):
        if getattr(flags, name) > 65535:
            raise FlagError(f"--{name} must be a TCP port, got {getattr(flags, name)}")
    if flags.port == 0:
        # TF Serving: "At least one of server_options.grpc_port or
        # server_options.grpc_socket_path must be set." (no socket path here)
        raise FlagError("--port must be set: the gRPC port is required")
    if flags.grpc_max_threads < 1:
        raise FlagError(f"--grpc_max_threads must be >= 1, got {flags.grpc_max_threads}")
    if flags.monitoring_config_file and not os.path.isfile(flags.monitoring_config_file):
        raise FlagError(f"--monitoring_config_file {flags.monitoring_config_file}: no such file")
    if flags.rest_api_num_threads < 1:
        raise FlagError(f"--rest_api_num_threads must be >= 1, got {flags.rest_api_num_threads}")
    if flags.tensorflow_session_parallelism and (
        flags.tensorflow_intra_op_parallelism or flags.tensorflow_inter_op_parallelism
    ):
        raise FlagError(
            "set either --tensorflow_session_parallelism or "
            "--tensorflow_intra_op_parallelism/--tensorflow_inter_op_parallelism, not both"
        )
    if not flags.tags:
        raise FlagError("--saved_model_tags must name at least one tag")
    if not flags.model_base_path:
        raise FlagError("--model_base_path is required")
    if not os.path.isdir(flags.model_base_path):
        raise FlagError(f"--model_base_path {flags.model_base_path}: no such directory")
    if flags.rest_api_port and flags.rest_api_port == flags.port:
        raise FlagError("--rest_api_port cannot be the same as --port")
    return flags


def parse_flags_or_exit(argv: list[str]) -> ServerFlags:
    """parse_flags for the console script: a one-line error on stderr and exit 2."""
    try:
        return parse_flags(argv)
    except FlagError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
