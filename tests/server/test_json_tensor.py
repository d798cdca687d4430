"""JSON <-> tensors and tf.Examples, cases ported from TF Serving's
tensorflow_serving/util/json_tensor_test.cc (each test names the TEST it comes from).

These run the stand-in's converter directly (no server): FillPredictRequestFromJson is
parse_document + predict_request_from_json, MakeJsonFromTensors is json_from_tensors.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from soak_model_server import protos
from soak_model_server.json_tensor import (
    RequestFormat,
    input_from_json,
    json_from_classification,
    json_from_regression,
    json_from_tensors,
    parse_document,
    predict_request_from_json,
)
from soak_model_server.status import ServingError


def fill(body: str | bytes, dtypes: dict[str, str] | str = "DT_INT32"):
    """FillPredictRequestFromJson with the tensorinfo map {"default": dtype} or `dtypes`."""
    infomap = {"default": dtypes} if isinstance(dtypes, str) else dtypes
    raw = body.encode() if isinstance(body, str) else body
    return predict_request_from_json(parse_document(raw), infomap)


def error_of(body: str | bytes, dtypes: dict[str, str] | str = "DT_INT32") -> ServingError:
    with pytest.raises(ServingError) as caught:
        fill(body, dtypes)
    return caught.value


def numbers_as_strings(text: str) -> list[str]:
    """The number tokens of a JSON text (CompareJsonAllValuesAsStrings compares these)."""
    return re.findall(r"-?Infinity|NaN|-?\d[\d.e+-]*", text)


# --- FillPredictRequestFromJson --------------------------------------------------------------


def test_single_unnamed_tensor():  # SingleUnnamedTensor
    request = fill('{"instances": [[1,2],[3,4],[5,6]]}')
    assert request.format is RequestFormat.ROW
    tensor = request.inputs["default"]
    assert tensor.dtype == np.int32 and tensor.shape == (3, 2)
    assert tensor.ravel().tolist() == [1, 2, 3, 4, 5, 6]


def test_deeply_nested_well_formed():  # DeeplyNestedWellFormed
    body = '{"instances":[1], "nested":' + "[" * 500000 + "]" * 500000 + "}"
    request = fill(body)
    assert request.inputs["default"].tolist() == [1]


def test_deeply_nested_malformed():  # DeeplyNestedMalformed
    body = '{"signature_name":' + "[" * 500000 + "]" * 500000 + "}"
    error = error_of(body)
    assert error.code == "INVALID_ARGUMENT"
    assert "key must be a string value" in error.message


def test_mixed_input_for_float_tensor():  # MixedInputForFloatTensor
    tensor = fill('{"instances": [1, 2.0, 3, 4, 5.003, 0.007, 0.0]}', "DT_FLOAT").inputs["default"]
    assert tensor.dtype == np.float32
    assert tensor.tolist() == pytest.approx([1, 2, 3, 4, 5.003, 0.007, 0])


def test_mixed_input_for_double_tensor():  # MixedInputForDoubleTensor
    tensor = fill('{"instances": [1.0, 2, 3, 4, 0.662, 0, 0.0]}', "DT_DOUBLE").inputs["default"]
    assert tensor.dtype == np.float64
    assert tensor.tolist() == [1, 2, 3, 4, 0.662, 0, 0]


@pytest.mark.parametrize("number", ["1435774380", "1435774380.0"])
def test_float_tensor_with_precision_loss(number):  # FloatTensorWithPrecisionLoss
    tensor = fill(f'{{"instances": [{number}]}}', "DT_FLOAT").inputs["default"]
    assert tensor.tolist() == [np.float32(1435774380)]  # 1435774336: precision lost, accepted


def test_float_tensor_that_exceeds_max_returns_inf():  # FloatTensorThatExceedsMaxReturnsInf
    big = repr(float(np.finfo(np.float64).max))
    assert fill(f'{{"instances": [{big}]}}', "DT_FLOAT").inputs["default"].tolist() == [math.inf]
    tensor = fill(f'{{"instances": [-{big}]}}', "DT_FLOAT").inputs["default"]
    assert tensor.tolist() == [-math.inf]


def test_float_tensor_that_exceeds_min_returns_zero():  # FloatTensorThatExceedsMinReturnsZero
    tiny = repr(float(np.finfo(np.float64).tiny))
    assert fill(f'{{"instances": [{tiny}]}}', "DT_FLOAT").inputs["default"].tolist() == [0.0]
    negative = fill(f'{{"instances": [-{tiny}]}}', "DT_FLOAT").inputs["default"]
    assert negative.tolist() == [0.0] and math.copysign(1, negative[0]) == -1


def test_single_unnamed_tensor_with_signature():  # SingleUnnamedTensorWithSignature
    request = fill('{"signature_name": "predict_images", "instances": [[1,2]]}')
    assert request.signature_name == "predict_images"
    assert request.inputs["default"].shape == (1, 2)


def test_tensor_from_non_null_terminated_buffer():  # TensorFromNonNullTerminatedBuffer
    # rapidjson's kParseStopWhenDoneFlag: whatever follows the document is ignored.
    request = fill('{"instances": [[1,2],[3,4],[5,6]]}X')
    assert request.inputs["default"].shape == (3, 2)


def test_single_unnamed_tensor_base64_scalars():  # SingleUnnamedTensorBase64Scalars
    request = fill('{"instances": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}]}', "DT_STRING")
    assert request.inputs["default"].tolist() == [b"hello", b"world"]


def test_single_unnamed_tensor_base64_lists():  # SingleUnnamedTensorBase64Lists
    request = fill('{"instances": [[{"b64": "aGVsbG8="}], [{"b64": "d29ybGQ="}]]}', "DT_STRING")
    assert request.inputs["default"].tolist() == [[b"hello"], [b"world"]]


def test_single_named_tensor_base64():  # SingleNamedTensorBase64
    body = '{"instances": [{"default": [[{"b64": "aGVsbG8="}], [{"b64": "d29ybGQ="}]]}]}'
    tensor = fill(body, "DT_STRING").inputs["default"]
    assert tensor.shape == (1, 2, 1)
    assert tensor.ravel().tolist() == [b"hello", b"world"]


def test_multiple_named_tensor():  # MultipleNamedTensor
    body = """{"instances": [
        {"int_tensor": [[1, 2], [3, 4]], "str_tensor": ["foo", "bar"]},
        {"int_tensor": [[4, 5], [6, 7]], "str_tensor": ["baz", "bat"]}]}"""
    request = fill(body, {"int_tensor": "DT_INT32", "str_tensor": "DT_STRING"})
    assert request.inputs["int_tensor"].shape == (2, 2, 2)
    assert request.inputs["str_tensor"].tolist() == [[b"foo", b"bar"], [b"baz", b"bat"]]


def test_multiple_named_tensor_columnar_format():  # MultipleNamedTensorColumnarFormat
    body = """{"inputs": {
        "int_tensor": [[1, 2], [3, 4]], "str_tensor": ["foo", "bar"],
        "bin_tensor": {"b64": "aGVsbG8="}}}"""
    request = fill(
        body, {"int_tensor": "DT_INT32", "str_tensor": "DT_STRING", "bin_tensor": "DT_STRING"}
    )
    assert request.format is RequestFormat.COLUMNAR
    assert request.inputs["int_tensor"].shape == (2, 2)
    assert request.inputs["bin_tensor"].shape == () and request.inputs["bin_tensor"] == b"hello"


@pytest.mark.parametrize(
    "body, fragment",
    [
        ("", "document is empty"),
        ('{"signature_name": 5, "instances": [[1,2],[3,4],[5,6,7]]}', "must be a string value"),
        (
            '{"instances": [[1,2],[3,4],[5,6,7]], "inputs": [[1,2],[3,4],[5,6,7]]}',
            "Not formatted correctly",
        ),
        ('{"instances": [[1,2],[3,4],[5,6,7]]}', "Expecting tensor size"),
        ('{"instances": [[1,2],[3,4],[[5,6]]]}', "Expecting shape"),
        ('{"instances": [1, [1]]}', "Expecting shape"),
        ('{"instances": [[1,2],["a", "b"]]}', "not of expected type"),
    ],
)
def test_single_unnamed_tensor_errors(body, fragment):  # SingleUnnamedTensorErrors
    error = error_of(body)
    assert error.code == "INVALID_ARGUMENT"
    assert fragment in error.message


@pytest.mark.parametrize(
    "body, fragment",
    [
        (
            '{"instances": [{"int_tensor": [[1,2],[3,4]], "str_tensor": ["foo", "bar"]},'
            ' {"int_tensor": [[4,5],[6,7]], "str_tensor": ["baz"]}]}',
            "Expecting tensor size",
        ),
        (
            '{"instances": [{"int_tensor": [[1,2],[3,4]], "str_tensor": ["foo", "bar"]}, [1, 2]]}',
            "Expecting object but got list",
        ),
        (
            '{"instances": [[1, 2], {"int_tensor": [[1,2],[3,4]], "str_tensor": ["foo"]}]}',
            "instances is a plain list",
        ),
    ],
)
def test_multiple_named_tensor_errors(body, fragment):  # MultipleNamedTensorErrors
    error = error_of(body, {"int_tensor": "DT_INT32", "str_tensor": "DT_STRING"})
    assert fragment in error.message


def test_value_list_after_an_object_is_an_error():  # MultipleNamedTensorErrors (last case)
    error = error_of('{"instances": [[1, 2], {"default": [1, 2]}]}')
    assert "Expecting value/list but got object" in error.message


# --- number and string rules (AddValueToTensor in json_tensor.cc) ----------------------------


@pytest.mark.parametrize(
    "dtype, value, expected",
    [
        ("DT_INT8", "300", [44]),  # int_val, then the int8 cast wraps as Tensor::FromProto
        ("DT_UINT8", "-1", [255]),
        ("DT_INT64", "-9223372036854775808", [-(2**63)]),
        ("DT_UINT64", "18446744073709551615", [2**64 - 1]),
        ("DT_UINT32", "4294967295", [2**32 - 1]),
        ("DT_BOOL", "true", [True]),
        ("DT_DOUBLE", "NaN", [math.nan]),
        ("DT_FLOAT", "Infinity", [math.inf]),
    ],
)
def test_numbers_accepted_as_rapidjson_and_tensor_from_proto(dtype, value, expected):
    tensor = fill(f'{{"instances": [{value}]}}', dtype).inputs["default"]
    assert tensor.tolist() == pytest.approx(expected, nan_ok=True)


@pytest.mark.parametrize(
    "dtype, value",
    [
        ("DT_INT32", "2147483648"),  # not IsInt
        ("DT_INT32", "1.0"),  # a double is never an integer
        ("DT_INT64", "9223372036854775808"),
        ("DT_UINT32", "-1"),
        ("DT_BOOL", "1"),
        ("DT_FLOAT", '"1.0"'),
        ("DT_STRING", "1"),
        ("DT_INT32", '{"b64": "AA=="}'),
    ],
)
def test_numbers_rejected_as_rapidjson(dtype, value):
    error = error_of(f'{{"instances": [{value}]}}', dtype)
    assert error.code == "INVALID_ARGUMENT"
    assert "is not of expected type" in error.message


def test_types_json_cannot_carry_are_unimplemented():
    error = error_of('{"instances": [1.5]}', "DT_HALF")
    assert error.code == "UNIMPLEMENTED"
    assert "Conversion of JSON Value: 1.5 to type: half" in error.message


@pytest.mark.parametrize("encoded", ["aGVsbG8=", "aGVsbG8", "aGVs bG8=\n"])
def test_base64_as_absl_unescape(encoded):  # padding optional, whitespace skipped
    request = fill(json.dumps({"instances": [{"b64": encoded}]}), "DT_STRING")
    assert request.inputs["default"].tolist() == [b"hello"]


@pytest.mark.parametrize(
    "value, fragment",
    [
        ('{"b64": "a"}', "Unable to base64 decode"),
        ('{"b64": "aGVs-G8="}', "Unable to base64 decode"),  # web-safe alphabet is not base64
        ('{"b64": 5}', "not formatted correctly for base64 data"),
        ('{"b64": "aGVsbG8=", "x": 1}', "not formatted correctly for base64 data"),
    ],
)
def test_base64_errors(value, fragment):
    error = error_of(f'{{"inputs": [{value}]}}', "DT_STRING")
    assert fragment in error.message


def test_strings_keep_bytes_that_are_not_utf8():  # rapidjson does not validate encoding
    request = fill(b'{"instances": ["\xff\xfe"]}', "DT_STRING")
    assert request.inputs["default"].tolist() == [b"\xff\xfe"]


@pytest.mark.parametrize(
    "body, message",
    [
        ("instances = [1, 2]", "JSON Parse error: Invalid value. at offset: 0"),
        ('{"instances" [1]}', "JSON Parse error: Missing a colon after a name of object member."),
        ('{"instances": [1 2]}', "JSON Parse error: Missing a comma or ']' after an array"),
        ('{"a": 1 "b": 2}', "JSON Parse error: Missing a comma or '}' after an object member."),
        ("[1, 2]", "JSON Value: [1,2] Is not object"),
    ],
)
def test_parse_errors_worded_as_rapidjson(body, message):
    assert message in error_of(body).message


# --- MakeJsonFromTensors --------------------------------------------------------------------


def test_from_json_single_float_tensor_six_digit_precision():
    # FromJsonSingleFloatTensorSixDigitPrecision
    tensor = np.array([[9000000, 999999, 0.5], [0.0003, 0.00003, 555557.5]], np.float32)
    text = json_from_tensors({"float_tensor": tensor}, RequestFormat.ROW)
    assert numbers_as_strings(text) == ["9e+06", "999999.0", "0.5", "0.0003", "3e-05", "555557.5"]


def test_from_json_single_float_tensor_non_finite():  # FromJsonSingleFloatTensorNonFinite
    tensor = np.array([[math.nan, math.inf], [3, -math.inf]], np.float32)
    text = json_from_tensors({"float_tensor": tensor}, RequestFormat.ROW)
    assert numbers_as_strings(text) == ["NaN", "Infinity", "3.0", "-Infinity"]


def test_from_json_single_tensor_errors():  # FromJsonSingleTensorErrors
    with pytest.raises(ServingError, match="empty tensor map"):
        json_from_tensors({}, RequestFormat.ROW)
    with pytest.raises(ServingError, match="tensor type: complex64"):
        json_from_tensors({"tensor": np.array([1 + 2j], np.complex64)}, RequestFormat.ROW)
    with pytest.raises(ServingError, match="no shape information"):
        json_from_tensors({"tensor": np.array(1, np.int32)}, RequestFormat.ROW)


def test_from_json_multiple_named_tensors():  # FromJsonMultipleNamedTensors
    outputs = {
        "float_tensor": np.array([[1.0, 2.0], [3.0, 4.0]], np.float32),
        "int_tensor": np.array([1, 2], np.int32),
        "str_tensor_bytes": np.array([b"hello", b"tf"], dtype=object),
    }
    rows = json.loads(json_from_tensors(outputs, RequestFormat.ROW))["predictions"]
    assert rows == [
        {"float_tensor": [1.0, 2.0], "int_tensor": 1, "str_tensor_bytes": {"b64": "aGVsbG8="}},
        {"float_tensor": [3.0, 4.0], "int_tensor": 2, "str_tensor_bytes": {"b64": "dGY="}},
    ]
    columns = json.loads(json_from_tensors(outputs, RequestFormat.COLUMNAR))["outputs"]
    assert columns["str_tensor_bytes"] == [{"b64": "aGVsbG8="}, {"b64": "dGY="}]
    assert columns["int_tensor"] == [1, 2]


def test_from_json_multiple_named_tensors_errors():  # FromJsonMultipleNamedTensorsErrors
    outputs = {"a": np.zeros([2, 2], np.float32), "b": np.zeros([3], np.int64)}
    with pytest.raises(ServingError, match="inconsistent batch size"):
        json_from_tensors(outputs, RequestFormat.ROW)


def test_from_json_single_zero_batch_tensor():  # FromJsonSingleZeroBatchTensor
    text = json_from_tensors({"a": np.zeros([0, 2], np.float32)}, RequestFormat.ROW)
    assert json.loads(text) == {"predictions": []}


# --- classify and regress -------------------------------------------------------------------


def classify_input(body: str):
    return input_from_json(parse_document(body.encode()))


def test_classify_regress_request_no_context():  # ClassifyRegressRequestTest.RequestNoContext
    _, request_input = classify_input(
        """{"examples": [{"names": ["foo", "bar"], "ratings": [8.0, 9.0], "age": 20},
                         {"names": ["baz"], "ratings": 6.0}]}"""
    )
    examples = request_input.example_list.examples
    assert len(examples) == 2
    first = examples[0].features.feature
    assert list(first["names"].bytes_list.value) == [b"foo", b"bar"]
    assert list(first["ratings"].float_list.value) == [8.0, 9.0]
    assert list(first["age"].int64_list.value) == [20]
    assert list(examples[1].features.feature["ratings"].float_list.value) == [6.0]


def test_classify_regress_request_with_context_and_signature():
    # ClassifyRegressRequestTest.RequestWithContextAndSignature
    signature, request_input = classify_input(
        """{"signature_name": "custom_signture",
            "context": {"query": "pizza", "location": ["sfo"]},
            "examples": [
              {"names": ["foo", "bar"], "ratings": [8.0, 9.0, NaN, Infinity], "age": 20},
              {"names": ["baz", {"b64": "aGVsbG8="}], "ratings": 6.0,
               "intboolmix": [1, true, false]},
              {"names": "bar", "ratings": -Infinity}]}"""
    )
    assert signature == "custom_signture"
    with_context = request_input.example_list_with_context
    assert list(with_context.context.features.feature["query"].bytes_list.value) == [b"pizza"]
    second = with_context.examples[1].features.feature
    assert list(second["names"].bytes_list.value) == [b"baz", b"hello"]
    assert list(second["intboolmix"].int64_list.value) == [1, 1, 0]
    assert list(with_context.examples[2].features.feature["ratings"].float_list.value) == [
        -math.inf
    ]


@pytest.mark.parametrize(
    "body, fragment",
    [
        (
            '{"signature_name": ["hello"], "examples": [{"names": ["foo", "bar"]}]}',
            "'signature_name' key must be a string",
        ),
        ('{"context": [{"names": ["foo", "bar"]}]}', "Example must be JSON object"),
        ('{"examples": {"names": ["foo", "bar"]}}', "list/array"),
        ('{"examples": [[{"names": ["foo", "bar"]}]]}', "Example must be JSON object"),
        (
            '{"examples": [{"names": [10, null]}]}',
            "names has element with unexpected JSON type: Null",
        ),
        ('{"examples": [{"names": [10, 10.0]}]}', "feature: names expecting type: int64"),
        (
            '{"examples": [{"names": [10, {"test": 10}]}]}',
            "names has element with unexpected JSON type: Object",
        ),
        (
            '{"examples": [{"names": [[10], 20]}]}',
            "names has element with unexpected JSON type: Array",
        ),
        ('{"examples": [{"names": [20, 18446744073709551603]}]}', "Only int64_t is supported"),
        ('{"examples": []}', "'examples' value is an empty array"),
        ('{"instances": [1]}', "key 'examples' is expected and was not found"),
    ],
)
def test_classify_regress_json_errors(body, fragment):  # ClassifyRegressRequestTest.JsonErrors
    with pytest.raises(ServingError) as caught:
        classify_input(body)
    assert caught.value.code == "INVALID_ARGUMENT"
    assert fragment in caught.value.message


def test_json_from_classification_result():  # JsonFromClassificationResult
    from soak_model_server.inference import Classification

    result = [
        [Classification(b"car", 0.2), Classification(b"bike", 0.7), Classification(b"bus", 0.1)],
        [Classification(b"car", 0.7), Classification(b"bike", 0.1), Classification(b"bus", 0.2)],
    ]
    assert json.loads(json_from_classification(result)) == {
        "results": [
            [["car", 0.2], ["bike", 0.7], ["bus", 0.1]],
            [["car", 0.7], ["bike", 0.1], ["bus", 0.2]],
        ]
    }


def test_json_from_regression_result():  # JsonFromRegressionResult (+ WithNonFinite)
    assert json.loads(json_from_regression([0.2, 0.9, 1.0])) == {"results": [0.2, 0.9, 1.0]}
    text = json_from_regression([0.2, math.inf, 1.0, -math.inf, math.nan])
    assert numbers_as_strings(text) == ["0.2", "Infinity", "1.0", "-Infinity", "NaN"]


def test_json_from_result_errors():  # JsonFromResultErrors
    with pytest.raises(ServingError, match="empty ClassificationResults"):
        json_from_classification([])
    with pytest.raises(ServingError, match="empty RegressionResults"):
        json_from_regression([])


def test_input_is_a_tensorflow_serving_input():
    _, request_input = classify_input('{"examples": [{"x": 1.0}]}')
    assert request_input.DESCRIPTOR.full_name == "tensorflow.serving.Input"
    assert isinstance(request_input, protos.Input)
