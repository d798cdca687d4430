"""The predict API's JSON <-> tensors, following TF Serving's util/json_tensor.cc.

Row format: `{"instances": [...]}` -> `{"predictions": [...]}`; columnar format:
`{"inputs": ...}` -> `{"outputs": ...}`. Values are checked against the signature's dtypes
and shapes with TF Serving's rules and error messages (all INVALID_ARGUMENT, HTTP 400).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from enum import Enum

import numpy as np

from soak_model_server import status
from soak_model_server.status import ServingError


class RequestFormat(Enum):
    ROW = "row"  # "instances" -> "predictions"
    COLUMNAR = "columnar"  # "inputs" -> "outputs"


@dataclass(frozen=True)
class PredictRequest:
    signature_name: str
    inputs: dict[str, np.ndarray]
    format: RequestFormat


@dataclass(frozen=True)
class _DType:
    numpy: type | str
    tf_name: str  # DataTypeString, used in messages
    kind: str  # "float", "int", "uint", "bool" or "string"
    max_exact_int: int = 0  # floats: larger integers lose precision
    bits: int = 0  # ints: accepted range


_DTYPES = {
    "DT_FLOAT": _DType(np.float32, "float", "float", max_exact_int=2**24 - 1),
    "DT_DOUBLE": _DType(np.float64, "double", "float", max_exact_int=2**53 - 1),
    "DT_HALF": _DType(np.float16, "half", "float", max_exact_int=2**11 - 1),
    "DT_INT8": _DType(np.int8, "int8", "int", bits=32),
    "DT_INT16": _DType(np.int16, "int16", "int", bits=32),
    "DT_INT32": _DType(np.int32, "int32", "int", bits=32),
    "DT_UINT8": _DType(np.uint8, "uint8", "int", bits=32),
    "DT_INT64": _DType(np.int64, "int64", "int", bits=64),
    "DT_UINT32": _DType(np.uint32, "uint32", "uint", bits=32),
    "DT_UINT64": _DType(np.uint64, "uint64", "uint", bits=64),
    "DT_BOOL": _DType(np.bool_, "bool", "bool"),
    "DT_STRING": _DType(object, "string", "string"),
}


def _invalid(message: str) -> ServingError:
    return ServingError(status.INVALID_ARGUMENT, message)


def _json_text(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _json_type(value: object) -> str:
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def _is_b64_object(value: object) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _is_element_object(value: object) -> bool:
    return isinstance(value, dict) and not _is_b64_object(value)


# --- parsing -------------------------------------------------------------------------------


def parse_document(body: bytes) -> dict:
    """The request body as a JSON object, or INVALID_ARGUMENT worded as TF Serving's."""
    if not body.strip():
        raise _invalid("JSON Parse error: The document is empty")
    try:
        document = json.loads(body)
    except UnicodeDecodeError:
        raise _invalid("JSON Parse error: Invalid encoding in string.") from None
    except json.JSONDecodeError as error:
        raise _invalid(f"JSON Parse error: {error.msg} at offset: {error.pos}") from None
    if not isinstance(document, dict):
        raise _invalid(f"JSON Value: {_json_text(document)} Is not object")
    return document


def signature_name_of(document: dict) -> str:
    name = document.get("signature_name", "")
    if not isinstance(name, str):
        raise _invalid(
            f"JSON Value: {_json_text(document)} not formatted correctly. "
            "'signature_name' key must be a string value."
        )
    return name


def predict_request_from_json(document: dict, input_dtypes: dict[str, str]) -> PredictRequest:
    """Tensors for the signature's inputs (alias -> dtype name) from a parsed request."""
    signature_name = signature_name_of(document)
    if not input_dtypes:
        raise _invalid(f"Failed to get input map for signature: {signature_name or 'DEFAULT'}")
    has_instances = "instances" in document
    has_inputs = "inputs" in document
    if has_instances and has_inputs:
        raise _invalid(
            f"JSON Value: {_json_text(document)} Not formatted correctly expecting only one of "
            "'inputs' or 'instances' keys to exist "
        )
    if has_instances:
        instances = document["instances"]
        if not isinstance(instances, list):
            raise _invalid(
                f"JSON Value: {_json_text(document)} Excepting 'instances' to be an list/array"
            )
        if not instances:
            raise _invalid(f"JSON Value: {_json_text(document)} No values in 'instances' array")
        inputs = _tensors_from_instances(instances, input_dtypes)
        return PredictRequest(signature_name, inputs, RequestFormat.ROW)
    if has_inputs:
        inputs = _tensors_from_inputs(document["inputs"], input_dtypes)
        return PredictRequest(signature_name, inputs, RequestFormat.COLUMNAR)
    raise _invalid("Missing 'inputs' or 'instances' key")


