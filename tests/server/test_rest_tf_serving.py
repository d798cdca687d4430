"""The REST API as TF Serving's own handler tests and REST doc define it, over real HTTP.

Cases from tensorflow_serving/model_servers/http_rest_api_handler_test.cc (TEST_F names in the
comments) and tensorflow_serving/g3doc/api_rest.md, run against TF Serving's test model
half_plus_two (y = 0.5 * x + 2) as version 123, as in the handler test. The stand-in has no
version labels (TF Serving takes them from --model_config_file), so the label cases check the
"Unrecognized servable version label" path.
"""

from __future__ import annotations

import pytest
import requests

MODEL = "m"


@pytest.fixture(scope="module")
def server(hp2_server):
    return hp2_server


def root(server) -> str:
    return f"http://127.0.0.1:{server.rest_port}"


def call(server, method: str, path: str, body: str | bytes = b"") -> requests.Response:
    return requests.request(method, root(server) + path, data=body, timeout=30)


def test_path_regex(server):  # kPathRegex: only /v1/... reaches the handler
    assert call(server, "GET", "/statuspage").status_code == 404
    assert call(server, "GET", "/index").status_code == 404


@pytest.mark.parametrize(
    "method, path, fragment",
    [  # UnsupportedApiCalls
        ("GET", "/v1/foo", "Malformed request"),
        ("POST", "/v1/foo", "Malformed request"),
        ("GET", "/v1/models", "Missing model name"),
        ("GET", "/v1/models/debug/model_name", "Malformed request"),
        ("POST", "/v1/models", "Malformed request"),
        ("GET", "/v1/models/foo:predict", "Malformed request"),
        ("GET", "/v1/models/foo/version/50:predict", "Malformed request"),
        ("POST", "/v1/models/foo/version/50:regress", "Malformed request"),
        ("POST", "/v1/models/foo/versions/HELLO:regress", "Malformed request"),
        ("POST", f"/v1/models/foo/versions/{2**64 - 1}:regress", "Failed to convert version"),
        ("POST", "/v1/models/foo/metadata", "Malformed request"),
        ("POST", "/v1/models/foo/label/some_label:regress", "Malformed request"),
        ("POST", "/v1/models/foo/versions/50/labels/some_label:regress", "Malformed request"),
        ("POST", "/v1/models/foo/versions/some_label:regress", "Malformed request"),
        # the path pattern ignores case, the dispatch on the verb does not
        ("POST", f"/v1/models/{MODEL}:PREDICT", "Malformed request"),
        ("PUT", f"/v1/models/{MODEL}", "Malformed request"),
    ],
)
def test_unsupported_api_calls(server, method, path, fragment):
    reply = call(server, method, path)
    assert reply.status_code == 400  # INVALID_ARGUMENT
    assert reply.headers["Content-Type"] == "application/json"
    assert fragment in reply.json()["error"]


@pytest.mark.parametrize(
    "path",
    [  # PredictModelNameVersionErrors
        "/v1/models/foo:predict",
        "/v1/models/foo/versions/50:predict",
        f"/v1/models/{MODEL}99:predict",
        f"/v1/models/{MODEL}/versions/99:predict",
    ],
)
def test_predict_model_name_version_errors(server, path):
    reply = call(server, "POST", path, '{ "instances": [1] }')
    assert reply.status_code == 404  # NOT_FOUND


@pytest.mark.parametrize(
    "path, body, fragment",
    [  # PredictRequestErrors
        (":predict", "", "JSON Parse error: The document is empty"),
        (":predict", "instances = [1, 2]", "JSON Parse error: Invalid value"),
        (":predict", '{ "instances": ["x", "y"] }', "not of expected type: float"),
        (
            "/labels/Version_Nonexistent:predict",
            '{ "instances": ["x", "y"] }',
            "Unrecognized servable version label",
        ),
        (":predict", '{ "signature_name": 100 }', "'signature_name' key must be a string value."),
    ],
)
def test_predict_request_errors(server, path, body, fragment):
    reply = call(server, "POST", f"/v1/models/{MODEL}{path}", body)
    assert reply.status_code == 400  # INVALID_ARGUMENT
    assert fragment in reply.json()["error"]


@pytest.mark.parametrize(
    "path, body, expected",
    [  # Predict: half_plus_two's x is [None, 1]; TF Serving's session takes any shape
        (
            ":predict",
            '{"instances": [[1.0, 2.0], [3.0, 4.0]]}',
            {"predictions": [[2.5, 3.0], [3.5, 4.0]]},
        ),
        ("/versions/123:predict", '{"instances": [1.0, 2.0]}', {"predictions": [2.5, 3.0]}),
        (
            "/versions/123:predict",
            '{"signature_name": "serving_default", "instances": [3.0, 4.0]}',
            {"predictions": [3.5, 4.0]},
        ),
        (
            "/versions/123:predict",
            '{"signature_name": "serving_default", "inputs": [3.0, 4.0]}',
            {"outputs": [3.5, 4.0]},
        ),
        (":predict", '{"instances": [[1.0], [2.0]]}', {"predictions": [[2.5], [3.0]]}),
    ],
)
def test_predict(server, path, body, expected):
    reply = call(server, "POST", f"/v1/models/{MODEL}{path}", body)
    assert reply.status_code == 200, reply.text
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.json() == expected


