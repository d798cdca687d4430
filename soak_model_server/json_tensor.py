"""The REST API's JSON <-> tensors and tf.Examples, following TF Serving's util/json_tensor.cc.

Predict: row format `{"instances": [...]}` -> `{"predictions": [...]}`, columnar format
`{"inputs": ...}` -> `{"outputs": ...}`. Classify and regress: `{"examples": [...],
"context": {...}}` -> a `tensorflow.serving.Input` of tf.Examples, results as
`{"results": ...}`. Parsing follows rapidjson as TF Serving configures it (NaN and Infinity
accepted, anything after the document ignored, no nesting limit, raw bytes in strings kept),
and values are converted with TF Serving's rules: any JSON number for float and double (no
precision check), integers in range for the integer types, strings or `{"b64": ...}` for
DT_STRING; other types are UNIMPLEMENTED. Errors are TF Serving's (INVALID_ARGUMENT, HTTP 400).
Floats are written as TF Serving writes them (six significant digits when that round-trips,
"NaN", "Infinity"); whitespace differs (TF Serving pretty-prints).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any

import numpy as np

from soak_model_server import protos, status
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
    numpy: Any
    tf_name: str  # DataTypeString, used in messages
    kind: str  # "float", "int", "bool" or "string"
    low: int = 0  # integers: the accepted range (rapidjson IsInt/IsInt64/IsUint/IsUint64)
    high: int = 0
    wire: Any = None  # integers: the TensorProto field type the value goes through


_I32 = (-(2**31), 2**31 - 1)
_DTYPES = {
    "DT_FLOAT": _DType(np.float32, "float", "float"),
    "DT_DOUBLE": _DType(np.float64, "double", "float"),
    "DT_INT32": _DType(np.int32, "int32", "int", *_I32, wire=np.int32),
    "DT_INT16": _DType(np.int16, "int16", "int", *_I32, wire=np.int32),
    "DT_INT8": _DType(np.int8, "int8", "int", *_I32, wire=np.int32),
    "DT_UINT8": _DType(np.uint8, "uint8", "int", *_I32, wire=np.int32),
    "DT_INT64": _DType(np.int64, "int64", "int", -(2**63), 2**63 - 1, wire=np.int64),
    "DT_UINT32": _DType(np.uint32, "uint32", "int", 0, 2**32 - 1, wire=np.uint32),
    "DT_UINT64": _DType(np.uint64, "uint64", "int", 0, 2**64 - 1, wire=np.uint64),
    "DT_BOOL": _DType(np.bool_, "bool", "bool"),
    "DT_STRING": _DType(object, "string", "string"),
}
# DataTypeString of the types JSON cannot carry (the UNIMPLEMENTED message names them).
_TF_NAMES = {
    "DT_HALF": "half",
    "DT_BFLOAT16": "bfloat16",
    "DT_UINT16": "uint16",
    "DT_COMPLEX64": "complex64",
    "DT_COMPLEX128": "complex128",
    "DT_QINT8": "qint8",
    "DT_QUINT8": "quint8",
    "DT_QINT32": "qint32",
    "DT_RESOURCE": "resource",
    "DT_VARIANT": "variant",
}
_MAX_DEBUG_BYTES = 256  # kMaxJsonDebugStringBytes


def _invalid(message: str) -> ServingError:
    return ServingError(status.INVALID_ARGUMENT, message)


def _json_text(value: object) -> str:
    """JsonValueToDebugString: the value as JSON, cut at 256 characters."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (ValueError, RecursionError):  # nested deeper than json.dumps recurses
        text = _json_prefix(value, _MAX_DEBUG_BYTES)
    return text[:_MAX_DEBUG_BYTES]


_END = object()


