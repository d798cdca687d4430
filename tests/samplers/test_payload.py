"""Predict bodies from TF Serving model metadata, and from --request-file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from soak.core.errors import EnvironmentFailure, UsageError
from soak.samplers.payload import (
    build_predict_payload,
    fetch_metadata,
    grpc_inputs,
    load_request_file,
)


def tensor_info(name: str, dtype: str, *dims: str) -> dict:
    """A TensorInfo as TF Serving's REST API prints it (dim sizes are strings)."""
    return {
        "dtype": dtype,
        "tensor_shape": {"dim": [{"size": d, "name": ""} for d in dims], "unknown_rank": False},
        "name": f"serving_default_{name}:0",
    }


# GET /v1/models/ranker/metadata of a recommender model, in TF Serving's shape.
RANKER_METADATA = {
    "model_spec": {"name": "ranker", "signature_name": "", "version": "1"},
    "metadata": {
        "signature_def": {
            "signature_def": {
                "serving_default": {
                    "inputs": {
                        "item_ids": tensor_info("item_ids", "DT_INT64", "-1", "3"),
                        "dense": tensor_info("dense", "DT_FLOAT", "-1", "5"),
                        "country": tensor_info("country", "DT_STRING", "-1"),
                        "is_new": tensor_info("is_new", "DT_BOOL", "-1", "-1"),
                    },
                    "outputs": {"score": tensor_info("score", "DT_FLOAT", "-1", "1")},
                    "method_name": "tensorflow/serving/predict",
                },
                "__saved_model_init_op": {
                    "inputs": {},
                    "outputs": {"__saved_model_init_op": tensor_info("init", "DT_INVALID")},
                    "method_name": "",
                },
            }
        }
    },
}


def test_payload_follows_the_signature():
    body = build_predict_payload(RANKER_METADATA, batch=4, seed=7)

    assert body["signature_name"] == "serving_default"
    assert len(body["instances"]) == 4
    for row in body["instances"]:
        assert set(row) == {"item_ids", "dense", "country", "is_new"}
        assert len(row["item_ids"]) == 3 and all(isinstance(i, int) for i in row["item_ids"])
        assert all(0 <= i < 10 for i in row["item_ids"])
        assert len(row["dense"]) == 5 and all(isinstance(x, float) for x in row["dense"])
        assert isinstance(row["country"], str)
        assert len(row["is_new"]) == 1 and isinstance(row["is_new"][0], bool)  # -1 -> 1
    json.dumps(body)  # serialisable as it is


def test_payload_is_reproducible_from_the_seed():
    assert build_predict_payload(RANKER_METADATA, 8, seed=1) == build_predict_payload(
        RANKER_METADATA, 8, seed=1
    )
    assert build_predict_payload(RANKER_METADATA, 8, seed=1) != build_predict_payload(
        RANKER_METADATA, 8, seed=2
    )


def test_missing_signature_names_the_available_ones():
    with pytest.raises(UsageError, match="no signature 'predict'.*serving_default"):
        build_predict_payload(RANKER_METADATA, 1, signature_name="predict")
    with pytest.raises(UsageError, match="available: none"):
        build_predict_payload({"model_spec": {}}, 1)


def with_input(info: dict) -> dict:
    signature = {"inputs": {"x": info}, "outputs": {}, "method_name": ""}
    return {"metadata": {"signature_def": {"signature_def": {"serving_default": signature}}}}


def test_inputs_that_cannot_be_generated_are_usage_errors():
    with pytest.raises(UsageError, match="fixed batch size 2; use --batch 2"):
        build_predict_payload(with_input(tensor_info("x", "DT_FLOAT", "2", "3")), batch=4)
    assert (
        len(build_predict_payload(with_input(tensor_info("x", "DT_FLOAT", "2")), 2)["instances"])
        == 2
    )
    with pytest.raises(UsageError, match="dtype DT_VARIANT"):
        build_predict_payload(with_input(tensor_info("x", "DT_VARIANT", "-1")), batch=1)
    with pytest.raises(UsageError, match="scalar"):
        build_predict_payload(with_input(tensor_info("x", "DT_FLOAT")), batch=1)
    with pytest.raises(UsageError, match="at least 1"):
        build_predict_payload(RANKER_METADATA, batch=0)


def test_unknown_rank_is_a_batch_of_scalars():
    info = {"dtype": "DT_INT32", "tensor_shape": {"unknown_rank": True}, "name": "x:0"}
    body = build_predict_payload(with_input(info), batch=3)
    assert [set(row) for row in body["instances"]] == [{"x"}] * 3
    assert all(isinstance(row["x"], int) for row in body["instances"])


