"""--split: cutting a request's batch into parts, and one answer from parallel parts."""

from __future__ import annotations

import threading
import time

import pytest

from soak.samplers.split import SplitPredict, split_body


def test_the_seeds_700_items_go_as_4_parts_of_175():
    body = {"signature_name": "serving_default", "instances": [{"i": i} for i in range(700)]}
    parts = split_body(body, 4)
    assert [len(p["instances"]) for p in parts] == [175] * 4
    assert [row for p in parts for row in p["instances"]] == body["instances"]
    assert all(p["signature_name"] == "serving_default" for p in parts)


def test_uneven_and_small_batches():
    rows = list(range(10))
    assert [len(p["instances"]) for p in split_body({"instances": rows}, 4)] == [2, 3, 2, 3]
    assert [p["instances"] for p in split_body({"instances": [1, 2]}, 4)] == [[1], [2]]
    assert split_body({"instances": rows}, 1) == [{"instances": rows}]


def test_columnar_inputs_split_along_the_batch_dim():
    body = {"inputs": {"user": [1, 2, 3, 4], "items": [[1], [2], [3], [4]]}}
    assert split_body(body, 2) == [
        {"inputs": {"user": [1, 2], "items": [[1], [2]]}},
        {"inputs": {"user": [3, 4], "items": [[3], [4]]}},
    ]
    assert split_body({"inputs": [[1.0], [2.0]]}, 2) == [{"inputs": [[1.0]]}, {"inputs": [[2.0]]}]
    # a batch that cannot be told: one part
    scalars = {"inputs": {"a": 1.0, "b": [1, 2]}}
    assert split_body(scalars, 2) == [scalars]
    ragged = {"inputs": {"a": [1, 2], "b": [1, 2, 3]}}
    assert split_body(ragged, 2) == [ragged]


class Part:
    """A part-call that takes `delay_s` and answers `status`; records its thread."""

    protocol = "rest"

    def __init__(self, status: int = 200, delay_s: float = 0.2, url: str = "http://x/p"):
        self.status, self.delay_s, self.url = status, delay_s, url
        self.threads: list[str] = []
        self.closed = False

    def __call__(self) -> tuple[int, str | None]:
        self.threads.append(threading.current_thread().name)
        time.sleep(self.delay_s)
        return self.status, None if self.status == 200 else f"HTTP {self.status}"

    def close(self) -> None:
        self.closed = True


def test_parts_go_in_parallel_and_the_answer_waits_for_the_last():
    parts = [Part(delay_s=0.3) for _ in range(4)]
    call = SplitPredict(parts)
    start = time.monotonic()
    assert call() == (200, None)
    elapsed = time.monotonic() - start
    assert 0.3 <= elapsed < 0.55  # in parallel: about one part's time, not four
    assert parts[0].threads == [threading.current_thread().name]  # the first in the caller
    assert all(p.threads[0].startswith("soak-split") for p in parts[1:])
    assert call.url == "http://x/p (split in 4)" and call.protocol == "rest"
    call.close()
    assert all(p.closed for p in parts)


def test_the_first_failed_part_is_the_answer():
    call = SplitPredict([Part(200, 0.0), Part(503, 0.0), Part(400, 0.0)])
    assert call() == (503, "part 2/3: HTTP 503")
    call.close()
    with pytest.raises(ValueError):
        SplitPredict([Part()])
