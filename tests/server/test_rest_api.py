"""TF Serving's REST API shapes and error codes (docs/contract.md#stand-in-server), over
real HTTP."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from soak_model_server.warmup import WarmupRequest, write_warmup_requests

WARMUP_RECORDS = 3
ONE_ROW = {"ids": 1, "feats": [1.0, 2.0, 3.0, 4.0]}


@pytest.fixture(scope="module")
def server(module_server_factory, stage, tmp_path_factory):
    base_path = tmp_path_factory.mktemp("rest-base")
    version_dir = stage(base_path, 1, scale=1.0)
    warmup = [
        WarmupRequest(
            "serving_default",
            {"ids": np.array([i], np.int64), "feats": np.ones((1, 4), np.float32)},
        )
        for i in range(WARMUP_RECORDS)
    ]
    write_warmup_requests(version_dir, "m", warmup)
    return module_server_factory(base_path, "--rest_api_num_threads=2")


def _root(server) -> str:
    return f"http://127.0.0.1:{server.rest_port}"


# --- model status ----------------------------------------------------------------------------


def test_model_status_shape(server):
    reply = requests.get(server.url, timeout=10)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.json() == {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }


def test_version_status_shape(server):
    reply = requests.get(f"{server.url}/versions/1", timeout=10)
    assert reply.status_code == 200
    assert reply.json()["model_version_status"] == [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]


def test_unknown_version_status_is_404(server):
    reply = requests.get(f"{server.url}/versions/7", timeout=10)
    assert reply.status_code == 404
    assert reply.json() == {"error": "Could not find version 7 of model m"}


def test_unknown_model_status_is_404(server):
    reply = requests.get(f"{_root(server)}/v1/models/other", timeout=10)
    assert reply.status_code == 404
    assert reply.json() == {"error": "Could not find any versions of model other"}


# --- metadata --------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["/metadata", "/versions/1/metadata"])
def test_metadata_shape(server, suffix):
    reply = requests.get(server.url + suffix, timeout=10)
    assert reply.status_code == 200
    body = reply.json()
    assert body["model_spec"] == {"name": "m", "signature_name": "", "version": "1"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {"serving_default", "embed"}
    default = signatures["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    assert default["inputs"]["ids"] == {
        "name": "ids:0",
        "dtype": "DT_INT64",
        "tensor_shape": {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False},
    }
    assert default["inputs"]["feats"]["tensor_shape"]["dim"] == [
        {"size": "-1", "name": ""},
        {"size": "4", "name": ""},
    ]
    assert default["outputs"]["score"]["dtype"] == "DT_FLOAT"
    assert set(signatures["embed"]["outputs"]) == {"embedding", "norm"}


def test_metadata_of_unknown_version_is_404(server):
    reply = requests.get(f"{server.url}/versions/7/metadata", timeout=10)
    assert reply.status_code == 404
    assert reply.json() == {"error": "Servable not found for request: Specific(m, 7)"}


# --- predict ---------------------------------------------------------------------------------


def test_predict_row_format(server):
    reply = server.predict({"instances": [ONE_ROW, {"ids": 5, "feats": [0.5, 0.5, 0.0, 1.0]}]})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"predictions": [10.0, 2.0]}


def test_predict_columnar_format(server):
    reply = server.predict({"inputs": {"ids": [1, 2], "feats": [[1, 1, 1, 1], [2, 0, 0, 0]]}})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"outputs": [4.0, 2.0]}


def test_predict_on_a_specific_version(server):
    reply = server.predict({"instances": [ONE_ROW]}, version=1)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"predictions": [10.0]}


def test_float32_outputs_are_written_with_their_shortest_repr(server):
    reply = server.predict({"instances": [{"ids": 1, "feats": [0.1, 0.0, 0.0, 0.0]}]})
    assert reply.status_code == 200
    assert re.fullmatch(r'\{"predictions": \[0\.1\]\}', reply.text), reply.text


def test_signature_name_row_format_with_several_outputs(server):
    reply = server.predict({"signature_name": "embed", "instances": [3, 4]})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "predictions": [
            {"embedding": [1.0, 1.0, 1.0, 1.0], "norm": 2.0},
            {"embedding": [1.0, 1.0, 1.0, 1.0], "norm": 2.0},
        ]
    }


def test_signature_name_columnar_format_with_several_outputs(server):
    reply = server.predict({"signature_name": "embed", "inputs": [3]})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"outputs": {"embedding": [[1.0, 1.0, 1.0, 1.0]], "norm": [2.0]}}


def test_unknown_signature_is_400(server):
    reply = server.predict({"signature_name": "nope", "instances": [ONE_ROW]})
    assert reply.status_code == 400
    assert reply.json() == {"error": 'Serving signature name: "nope" not found in signature def'}


def test_unknown_model_predict_is_404(server):
    reply = requests.post(
        f"{_root(server)}/v1/models/other:predict", json={"instances": [ONE_ROW]}, timeout=10
    )
    assert reply.status_code == 404
    assert reply.json() == {"error": "Servable not found for request: Latest(other)"}


def test_unknown_version_predict_is_404(server):
    reply = server.predict({"instances": [ONE_ROW]}, version=7)
    assert reply.status_code == 404
    assert reply.json() == {"error": "Servable not found for request: Specific(m, 7)"}


@pytest.mark.parametrize(
    "body, fragment",
    [
        (b"{not json", "JSON Parse error"),
        (b"", "JSON Parse error: The document is empty"),
        (b"[1, 2]", "Is not object"),
        (b'{"signature_name": 3, "instances": [1]}', "'signature_name' key must be a string"),
        (b'{"examples": []}', "Missing 'inputs' or 'instances' key"),
        (b'{"instances": []}', "No values in 'instances' array"),
        (b'{"instances": [1], "inputs": [1]}', "expecting only one of 'inputs' or 'instances'"),
    ],
)
def test_malformed_requests_are_400(server, body, fragment):
    reply = requests.post(f"{server.url}:predict", data=body, timeout=10)
    assert reply.status_code == 400
    assert fragment in reply.json()["error"]


def test_missing_input_row_format_is_400(server):
    reply = server.predict({"instances": [{"ids": 1}]})
    assert reply.status_code == 400
    assert reply.json()["error"].endswith("keys must be equal to: feats,ids")


def test_missing_input_columnar_format_is_400(server):
    reply = server.predict({"inputs": {"ids": [1]}})
    assert reply.status_code == 400
    assert reply.json() == {"error": "Missing named input: feats in 'inputs' object."}


def test_plain_instances_for_several_inputs_is_400(server):
    reply = server.predict({"instances": [1, 2]})
    assert reply.status_code == 400
    assert "expecting list of objects as multiple input tensors" in reply.json()["error"]


@pytest.mark.parametrize(
    "instances, fragment",
    [
        ([{"ids": "x", "feats": [1, 2, 3, 4]}], "is not of expected type: int64"),
        ([{"ids": 1.5, "feats": [1, 2, 3, 4]}], "is not of expected type: int64"),
        ([{"ids": 1, "feats": [1, 2, True, 4]}], "is not of expected type: float"),
        ([{"ids": 1, "feats": [1, 2, 3, 4]}, {"ids": 2, "feats": [1, 2]}], "tensor size"),
        ([{"ids": 1, "feats": [[1, 2], [3]]}], "Encountered list at unexpected size"),
        ([{"ids": 1, "feats": [1, 2, 3], "extra": 1}], "does not have named input: extra"),
    ],
)
def test_bad_input_values_are_400(server, instances, fragment):
    reply = server.predict({"instances": instances})
    assert reply.status_code == 400
    assert fragment in reply.json()["error"]


def test_shape_rejected_by_the_graph_is_400(server):
    reply = server.predict({"instances": [{"ids": 1, "feats": [1, 2, 3]}]})
    assert reply.status_code == 400
    assert "shape" in reply.json()["error"]


# --- routing and concurrency -----------------------------------------------------------------


def test_malformed_path_is_400_and_non_api_path_is_404(server):
    reply = requests.get(f"{_root(server)}/v1/foo/bar", timeout=10)
    assert reply.status_code == 400
    assert reply.json() == {"error": "Malformed request: GET /v1/foo/bar"}
    assert requests.get(f"{_root(server)}/healthz", timeout=10).status_code == 404


def test_classify_on_a_predict_signature_is_400(server):
    # classifier.cc PreProcessClassification: serving_default here has two inputs.
    reply = requests.post(f"{server.url}:classify", json={"examples": [{}]}, timeout=10)
    assert reply.status_code == 400
    assert reply.json() == {"error": "Expected one input Tensor."}


def test_more_concurrent_requests_than_rest_threads_all_succeed(server):
    """--rest_api_num_threads=2 bounds processing; extra requests queue, none fail."""
    body = {"instances": [ONE_ROW]}
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: server.predict(body), range(32)))
    assert [r.status_code for r in replies] == [200] * 32
    assert {r.text for r in replies} == {'{"predictions": [10.0]}'}


# --- warmup ----------------------------------------------------------------------------------


def test_warmup_records_were_replayed_at_load(server):
    log = server.log()
    match = re.search(
        r"Finished reading warmup data for model at (\S+)\. Number of warmup records read: (\d+)\.",
        log,
    )
    assert match, log
    assert match.group(1).endswith("/1/assets.extra/tf_serving_warmup_requests")
    assert int(match.group(2)) == WARMUP_RECORDS
    assert log.index("Finished reading warmup data") < log.index(
        "Successfully loaded servable version {name: m version: 1}"
    )