def test_payload_runs_through_a_real_saved_model(tmp_path):
    """The generated rows, batched as TF Serving batches them, feed the real signature."""
    tf = pytest.importorskip("tensorflow")
    from google.protobuf.json_format import MessageToDict
    from tensorflow.core.protobuf import saved_model_pb2

    class Ranker(tf.Module):
        def __init__(self):
            self.table = tf.Variable(tf.ones([10, 5]))  # ids must be < 10 or gather fails

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, 3], tf.int64, name="item_ids"),
                tf.TensorSpec([None, 5], tf.float32, name="dense"),
                tf.TensorSpec([None], tf.string, name="country"),
                tf.TensorSpec([None, 1], tf.bool, name="is_new"),
            ]
        )
        def serve(self, item_ids, dense, country, is_new):
            emb = tf.reduce_sum(tf.gather(self.table, item_ids), axis=1)
            bonus = (
                tf.cast(is_new, tf.float32)
                + tf.cast(tf.strings.length(country) > 0, tf.float32)[:, None]
            )
            return {"score": tf.reduce_sum(emb * dense, axis=1, keepdims=True) + bonus}

    path = tmp_path / "1"
    module = Ranker()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    saved_model = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
    signatures = {
        name: MessageToDict(sig, preserving_proto_field_name=True)
        for name, sig in saved_model.meta_graphs[0].signature_def.items()
    }
    metadata = {"metadata": {"signature_def": {"signature_def": signatures}}}

    body = build_predict_payload(metadata, batch=4)

    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    spec = signature.structured_input_signature[1]
    columns = {
        name: tf.constant([row[name] for row in body["instances"]], dtype=spec[name].dtype)
        for name in spec
    }
    assert signature(**columns)["score"].shape == (4, 1)


def test_request_file_is_validated(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"signature_name": "serving_default", "inputs": {"x": [[1.0]]}}))
    assert load_request_file(good)["inputs"] == {"x": [[1.0]]}

    cases = {
        "missing.json": None,
        "broken.json": "{not json",
        "list.json": "[1, 2]",
        "neither.json": '{"signature_name": "serving_default"}',
        "both.json": '{"instances": [1], "inputs": [1]}',
        "empty.json": '{"instances": []}',
        "signature.json": '{"instances": [1], "signature_name": 3}',
    }
    for name, text in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        with pytest.raises(UsageError) as error:
            load_request_file(path)
        message = str(error.value)
        assert str(path) in message and "\n" not in message


def test_fetch_metadata_reads_the_rest_api(serve, closed_port):
    def metadata(method: str, path: str, body: bytes) -> tuple[int, bytes]:
        if path == "/v1/models/ranker/metadata":
            return 200, json.dumps(RANKER_METADATA).encode()
        return 404, b'{"error": "Servable not found for request: Latest(other)"}'

    http = serve(metadata)
    url = f"http://127.0.0.1:{http.server_port}"
    assert fetch_metadata(url, "ranker") == RANKER_METADATA
    with pytest.raises(EnvironmentFailure, match="HTTP 404"):
        fetch_metadata(url, "other")
    with pytest.raises(EnvironmentFailure, match="cannot read model metadata"):
        fetch_metadata(f"http://127.0.0.1:{closed_port}", "ranker", timeout_s=2)


# --- the same request as gRPC input tensors ------------------------------------------------


def test_rows_become_one_stacked_tensor_per_input():
    body = build_predict_payload(RANKER_METADATA, batch=3)
    signature, tensors = grpc_inputs(body, RANKER_METADATA)
    assert signature == "serving_default"
    assert {n: (t.dtype.name, t.shape) for n, t in tensors.items()} == {
        "item_ids": ("int64", (3, 3)),
        "dense": ("float32", (3, 5)),
        "country": ("object", (3,)),
        "is_new": ("bool", (3, 1)),
    }
    rows = body["instances"]
    assert tensors["item_ids"].tolist() == [row["item_ids"] for row in rows]
    assert tensors["country"].tolist() == [row["country"].encode() for row in rows]


def test_columns_become_tensors_as_given():
    body = {
        "signature_name": "serving_default",
        "inputs": {
            "item_ids": [[1, 2, 3]],
            "dense": [[0.5, 1, 2, 3, 4]],
            "country": [{"b64": "ZGU="}],  # base64 for b"de"
            "is_new": [[True]],
        },
    }
    signature, tensors = grpc_inputs(body, RANKER_METADATA)
    assert signature == "serving_default"
    assert tensors["dense"].dtype == np.float32 and tensors["dense"].tolist() == [[0.5, 1, 2, 3, 4]]
    assert tensors["item_ids"].dtype == np.int64
    assert tensors["country"].tolist() == [b"de"]


def test_unnamed_rows_and_columns_go_to_the_only_input():
    metadata = {
        "metadata": {
            "signature_def": {
                "signature_def": {
                    "serving_default": {"inputs": {"x": tensor_info("x", "DT_FLOAT", "-1", "1")}}
                }
            }
        }
    }
    # TF Serving's quick-start request, as a --request-file
    _, rows = grpc_inputs({"instances": [1.0, 2.0, 5.0]}, metadata)
    assert rows["x"].dtype == np.float32 and rows["x"].tolist() == [1.0, 2.0, 5.0]
    _, columns = grpc_inputs({"inputs": [[1.0], [2.0]]}, metadata)
    assert columns["x"].tolist() == [[1.0], [2.0]]
    # without metadata the types are the official client's: floats float32, text DT_STRING
    _, named = grpc_inputs({"instances": [{"x": 1.5, "w": "a"}]})
    assert named["x"].dtype == np.float32 and named["w"].tolist() == [b"a"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"instances": [1.0]}, "does not name its inputs"),
        ({"instances": [{"item_ids": [1]}, {"dense": [1.0]}]}, "same inputs"),
        ({"inputs": {"item_ids": [[1, 2], [3]]}}, "not a DT_INT64"),
        ({"inputs": {"country": [{"b64": "%%"}]}}, "not valid base64"),
    ],
)
def test_requests_that_cannot_become_tensors_are_usage_errors(body, message):
    with pytest.raises(UsageError, match=message):
        grpc_inputs(body, RANKER_METADATA)
