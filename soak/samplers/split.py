"""--split N: each predict request sent as N parallel sub-requests, as the seed's client did.

The seed split a request of 700 items into 4 requests of about 200 and waited for all of
them: the server sees smaller batches in parallel, the caller the latency of the slowest.
`split_body` cuts the request's batch (REST `instances`, or each columnar input's first
dimension, which gRPC sends as the batch dimension) into about equal parts; `SplitPredict`
is a `PredictCall` that sends the parts at once and answers when the last one has, so the
prober records one latency row per whole request, timed from when it was due.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from soak.samplers.latency import PredictCall

# Requests in flight at once, at most (LatencyProber's default max_in_flight): the pool
# grows to (parts - 1) threads per request in flight only when that many are in flight.
MAX_IN_FLIGHT = 64


def split_body(body: dict[str, Any], parts: int) -> list[dict[str, Any]]:
    """The body as `parts` bodies of about equal batches (fewer when the batch is smaller).

    Row format: `instances` split. Columnar: every input's first dimension split alike
    (all inputs share the batch). A body whose batch cannot be told (scalar inputs) is
    not split.
    """
    if "instances" in body:
        size = len(body["instances"])
        return [{**body, "instances": body["instances"][a:b]} for a, b in _bounds(size, parts)]
    inputs = body.get("inputs")
    if isinstance(inputs, list):
        return [{**body, "inputs": inputs[a:b]} for a, b in _bounds(len(inputs), parts)]
    if isinstance(inputs, dict) and inputs and all(isinstance(v, list) for v in inputs.values()):
        sizes = {len(v) for v in inputs.values()}
        if len(sizes) == 1:
            return [
                {**body, "inputs": {k: v[a:b] for k, v in inputs.items()}}
                for a, b in _bounds(sizes.pop(), parts)
            ]
    return [body]


def _bounds(size: int, parts: int) -> list[tuple[int, int]]:
    """[start, end) of `parts` (at most `size`) about equal slices of range(size)."""
    n = max(1, min(parts, size))
    return [(i * size // n, (i + 1) * size // n) for i in range(n)]


class SplitPredict:
    """Sends its part-calls in parallel (the first in the caller's thread); one answer.

    The answer is (200, None) when every part got 200, else the first failed part's
    status and error, in part order.
    """

    def __init__(self, parts: Sequence[PredictCall]):
        if len(parts) < 2:
            raise ValueError("a split request has two or more parts")
        self.parts = tuple(parts)
        self.protocol = parts[0].protocol
        self.url = f"{parts[0].url} (split in {len(parts)})"
        self._pool = ThreadPoolExecutor(
            (len(parts) - 1) * MAX_IN_FLIGHT, thread_name_prefix="soak-split"
        )

    def __call__(self) -> tuple[int, str | None]:
        others = [self._pool.submit(part) for part in self.parts[1:]]
        answers = [self.parts[0](), *(future.result() for future in others)]
        for i, (status, error) in enumerate(answers, 1):
            if status != 200:
                return status, f"part {i}/{len(answers)}: {error}"
        return 200, None

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for part in self.parts:
            part.close()
