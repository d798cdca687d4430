"""The embedded TF Serving descriptors and the tensor conversions of soak_model_server.protos."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from soak.samplers import grpc_client
from soak_model_server import _proto_descriptors, protos, protos_gen


def test_embedded_descriptors_match_tensorflow_serving_api():
    """`python -m soak_model_server.protos_gen` would write the same descriptors again."""
    pytest.importorskip("tensorflow_serving.apis", reason="tensorflow-serving-api not installed")
    assert protos_gen.encoded(protos_gen.server_set()) == _proto_descriptors.DESCRIPTOR_SET_B64


def test_messages_are_wire_compatible_with_the_official_ones():
    apis = pytest.importorskip("tensorflow_serving.apis.predict_pb2")
    request = protos.PredictRequest()
    request.model_spec.name = "m"
    request.model_spec.version.value = 7
    request.output_filter.append("y")
    protos.tensor_proto_from_array(np.array([[1.5]], np.float32), request.inputs["x"])
    official = apis.PredictRequest.FromString(request.SerializeToString())
    assert official.model_spec.version.value == 7
    assert tf.make_ndarray(official.inputs["x"]).tolist() == [[1.5]]


def test_monitoring_config_matches_tf_serving_proto():
    # tensorflow_serving/config/monitoring_config.proto
    fields = {f.name: f.number for f in protos.MonitoringConfig.DESCRIPTOR.fields}
    assert fields == {"prometheus_config": 1}
    prometheus = protos.POOL.FindMessageTypeByName("tensorflow.serving.PrometheusConfig")
    assert {f.name: f.number for f in prometheus.fields} == {"enable": 1, "path": 2}


@pytest.mark.parametrize(
    "array, field",
    [
        (np.array([[1.5, 2.5]], np.float32), "float_val"),
        (np.array([1.5], np.float64), "double_val"),
        (np.array([-3, 4], np.int8), "int_val"),
        (np.array([2**40], np.int64), "int64_val"),
        (np.array([2**63], np.uint64), "uint64_val"),
        (np.array([True, False]), "bool_val"),
        (np.array([b"a", b"\xff"], dtype=object), "string_val"),
        (np.array([1.5], np.float16), "half_val"),
        (np.array(3, np.int32), "int_val"),
    ],
)
def test_responses_use_typed_fields_and_read_back(array, field):  # Tensor::AsProtoField
    proto = protos.tensor_proto_from_array(array)
    assert len(getattr(proto, field)) > 0 and not proto.tensor_content
    back = protos.array_from_tensor_proto(proto)
    assert back.shape == array.shape and back.tolist() == array.tolist()


def test_a_short_value_list_is_padded_as_tensor_from_proto():
    proto = protos.TensorProto(dtype=protos.dtype_enum("DT_FLOAT"))
    proto.tensor_shape.dim.add(size=3)
    proto.float_val.append(2.0)
    assert protos.array_from_tensor_proto(proto).tolist() == [2.0, 2.0, 2.0]


def test_client_reads_what_the_server_writes():
    m = protos
    for array in (np.array([[1.0, 2.0]], np.float32), np.array([b"x"], dtype=object)):
        proto = protos.tensor_proto_from_array(array)
        response = m.PredictResponse()
        response.outputs["y"].ParseFromString(proto.SerializeToString())
        assert grpc_client._array(response.outputs["y"], m).tolist() == array.tolist()