def _json_prefix(value: object, limit: int) -> str:
    """The first `limit` characters of the value's JSON text, written without recursion."""
    out: list[str] = []
    size = 0
    # (items left, closing bracket, no item written yet); dict items come as (key, value)
    stack: list[tuple[Iterator[Any], str, bool]] = [(iter([value]), "", True)]
    while stack and size < limit:
        items, closer, first = stack[-1]
        item = next(items, _END)
        if item is _END:
            stack.pop()
            text = closer
        else:
            stack[-1] = (items, closer, False)
            text = "" if first else ","
            if isinstance(item, tuple):
                text += json.dumps(item[0], ensure_ascii=False) + ":"
                item = item[1]
            if isinstance(item, list):
                text += "["
                stack.append((iter(item), "]", True))
            elif isinstance(item, dict):
                text += "{"
                stack.append((iter(item.items()), "}", True))
            else:
                text += json.dumps(item, ensure_ascii=False)
        out.append(text)
        size += len(text)
    return "".join(out)


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


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_b64_object(value: object) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _is_element_object(value: object) -> bool:
    return isinstance(value, dict) and not _is_b64_object(value)


# --- parsing the document ------------------------------------------------------------------

# Python's messages -> rapidjson's GetParseError_En.
_PARSE_ERRORS = {
    "Expecting value": "Invalid value.",
    "Expecting property name enclosed in double quotes": "Missing a name for object member.",
    "Expecting ':' delimiter": "Missing a colon after a name of object member.",
    "Unterminated string starting at": "Missing a closing quotation mark in string.",
    "Invalid control character at": "Invalid encoding in string.",
    "Invalid \\escape": "Invalid escape character in string.",
    "Invalid \\uXXXX escape": "Incorrect hex digit after \\u escape in string.",
}


def _innermost_open(text: str, end: int) -> str:
    """'{' or '[' still open at `end` (outside strings), for the missing-comma message."""
    stack: list[str] = []
    in_string = escaped = False
    for char in text[:end]:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            stack.append(char)
        elif char in "]}" and stack:
            stack.pop()
    return stack[-1] if stack else ""


def _parse_error(text: str, error: json.JSONDecodeError) -> ServingError:
    if error.msg == "Expecting ',' delimiter":
        if _innermost_open(text, error.pos) == "{":
            message = "Missing a comma or '}' after an object member."
        else:
            message = "Missing a comma or ']' after an array element."
    else:
        message = _PARSE_ERRORS.get(error.msg, error.msg)
    offset = len(text[: error.pos].encode("utf-8", "surrogateescape"))
    return _invalid(f"JSON Parse error: {message} at offset: {offset}")


def parse_document(body: bytes) -> dict:
    """The request body as a JSON object (ParseJson), or INVALID_ARGUMENT worded as TF
    Serving's. Bytes that are not UTF-8 are kept (rapidjson does not validate encoding)."""
    if not body:
        raise _invalid("JSON Parse error: The document is empty")
    text = body.decode("utf-8", "surrogateescape")
    start = len(text) - len(text.lstrip(" \t\n\r"))
    if start == len(text):
        raise _invalid("JSON Parse error: The document is empty")
    try:
        # kParseStopWhenDoneFlag: whatever follows the first value is ignored.
        document, _ = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError as error:
        raise _parse_error(text, error) from None
    except RecursionError:
        # kParseIterativeFlag: rapidjson has no nesting limit; Python's parser recurses.
        document = _parse_iteratively(text, start)
    if not isinstance(document, dict):
        raise _invalid(f"JSON Value: {_json_text(document)} Is not object")
    return document


_NUMBER = re.compile(r"(-?(?:0|[1-9]\d*))(\.\d+)?([eE][-+]?\d+)?")
_CONSTANTS = {
    "true": True,
    "false": False,
    "null": None,
    "NaN": math.nan,
    "Infinity": math.inf,
    "-Infinity": -math.inf,
}