def _tensors_from_instances(instances: list, input_dtypes: dict[str, str]) -> dict[str, np.ndarray]:
    if not _is_element_object(instances[0]) and len(input_dtypes) > 1:
        raise _invalid(
            "instances is a plain list, but expecting list of objects as multiple input "
            "tensors required as per tensorinfo_map"
        )
    named = _is_element_object(instances[0])
    only_input = next(iter(input_dtypes))
    batch = _Batch(input_dtypes)
    for index, element in enumerate(instances):
        if named:
            if not _is_element_object(element):
                raise _invalid(f"Expecting object but got list at item {index} of input list")
            for name, value in element.items():
                try:
                    batch.add(name, value)
                except ServingError as error:
                    raise _invalid(
                        f"Failed to process element: {index} key: {name} of 'instances' list. "
                        f"Error: {error}"
                    ) from None
            if set(element) != set(input_dtypes):
                raise _invalid(
                    f"Failed to process element: {index} of 'instances' list. JSON object: "
                    f"{_json_text(element)} keys must be equal to: "
                    f"{','.join(sorted(input_dtypes))}"
                )
        else:
            if _is_element_object(element):
                raise _invalid(f"Expecting value/list but got object at item {index} of input list")
            try:
                batch.add(only_input, element)
            except ServingError as error:
                raise _invalid(
                    f"Failed to process element: {index} of 'instances' list. Error: {error}"
                ) from None
    return batch.tensors(len(instances))


def _tensors_from_inputs(value: object, input_dtypes: dict[str, str]) -> dict[str, np.ndarray]:
    if not isinstance(value, dict) or _is_b64_object(value):
        if len(input_dtypes) > 1:
            raise _invalid(
                "inputs is a plain value/list, but expecting an object as multiple input "
                "tensors required as per tensorinfo_map"
            )
        name = next(iter(input_dtypes))
        return {name: _tensor(value, input_dtypes[name])}
    tensors = {}
    for name, dtype in input_dtypes.items():
        if name not in value:
            raise _invalid(f"Missing named input: {name} in 'inputs' object.")
        tensors[name] = _tensor(value[name], dtype)
    return tensors


class _Batch:
    """Row-format instances accumulated per input; each must have the same shape."""

    def __init__(self, input_dtypes: dict[str, str]) -> None:
        self._dtypes = input_dtypes
        self._values: dict[str, list] = {}
        self._shapes: dict[str, list[int]] = {}

    def add(self, name: str, item: object) -> None:
        if name not in self._dtypes:
            raise _invalid(f"JSON object: does not have named input: {name}")
        shape = _dense_shape(item)
        values: list = []
        _fill(item, 0, shape, _dtype(self._dtypes[name]), values)
        if name not in self._shapes:
            self._shapes[name] = shape
            self._values[name] = values
            return
        expected = self._shapes[name]
        if int(np.prod(expected)) != len(values):
            raise _invalid(
                f"Expecting tensor size: {int(np.prod(expected))} but got: {len(values)}"
            )
        if expected != shape:
            raise _invalid(f"Expecting shape {_shape_text(expected)} but got: {_shape_text(shape)}")
        self._values[name].extend(values)

    def tensors(self, batch_size: int) -> dict[str, np.ndarray]:
        return {
            name: _array(values, _dtype(self._dtypes[name]), [batch_size, *self._shapes[name]])
            for name, values in self._values.items()
        }


def _tensor(value: object, dtype_name: str) -> np.ndarray:
    dtype = _dtype(dtype_name)
    shape = _dense_shape(value)
    values: list = []
    _fill(value, 0, shape, dtype, values)
    return _array(values, dtype, shape)


