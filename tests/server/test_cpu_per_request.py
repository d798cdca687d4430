"""--debug_cpu_ms_per_request: a planted CPU cost per predict request (ground truth for
soak's CPU-ms per request), seen from outside as the server process's CPU time."""

from __future__ import annotations

import numpy as np
import pytest

from soak.core.procfs import read_proc_cpu_s
from soak.samplers.latency import GrpcPredict
from soak_model_server.flags import parse_flags

MODEL = "m"
REQUESTS = 20
PLANTED_MS = 20.0
ROW = {"instances": [{"ids": 1, "feats": [1.0, 2.0, 3.0, 4.0]}]}
GRPC_INPUTS = {
    "ids": np.array([1], np.int64),
    "feats": np.array([[1.0, 2.0, 3.0, 4.0]], np.float32),
}
# What 20 requests of the tiny model cost without the flag stays well under this.
UNPLANTED_MAX_S = 0.4 * REQUESTS * PLANTED_MS / 1000


def test_flag_defaults_to_no_cost_and_takes_fractions(tmp_path):
    assert parse_flags([f"--model_base_path={tmp_path}"]).debug_cpu_ms_per_request == 0
    planted = parse_flags([f"--model_base_path={tmp_path}", "--debug_cpu_ms_per_request=2.5"])
    assert planted.debug_cpu_ms_per_request == 2.5


def _cpu_of(server, send) -> float:
    """The server's CPU seconds over REQUESTS calls of `send`."""
    before = read_proc_cpu_s(server.process.pid)
    for _ in range(REQUESTS):
        send()
    return read_proc_cpu_s(server.process.pid) - before


@pytest.mark.parametrize("planted_ms", [PLANTED_MS, 0.0])
def test_each_predict_burns_the_planted_cpu_over_rest_and_grpc(
    tmp_path, stage, server_factory, planted_ms
):
    base_path = tmp_path / "base"
    base_path.mkdir()
    stage(base_path, 1, scale=1.0)
    server = server_factory(base_path, f"--debug_cpu_ms_per_request={planted_ms:g}")
    grpc_call = GrpcPredict(server.grpc_port, MODEL, GRPC_INPUTS)
    try:
        # First requests warm up (lazy imports, the session's first run): not measured.
        assert server.predict(ROW).json() == {"predictions": [10.0]}
        assert grpc_call() == (200, None)

        def rest() -> None:
            assert server.predict(ROW).status_code == 200

        def grpc() -> None:
            assert grpc_call() == (200, None)

        rest_s, grpc_s = _cpu_of(server, rest), _cpu_of(server, grpc)
    finally:
        grpc_call.close()
    print(f"{planted_ms:g} ms/request: REST {rest_s:.3f} s, gRPC {grpc_s:.3f} s CPU")
    planted_s = REQUESTS * planted_ms / 1000
    if planted_ms:
        assert rest_s >= planted_s and grpc_s >= planted_s
    else:
        assert rest_s < UNPLANTED_MAX_S and grpc_s < UNPLANTED_MAX_S


COLD_MS = 400.0


@pytest.mark.parametrize("warmup", [True, False])
def test_the_planted_cold_start_is_paid_by_warmup_else_by_the_first_request(
    tmp_path, stage, server_factory, warmup
):
    """--debug_cold_start_ms: TensorFlow's lazy initialisation, made large and known. TF
    Serving's warmup replays its records during the load, so the first request finds the
    session warm; without warmup the first request waits (soak tune's ground truth)."""
    from soak_model_server.warmup import WarmupRequest, write_warmup_requests

    base_path = tmp_path / "base"
    base_path.mkdir()
    version = stage(base_path, 1, scale=1.0)
    write_warmup_requests(version, MODEL, [WarmupRequest("serving_default", GRPC_INPUTS)])
    server = server_factory(
        base_path, f"--debug_cold_start_ms={COLD_MS:g}", f"--enable_model_warmup={warmup}"
    )
    first = server.predict(ROW)
    second = server.predict(ROW)
    assert first.json() == second.json() == {"predictions": [10.0]}
    first_ms, second_ms = (r.elapsed.total_seconds() * 1000 for r in (first, second))
    print(f"warmup {warmup}: first {first_ms:.0f} ms, second {second_ms:.0f} ms")
    assert second_ms < COLD_MS / 2
    if warmup:
        assert first_ms < COLD_MS / 2
    else:
        assert first_ms >= COLD_MS