def _parse_iteratively(text: str, pos: int) -> Any:
    """A JSON parser with an explicit stack, for documents nested deeper than Python allows."""
    containers: list[Any] = []  # open lists and dicts
    keys: list[str | None] = []  # the pending key of each open dict
    length = len(text)

    def fail(message: str, at: int) -> ServingError:
        return _invalid(f"JSON Parse error: {message} at offset: {at}")

    def skip(at: int) -> int:
        while at < length and text[at] in " \t\n\r":
            at += 1
        return at

    def member_name(at: int) -> int:
        """An object member's `"name":` at `at` (whitespace skipped before): the key, then
        the position after the colon."""
        if at >= length or text[at] != '"':
            raise fail("Missing a name for object member.", at)
        keys[-1], at = scanstring(text, at + 1)
        at = skip(at)
        if at >= length or text[at] != ":":
            raise fail("Missing a colon after a name of object member.", at)
        return at + 1

    def add(value: Any) -> Any:
        if not containers:
            return value
        top = containers[-1]
        if isinstance(top, list):
            top.append(value)
        else:
            top[keys[-1]] = value
        return None

    while True:
        pos = skip(pos)
        if pos >= length:
            raise fail("Invalid value.", pos)
        char = text[pos]
        value: Any
        if char in "[{":
            container: Any = [] if char == "[" else {}
            containers.append(container)
            keys.append(None)
            pos = skip(pos + 1)
            if char == "{":
                if pos < length and text[pos] == "}":
                    pos += 1
                    containers.pop()
                    keys.pop()
                    value = container
                else:
                    pos = member_name(pos)
                    continue
            elif pos < length and text[pos] == "]":
                pos += 1
                containers.pop()
                keys.pop()
                value = container
            else:
                continue
        elif char == '"':
            value, pos = scanstring(text, pos + 1)
        else:
            for token, constant in _CONSTANTS.items():
                if text.startswith(token, pos):
                    value, pos = constant, pos + len(token)
                    break
            else:
                match = _NUMBER.match(text, pos)
                if not match:
                    raise fail("Invalid value.", pos)
                integer, fraction, exponent = match.groups()
                value = (
                    float(integer + (fraction or "") + (exponent or ""))
                    if fraction or exponent
                    else int(integer)
                )
                pos = match.end()
        # `value` is complete: attach it, then close every container that ends here.
        while True:
            if not containers:
                return value
            add(value)
            pos = skip(pos)
            top = containers[-1]
            closer = "]" if isinstance(top, list) else "}"
            if pos < length and text[pos] == ",":
                pos += 1
                if isinstance(top, dict):
                    pos = member_name(skip(pos))
                break
            if pos < length and text[pos] == closer:
                pos += 1
                value = containers.pop()
                keys.pop()
                continue
            what = "an array element" if closer == "]" else "an object member"
            raise fail(f"Missing a comma or '{closer}' after {what}.", pos)


def signature_name_of(document: dict) -> str:
    name = document.get("signature_name", "")
    if not isinstance(name, str):
        raise _invalid(
            f"JSON Value: {_json_text(document)} not formatted correctly. "
            "'signature_name' key must be a string value."
        )
    return name


# --- predict requests ----------------------------------------------------------------------


def predict_request_from_json(document: dict, input_dtypes: dict[str, str]) -> PredictRequest:
    """FillPredictRequestFromJson: tensors for the signature's inputs (alias -> dtype name)."""
    signature_name = signature_name_of(document)
    if not input_dtypes:
        raise _invalid(f"Failed to get input map for signature: {signature_name or 'DEFAULT'}")
    if "instances" in document:
        if "inputs" in document:
            raise _invalid(
                f"JSON Value: {_json_text(document)} Not formatted correctly expecting only one "
                "of 'inputs' or 'instances' keys to exist "
            )
        instances = _json_list(
            document,
            "instances",
            "Expecting 'instances' to be an list/array",
            "No values in 'instances' array",
        )
        inputs = _tensors_from_instances(instances, input_dtypes)
        return PredictRequest(signature_name, inputs, RequestFormat.ROW)
    if "inputs" in document:
        inputs = _tensors_from_inputs(document["inputs"], input_dtypes)
        return PredictRequest(signature_name, inputs, RequestFormat.COLUMNAR)
    raise _invalid("Missing 'inputs' or 'instances' key")