def _dtype(dtype_name: str) -> _DType:
    dtype = _DTYPES.get(dtype_name)
    if dtype is None:
        raise ServingError(
            status.UNIMPLEMENTED, f"Conversion of JSON Value to type: {dtype_name} is unsupported"
        )
    return dtype


def _array(values: list, dtype: _DType, shape: list[int]) -> np.ndarray:
    return np.array(values, dtype=dtype.numpy).reshape(shape)


def _dense_shape(value: object) -> list[int]:
    """Shape from the first element at each level (GetDenseTensorShape)."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill(value: object, level: int, shape: list[int], dtype: _DType, out: list) -> None:
    """Append the leaves of `value`, checking it is dense with `shape` (FillTensorProto)."""
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise _invalid(
                f"JSON Value: {_json_text(value)} found at incorrect level: {level + 1} in the "
                f"JSON DOM. Expected at level: {rank}"
            )
        out.append(_scalar(value, dtype))
        return
    if level >= rank:
        raise _invalid(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise _invalid(
            f"Encountered list at unexpected size: {len(value)} at level: {level} "
            f"expected size: {shape[level]}"
        )
    for item in value:
        _fill(item, level + 1, shape, dtype, out)


def _scalar(value: object, dtype: _DType) -> object:
    """One JSON leaf converted to `dtype`, or TF Serving's type error."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if dtype.kind == "float" and is_number:
        if isinstance(value, int) and abs(value) > dtype.max_exact_int:
            raise _invalid(
                f"Cannot convert JSON value: {value} to {dtype.tf_name} without loss of precision."
            )
        return value
    is_integer = isinstance(value, int) and not isinstance(value, bool)
    if (
        dtype.kind == "int"
        and is_integer
        and -(2 ** (dtype.bits - 1)) <= value < 2 ** (dtype.bits - 1)
    ):
        return value
    if dtype.kind == "uint" and is_integer and 0 <= value < 2**dtype.bits:
        return value
    if dtype.kind == "bool" and isinstance(value, bool):
        return value
    if dtype.kind == "string":
        if isinstance(value, str):
            return value.encode()
        if _is_b64_object(value):
            try:
                return base64.b64decode(value["b64"], validate=True)
            except binascii.Error:
                raise _invalid("Unable to base64 decode") from None
    raise _invalid(
        f"JSON Value: {_json_text(value)} Type: {_json_type(value)} is not of expected type: "
        f"{dtype.tf_name}"
    )


def _shape_text(shape: list[int]) -> str:
    return "[" + ",".join(str(size) for size in shape) + "]"


# --- formatting ----------------------------------------------------------------------------


def json_from_tensors(outputs: dict[str, np.ndarray], request_format: RequestFormat) -> str:
    """The predict response body for the request's format (MakeJsonFromTensors)."""
    if not outputs:
        raise _invalid("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    values = {name: _json_values(name, np.asarray(outputs[name])) for name in names}
    if request_format is RequestFormat.COLUMNAR:
        body = values[names[0]] if len(names) == 1 else values
        return json.dumps({"outputs": body})
    batch_size = None
    for name in names:
        shape = np.shape(outputs[name])
        if not shape:
            raise _invalid(f"Tensor name: {name} has no shape information ")
        if batch_size is not None and shape[0] != batch_size:
            raise _invalid(
                f"Tensor name: {name} has inconsistent batch size: {shape[0]} "
                f"expecting: {batch_size}"
            )
        batch_size = shape[0]
    if len(names) == 1:
        predictions = values[names[0]]
    else:
        predictions = [{name: values[name][row] for name in names} for row in range(batch_size)]
    return json.dumps({"predictions": predictions})


def _json_values(name: str, array: np.ndarray) -> object:
    """Nested Python values; float32 written with its shortest repr (0.1, not 0.100000001)."""
    if array.dtype.kind == "f" and array.dtype.itemsize < 8:
        return array.astype(str).astype(np.float64).tolist()
    if array.dtype.kind in ("O", "S"):
        as_bytes = name.endswith("_bytes")
        flat = [
            {"b64": base64.b64encode(item).decode()}
            if as_bytes
            else item.decode("utf-8", errors="replace")
            for item in array.ravel().tolist()
        ]
        return np.array(flat, dtype=object).reshape(array.shape).tolist()
    return array.tolist()