@pytest.mark.parametrize("path", [":regress", "/versions/123:regress"])
def test_regress(server, path):  # Regress
    body = '{"signature_name": "regress_x_to_y", "examples": [ { "x": 80.0 } ] }'
    reply = call(server, "POST", f"/v1/models/{MODEL}{path}", body)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"results": [42]}


@pytest.mark.parametrize(
    "path, x, score", [(":classify", 20.0, 12), ("/versions/123:classify", 10.0, 7)]
)
def test_classify(server, path, x, score):  # Classify
    body = f'{{"signature_name": "classify_x_to_y", "examples": [ {{ "x": {x} }} ] }}'
    reply = call(server, "POST", f"/v1/models/{MODEL}{path}", body)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"results": [[["", score]]]}


def test_classify_with_a_label_is_unrecognized(server):  # Classify, label case
    body = '{"signature_name": "classify_x_to_y", "examples": [ { "x": 10.0 } ] }'
    reply = call(server, "POST", f"/v1/models/{MODEL}/labels/Version_Label:classify", body)
    assert reply.status_code == 400
    assert reply.json() == {"error": "Unrecognized servable version label: Version_Label"}


STATUS_123 = {
    "model_version_status": [
        {
            "version": "123",
            "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""},
        }
    ]
}


@pytest.mark.parametrize("suffix", ["", "/versions/123", "/labels/Version_Label"])
def test_get_status(server, suffix):  # GetStatus (GetModelStatusImpl ignores a label)
    reply = call(server, "GET", f"/v1/models/{MODEL}{suffix}")
    assert reply.status_code == 200, reply.text
    assert reply.json() == STATUS_123


def test_get_model_metadata(server):  # GetModelMetadata
    reply = call(server, "GET", f"/v1/models/{MODEL}/metadata")
    assert reply.status_code == 200
    body = reply.json()
    assert body["model_spec"] == {"name": MODEL, "signature_name": "", "version": "123"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {"serving_default", "regress_x_to_y", "classify_x_to_y"}
    assert signatures["regress_x_to_y"]["method_name"] == "tensorflow/serving/regress"
    assert signatures["classify_x_to_y"]["outputs"]["scores"]["name"] == "y:0"


def test_metadata_with_a_label_is_unrecognized(server):
    reply = call(server, "GET", f"/v1/models/{MODEL}/labels/x/metadata")
    assert reply.status_code == 400
    assert "Unrecognized servable version label: x" in reply.json()["error"]


# --- tensorflow_serving/g3doc/api_rest.md ----------------------------------------------------


def test_quick_start_predict(server):  # "A predict call would look as follows"
    reply = call(server, "POST", f"/v1/models/{MODEL}:predict", '{"instances": [1.0,2.0,5.0]}')
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"predictions": [2.5, 3.0, 4.5]}  # half_plus_three: 3.5, 4.0, 5.5


def test_quick_start_regress(server):  # "And a regress call looks as follows"
    body = '{"signature_name": "tensorflow/serving/regress", "examples": [{"x": 1.0}, {"x": 2.0}]}'
    reply = call(server, "POST", f"/v1/models/{MODEL}:regress", body)
    # half_plus_three has a signature of that name; half_plus_two's is regress_x_to_y
    assert reply.status_code == 400
    assert reply.json() == {
        "error": "No signature was found with the name: tensorflow/serving/regress"
    }
    body = body.replace("tensorflow/serving/regress", "regress_x_to_y")
    reply = call(server, "POST", f"/v1/models/{MODEL}:regress", body)
    assert reply.json() == {"results": [2.5, 3.0]}


def test_quick_start_unknown_model(server):  # "An incorrect request URL or body ..."
    reply = call(server, "POST", "/v1/models/half:predict", '{"instances": [1.0,5.0]}')
    assert reply.status_code == 404
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.json() == {"error": "Servable not found for request: Latest(half)"}


def test_binary_outputs_and_nan_tokens(server):  # "JSON conformance": NaN and Infinity
    reply = call(server, "POST", f"/v1/models/{MODEL}:predict", '{"instances": [NaN, Infinity]}')
    assert reply.status_code == 200
    assert reply.text.replace(" ", "") == '{"predictions":[NaN,Infinity]}'


def test_body_is_parsed_before_the_model_is_looked_up(server):
    # FillPredictRequestFromJson parses the document before GetInfoMap finds the servable.
    reply = call(server, "POST", "/v1/models/half:predict", "")
    assert reply.status_code == 400
    assert reply.json() == {"error": "JSON Parse error: The document is empty"}


def test_classify_on_the_predict_signature(server):  # classifier.cc PreProcessClassification
    reply = call(server, "POST", f"/v1/models/{MODEL}:classify", '{"examples": [{"x": 1.0}]}')
    assert reply.status_code == 400
    assert reply.json()["error"].startswith("No classification inputs found in SignatureDef:")


def test_predict_on_a_classify_signature_feeds_its_tensors(server):
    # A classify signature is a valid predict signature too (predict_util.cc VerifySignature).
    body = '{"signature_name": "classify_x_to_y", "inputs": {"inputs": []}}'
    reply = call(server, "POST", f"/v1/models/{MODEL}:predict", body)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"outputs": []}