def _json_list(document: dict, key: str, not_a_list: str, empty: str) -> list:
    """document[key] as a non-empty list, else 400 with TF Serving's message for the case."""
    value = document[key]
    if not isinstance(value, list):
        raise _invalid(f"JSON Value: {_json_text(document)} {not_a_list}")
    if not value:
        raise _invalid(f"JSON Value: {_json_text(document)} {empty}")
    return value


def _tensors_from_instances(instances: list, input_dtypes: dict[str, str]) -> dict[str, np.ndarray]:
    if not isinstance(instances[0], dict) and len(input_dtypes) > 1:
        raise _invalid(
            "instances is a plain list, but expecting list of objects as multiple input "
            "tensors required as per tensorinfo_map"
        )
    named = _is_element_object(instances[0])
    first_input = next(iter(input_dtypes))
    batch = _Batch(input_dtypes)
    for index, element in enumerate(instances):
        if named:
            if not _is_element_object(element):
                raise _invalid(f"Expecting object but got list at item {index} of input list")
            for name, value in element.items():
                try:
                    batch.add(name, value)
                except ServingError as error:
                    raise ServingError(
                        error.code,
                        f"Failed to process element: {index} key: {name} of 'instances' list. "
                        f"Error: {error}",
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
                batch.add(first_input, element)
            except ServingError as error:
                raise ServingError(
                    error.code,
                    f"Failed to process element: {index} of 'instances' list. Error: {error}",
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
    for name, dtype in sorted(input_dtypes.items()):
        if name not in value:
            raise _invalid(f"Missing named input: {name} in 'inputs' object.")
        tensors[name] = _tensor(value[name], dtype)
    return tensors


class _Batch:
    """Row-format instances accumulated per input (AddInstanceItem); same size and shape."""

    def __init__(self, input_dtypes: dict[str, str]) -> None:
        self._dtypes = input_dtypes
        self._values: dict[str, list] = {}
        self._shapes: dict[str, list[int]] = {}

    def add(self, name: str, item: object) -> None:
        if name not in self._dtypes:
            raise _invalid(f"JSON object: does not have named input: {name}")
        shape = _dense_shape(item)
        values: list = []
        _fill(item, 0, shape, self._dtypes[name], values)
        if name not in self._shapes:
            self._shapes[name] = shape
            self._values[name] = values
            return
        expected = self._shapes[name]
        if math.prod(expected) != len(values):
            raise _invalid(f"Expecting tensor size: {math.prod(expected)} but got: {len(values)}")
        if expected != shape:
            raise _invalid(f"Expecting shape {_shape_text(expected)} but got: {_shape_text(shape)}")
        self._values[name].extend(values)

    def tensors(self, batch_size: int) -> dict[str, np.ndarray]:
        return {
            name: _array(values, self._dtypes[name], [batch_size, *self._shapes[name]])
            for name, values in self._values.items()
        }


def _tensor(value: object, dtype_name: str) -> np.ndarray:
    shape = _dense_shape(value)
    values: list = []
    _fill(value, 0, shape, dtype_name, values)
    return _array(values, dtype_name, shape)


def _array(values: list, dtype_name: str, shape: list[int]) -> np.ndarray:
    """The tensor Tensor::FromProto makes of the value list (integers go through their
    TensorProto field, so int8/int16/uint8 wrap around as in TF Serving)."""
    dtype = _DTYPES.get(dtype_name)
    if dtype is None:  # no leaf was converted (an empty list): an empty tensor of that type
        return np.zeros(shape, dtype=_numpy_of(dtype_name))
    if dtype.kind == "int":
        return np.array(values, dtype=dtype.wire).astype(dtype.numpy).reshape(shape)
    if dtype.kind == "float":
        with np.errstate(over="ignore"):  # beyond float range: +-inf, as a C cast
            return np.array(values, dtype=dtype.numpy).reshape(shape)
    return np.array(values, dtype=dtype.numpy).reshape(shape)


def _numpy_of(dtype_name: str) -> Any:
    import tensorflow as tf

    enum = protos.dtype_enum(dtype_name) if dtype_name.startswith("DT_") else 0
    try:
        return tf.dtypes.as_dtype(enum).as_numpy_dtype
    except TypeError:
        return object


def _dense_shape(value: object) -> list[int]:
    """Shape from the first element at each level (GetDenseTensorShape)."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill(value: object, level: int, shape: list[int], dtype_name: str, out: list) -> None:
    """Append the leaves of `value`, checking it is dense with `shape` (FillTensorProto)."""
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise _invalid(
                f"JSON Value: {_json_text(value)} found at incorrect level: {level + 1} in the "
                f"JSON DOM. Expected at level: {rank}"
            )
        out.append(_scalar(value, dtype_name))
        return
    if level >= rank:
        raise _invalid(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise _invalid(
            f"Encountered list at unexpected size: {len(value)} at level: {level} "
            f"expected size: {shape[level]}"
        )
    for item in value:
        _fill(item, level + 1, shape, dtype_name, out)


def _type_error(value: object, tf_name: str) -> ServingError:
    return _invalid(
        f"JSON Value: {_json_text(value)} Type: {_json_type(value)} is not of expected type: "
        f"{tf_name}"
    )


def _scalar(value: object, dtype_name: str) -> object:
    """One JSON leaf for a tensor of `dtype_name` (FillTensorProto / AddValueToTensor)."""
    dtype = _DTYPES.get(dtype_name)
    tf_name = dtype.tf_name if dtype else _TF_NAMES.get(dtype_name, dtype_name)
    if isinstance(value, dict):
        if dtype is None or dtype.kind != "string":
            raise _type_error(value, tf_name)
        if not _is_b64_object(value):
            raise _invalid(
                f"JSON Value: {_json_text(value)} not formatted correctly for base64 data"
            )
        return decode_base64(value["b64"])
    if dtype is None:
        raise ServingError(
            status.UNIMPLEMENTED,
            f"Conversion of JSON Value: {_json_text(value)} to type: {tf_name}",
        )
    if dtype.kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return _as_float(value)
    is_integer = isinstance(value, int) and not isinstance(value, bool)
    if dtype.kind == "int" and is_integer and dtype.low <= value <= dtype.high:  # type: ignore[operator]
        return value
    if dtype.kind == "bool" and isinstance(value, bool):
        return value
    if dtype.kind == "string" and isinstance(value, str):
        return _bytes(value)
    raise _type_error(value, tf_name)


def _as_float(value: float) -> float:
    """A JSON number as rapidjson's GetDouble (integers beyond double range become inf)."""
    try:
        return float(value)
    except OverflowError:
        return math.copysign(math.inf, value)


def _bytes(text: str) -> bytes:
    """A JSON string's bytes as sent (surrogateescape restores bytes that were not UTF-8)."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone \ud800-style escape: rapidjson rejects those too
        raise _invalid("JSON Parse error: The surrogate pair in string is invalid.") from None


def decode_base64(text: str) -> bytes:
    """absl::Base64Unescape: the standard alphabet, whitespace skipped, padding optional."""
    compact = "".join(text.split())
    stripped = compact.rstrip("=")
    if len(compact) - len(stripped) > 2:
        raise _invalid("Unable to base64 decode")
    try:
        return base64.b64decode(stripped + "=" * (-len(stripped) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _invalid("Unable to base64 decode") from None


def _shape_text(shape: list[int]) -> str:
    return "[" + ",".join(str(size) for size in shape) + "]"


# --- classify and regress requests ---------------------------------------------------------


def input_from_json(document: dict) -> tuple[str, Any]:
    """FillClassifyRegressRequestFromJson: (signature name, tensorflow.serving.Input)."""
    signature_name = signature_name_of(document)
    request_input = protos.Input()
    has_context = "context" in document
    if has_context:
        _example_from_json(document["context"], request_input.example_list_with_context.context)
    if "examples" not in document:
        raise _invalid(
            f"JSON Value: {_json_text(document)} When method is classify, key 'examples' is "
            "expected and was not found"
        )
    examples = _json_list(
        document,
        "examples",
        "Expecting 'examples' value to be an list/array",
        "'examples' value is an empty array",
    )
    for value in examples:
        target = (
            request_input.example_list_with_context.examples.add()
            if has_context
            else request_input.example_list.examples.add()
        )
        _example_from_json(value, target)
    return signature_name, request_input


def _example_from_json(value: object, example: Any) -> None:
    """MakeExampleFromJsonObject."""
    if not isinstance(value, dict):
        raise _invalid(f"Example must be JSON object but got JSON {_json_type(value)}")
    for name, content in value.items():
        feature = protos.Feature()
        for item in content if isinstance(content, list) else [content]:
            _add_to_feature(item, name, feature)
        example.features.feature[name].CopyFrom(feature)


def _add_to_feature(value: object, name: str, feature: Any) -> None:
    """AddValueToFeature: bools and integers -> int64_list, other numbers -> float_list,
    strings and b64 objects -> bytes_list; every value of a feature of one kind."""

    def check(kind: str) -> None:
        current = feature.WhichOneof("kind")
        if current is not None and current != kind:
            label = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}
            raise _invalid(
                f"Unexpected element type in feature: {name} expecting type: {label[current]}"
            )

    if (
        value is None
        or isinstance(value, list)
        or (isinstance(value, dict) and not _is_b64_object(value))
    ):
        raise _invalid(
            f"Feature: {name} has element with unexpected JSON type: {_json_type(value)}"
        )
    if isinstance(value, bool):
        check("int64_list")
        feature.int64_list.value.append(1 if value else 0)
    elif isinstance(value, dict):
        check("bytes_list")
        feature.bytes_list.value.append(decode_base64(value["b64"]))
    elif isinstance(value, str):
        check("bytes_list")
        feature.bytes_list.value.append(_bytes(value))
    elif isinstance(value, float) or value >= 2**64 or value < -(2**63):  # type: ignore[operator]
        check("float_list")  # rapidjson reads an integer beyond 64 bits as a double
        feature.float_list.value.append(_as_float(value))  # type: ignore[arg-type]
    else:
        check("int64_list")
        if value >= 2**63:  # type: ignore[operator]
            raise _invalid(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
        feature.int64_list.value.append(value)


# --- responses -----------------------------------------------------------------------------


def json_from_tensors(outputs: dict[str, np.ndarray], request_format: RequestFormat) -> str:
    """The predict response body for the request's format (MakeJsonFromTensors)."""
    if not outputs:
        raise _invalid("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    arrays = {name: np.asarray(outputs[name]) for name in names}
    texts = {name: _value_texts(name, arrays[name]) for name in names}
    if request_format is RequestFormat.COLUMNAR:
        if len(names) == 1:
            body = _nest(texts[names[0]], list(arrays[names[0]].shape))
        else:
            body = _object({name: _nest(texts[name], list(arrays[name].shape)) for name in names})
        return f'{{"outputs": {body}}}'
    batch_size = None
    for name in names:
        shape = arrays[name].shape
        if not shape:
            raise _invalid(f"Tensor name: {name} has no shape information ")
        if batch_size is not None and shape[0] != batch_size:
            raise _invalid(
                f"Tensor name: {name} has inconsistent batch size: {shape[0]} "
                f"expecting: {batch_size}"
            )
        batch_size = shape[0]
    if len(names) == 1:
        predictions = _nest(texts[names[0]], list(arrays[names[0]].shape))
    else:
        rows = []
        for row in range(batch_size or 0):
            members = {}
            for name in names:
                item_shape = list(arrays[name].shape[1:])
                step = int(np.prod(item_shape))
                members[name] = _nest(texts[name][row * step : (row + 1) * step], item_shape)
            rows.append(_object(members))
        predictions = "[" + ", ".join(rows) + "]"
    return f'{{"predictions": {predictions}}}'


def json_from_classification(result: list) -> str:
    """MakeJsonFromClassificationResult: [[[label, score], ...] per example]."""
    if not result:
        raise _invalid("Cannot convert empty ClassificationResults to JSON")
    examples = []
    for classes in result:
        pairs = [
            f"[{_string(c.label)}, {_floats(np.array([c.score], np.float32))[0]}]" for c in classes
        ]
        examples.append(f"[{', '.join(pairs)}]")
    return f'{{"results": [{", ".join(examples)}]}}'


def json_from_regression(values: list[float]) -> str:
    """MakeJsonFromRegressionResult: one value per example."""
    if not values:
        raise _invalid("Cannot convert empty RegressionResults to JSON")
    return f'{{"results": [{", ".join(_floats(np.array(values, np.float32)))}]}}'


def _object(members: dict[str, str]) -> str:
    return "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in members.items()) + "}"


def _string(value: bytes) -> str:
    return json.dumps(value.decode("utf-8", "surrogateescape"), ensure_ascii=False)


# numpy dtype -> how AddSingleValueAndAdvance writes it (anything else is an error there).
_INTEGER_KINDS = {"int8", "int16", "int32", "uint8", "int64", "uint32", "uint64"}


def _value_texts(name: str, array: np.ndarray) -> list[str]:
    """A tensor's values as JSON texts, flat in row-major order (AddSingleValueAndAdvance)."""
    if array.size == 0:
        texts: list[str] = []
    elif array.dtype.kind == "f" and array.dtype.itemsize in (4, 8):
        texts = _floats(array.ravel())
    elif array.dtype.name in _INTEGER_KINDS:
        texts = [str(v) for v in array.ravel().tolist()]
    elif array.dtype.kind == "b":
        texts = ["true" if v else "false" for v in array.ravel().tolist()]
    elif array.dtype.kind in ("O", "S"):
        if name.endswith("_bytes"):  # IsNamedTensorBytes
            texts = [f'{{"b64": "{base64.b64encode(bytes(v)).decode()}"}}' for v in array.ravel()]
        else:
            texts = [_string(bytes(v)) for v in array.ravel()]
    else:
        raise _invalid(f"Failed to write JSON value for tensor type: {_tf_type_name(array)}")
    return texts


def _nest(texts: list[str], shape: list[int]) -> str:
    """Flat value texts as nested JSON arrays of `shape` (AddTensorValues)."""
    if not shape:
        return texts[0]
    if len(shape) == 1:
        return "[" + ", ".join(texts) + "]"
    step = int(np.prod(shape[1:]))
    parts = [_nest(texts[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]
    return "[" + ", ".join(parts) + "]"


def _floats(flat: np.ndarray) -> list[str]:
    """WriteDecimal: "%g" with six digits if it reads back as the same float, else
    max_digits10 digits; ".0" added to whole numbers; NaN, Infinity, -Infinity."""
    digits = ".9g" if flat.dtype == np.float32 else ".17g"
    values = flat.tolist()
    short = [format(v, ".6g") for v in values]
    exact = np.array(short, dtype=flat.dtype) == flat
    texts = []
    for value, text, same in zip(values, short, exact.tolist(), strict=True):
        if math.isnan(value):
            texts.append("NaN")
        elif math.isinf(value):
            texts.append("Infinity" if value > 0 else "-Infinity")
        else:
            if not same:
                text = format(value, digits)
            if "." not in text and "e" not in text:
                text += ".0"
            texts.append(text)
    return texts


def _tf_type_name(array: np.ndarray) -> str:
    names = {"float16": "half", "uint16": "uint16", "complex64": "complex64"}
    return names.get(array.dtype.name, array.dtype.name)
