"""gRPC on --port, driven with the official `tensorflow-serving-api` client, unchanged.

PredictionService (Predict, GetModelMetadata, Classify, Regress) and
ModelService.GetModelStatus against half_plus_two, error codes as TF Serving returns them
(prediction_service_impl.cc, predict_util.cc, get_model_metadata_impl.cc,
get_model_status_impl.cc), and predictions and status before and after a hot swap.
The client package is installed without its dependencies (it requires `tensorflow`, which
would pull a second TensorFlow next to tensorflow-cpu): pip install --no-deps
tensorflow-serving-api.
"""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tensorflow as tf

apis = pytest.importorskip("tensorflow_serving.apis", reason="tensorflow-serving-api not installed")
from tensorflow_serving.apis import (  # noqa: E402
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

MODEL = "m"


@pytest.fixture(scope="module")
def channel(hp2_server):
    with grpc.insecure_channel(f"127.0.0.1:{hp2_server.grpc_port}") as opened:
        yield opened


@pytest.fixture(scope="module")
def prediction(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def model_service(channel):
    return model_service_pb2_grpc.ModelServiceStub(channel)


def predict_request(x, name: str = MODEL, **spec) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    for key, value in spec.items():
        if key == "version":
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, key, value)
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(x))
    return request


def examples(request, *xs: float):
    for x in xs:
        example = request.input.example_list.examples.add()
        example.features.feature["x"].float_list.value.append(x)
    return request


def rpc_error(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=30)
    return caught.value


def test_predict(prediction):
    response = prediction.Predict(predict_request(np.array([[1.0], [2.0]], np.float32)), 30)
    assert tf.make_ndarray(response.outputs["y"]).tolist() == [[2.5], [3.0]]
    assert response.model_spec.name == MODEL
    assert response.model_spec.version.value == 123
    assert response.model_spec.signature_name == "serving_default"


def test_predict_takes_any_feed_shape_as_tf_serving(prediction):
    # The api_rest.md quick-start shape, [3] into x of [None, 1]: the C++ session accepts it.
    response = prediction.Predict(predict_request(np.array([1.0, 2.0, 5.0], np.float32)), 30)
    assert tf.make_ndarray(response.outputs["y"]).tolist() == [2.5, 3.0, 4.5]


def test_predict_output_filter_and_version(prediction):
    request = predict_request(np.array([[4.0]], np.float32), version=123)
    request.output_filter.append("y")
    response = prediction.Predict(request, 30)
    assert list(response.outputs) == ["y"]
    request.output_filter.append("nope")
    error = rpc_error(prediction.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("output tensor alias not found in signature: nope")


def test_predict_errors(prediction):
    error = rpc_error(prediction.Predict, predict_request(np.ones([1, 1], np.float32), "nope"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "Servable not found for request: Latest(nope)"

    request = predict_request(np.ones([1, 1], np.float32), signature_name="missing")
    error = rpc_error(prediction.Predict, request)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == 'Serving signature key "missing" not found.'

    error = rpc_error(prediction.Predict, predict_request(np.ones([1, 1], np.float64)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Expects arg[0] to be float but double is provided" in error.details()

    request = predict_request(np.ones([1, 1], np.float32))
    request.inputs["z"].CopyFrom(tf.make_tensor_proto(np.ones([1], np.float32)))
    error = rpc_error(prediction.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("input size does not match signature: 2!=1")

    request = predict_request(np.ones([1, 1], np.float32), version=7)
    assert rpc_error(prediction.Predict, request).code() == grpc.StatusCode.NOT_FOUND


def test_get_model_metadata(prediction):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = MODEL
    request.metadata_field.append("signature_def")
    response = prediction.GetModelMetadata(request, 30)
    assert response.model_spec.name == MODEL
    assert response.model_spec.version.value == 123
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    assert set(signatures.signature_def) == {"serving_default", "regress_x_to_y", "classify_x_to_y"}
    assert signatures.signature_def["serving_default"].inputs["x"].name == "x:0"

    request.metadata_field[:] = []
    error = rpc_error(prediction.GetModelMetadata, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "GetModelMetadataRequest must specify at least one metadata_field"


def test_classify(prediction):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = "classify_x_to_y"
    response = prediction.Classify(examples(request, 20.0, 10.0), 30)
    scores = [[c.score for c in cs.classes] for cs in response.result.classifications]
    labels = [[c.label for c in cs.classes] for cs in response.result.classifications]
    assert scores == [[12.0], [7.0]] and labels == [[""], [""]]
    assert response.model_spec.signature_name == "classify_x_to_y"
    assert response.model_spec.version.value == 123


def test_regress_with_context(prediction):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = "regress_x_to_y"
    with_context = request.input.example_list_with_context
    with_context.context.features.feature["unused"].int64_list.value.append(1)
    with_context.examples.add().features.feature["x"].float_list.value.append(80.0)
    response = prediction.Regress(request, 30)
    assert [r.value for r in response.result.regressions] == [42.0]


def test_classify_and_regress_errors(prediction):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = MODEL
    error = rpc_error(prediction.Regress, examples(request, 1.0))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("No regression inputs found in SignatureDef:")

    request.model_spec.signature_name = "regress_x_to_y"
    error = rpc_error(
        prediction.Regress, regression_pb2.RegressionRequest(model_spec=request.model_spec)
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "Input is empty."

    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = "nope"
    error = rpc_error(prediction.Classify, examples(request, 1.0))
    assert error.details() == "No signature was found with the name: nope"


def test_get_model_status(model_service):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL
    response = model_service.GetModelStatus(request, 30)
    [status] = response.model_version_status
    assert status.version == 123
    assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert status.status.error_code == 0 and status.status.error_message == ""

    request.model_spec.version.value = 7
    error = rpc_error(model_service.GetModelStatus, request)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "Could not find version 7 of model m"

    error = rpc_error(model_service.GetModelStatus, get_model_status_pb2.GetModelStatusRequest())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "Missing ModelSpec"


def test_official_client_before_and_after_a_hot_swap(tmp_path, half_plus_two, server_factory):
    base_path = tmp_path / "models"
    base_path.mkdir()
    half_plus_two(base_path, 1, b=2.0)
    server = server_factory(base_path)
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        prediction = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        model_service = model_service_pb2_grpc.ModelServiceStub(channel)
        status_request = get_model_status_pb2.GetModelStatusRequest()
        status_request.model_spec.name = MODEL
        metadata_request = get_model_metadata_pb2.GetModelMetadataRequest()
        metadata_request.model_spec.name = MODEL
        metadata_request.metadata_field.append("signature_def")
        x = np.array([[2.0]], np.float32)

        def versions() -> dict[int, int]:
            response = model_service.GetModelStatus(status_request, 30)
            return {s.version: s.state for s in response.model_version_status}

        state = get_model_status_pb2.ModelVersionStatus
        assert versions() == {1: state.AVAILABLE}
        assert tf.make_ndarray(prediction.Predict(predict_request(x), 30).outputs["y"]) == 3.0
        assert prediction.GetModelMetadata(metadata_request, 30).model_spec.version.value == 1

        half_plus_two(base_path, 2, b=10.0)
        server.wait_for(lambda: versions() == {2: state.AVAILABLE, 1: state.END}, 60, "swap")

        response = prediction.Predict(predict_request(x), 30)
        assert tf.make_ndarray(response.outputs["y"]) == 11.0
        assert response.model_spec.version.value == 2
        assert prediction.GetModelMetadata(metadata_request, 30).model_spec.version.value == 2
        error = rpc_error(prediction.Predict, predict_request(x, version=1))
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert error.details() == "Servable not found for request: Specific(m, 1)"
