"""TF Serving's protobuf messages (tensorflow_serving/apis/*.proto), without its Python package.

The official `tensorflow-serving-api` wheel depends on the full `tensorflow` package, which
would install a second TensorFlow next to `tensorflow-cpu`. So the stand-in ships the
*descriptors* of TF Serving's API files (and of the TensorFlow files they import), generated
once from that wheel by `python -m soak_model_server.protos_gen`, and builds the message
classes at import time in a private descriptor pool. Same package, names and field numbers as
upstream, so they are wire-compatible with the official client; the private pool means they
never clash with the real generated modules should those be imported in the same process.
Only `protobuf` is needed at run time, and no generated code is tied to a protobuf version.

Tensor helpers convert between numpy and `tensorflow.TensorProto` as TF Serving does:
requests are read like `Tensor::FromProto` (a short value list is padded with its last
value), responses are written like `Tensor::AsProtoField` (typed `*_val` fields).
"""

from __future__ import annotations

import base64
import zlib
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from soak_model_server._proto_descriptors import DESCRIPTOR_SET_B64


def _load_pool() -> descriptor_pool.DescriptorPool:
    files = descriptor_pb2.FileDescriptorSet.FromString(
        zlib.decompress(base64.b64decode(DESCRIPTOR_SET_B64))
    )
    pool = descriptor_pool.DescriptorPool()
    for file_proto in files.file:  # stored in dependency order
        pool.Add(file_proto)
    return pool


POOL = _load_pool()


def message_class(full_name: str) -> Any:
    """The message class for a full proto name, e.g. "tensorflow.serving.PredictRequest"."""
    return message_factory.GetMessageClass(POOL.FindMessageTypeByName(full_name))


_S = "tensorflow.serving."
PredictRequest = message_class(_S + "PredictRequest")
PredictResponse = message_class(_S + "PredictResponse")
ClassificationRequest = message_class(_S + "ClassificationRequest")
ClassificationResponse = message_class(_S + "ClassificationResponse")
RegressionRequest = message_class(_S + "RegressionRequest")
RegressionResponse = message_class(_S + "RegressionResponse")
GetModelMetadataRequest = message_class(_S + "GetModelMetadataRequest")
GetModelMetadataResponse = message_class(_S + "GetModelMetadataResponse")
SignatureDefMap = message_class(_S + "SignatureDefMap")
GetModelStatusRequest = message_class(_S + "GetModelStatusRequest")
GetModelStatusResponse = message_class(_S + "GetModelStatusResponse")
ModelVersionStatus = message_class(_S + "ModelVersionStatus")
MonitoringConfig = message_class(_S + "MonitoringConfig")
Input = message_class(_S + "Input")
SignatureDef = message_class("tensorflow.SignatureDef")
TensorProto = message_class("tensorflow.TensorProto")
Example = message_class("tensorflow.Example")
Feature = message_class("tensorflow.Feature")

_DATA_TYPE = POOL.FindEnumTypeByName("tensorflow.DataType")
_ERROR_CODE = POOL.FindEnumTypeByName("tensorflow.error.Code")
_VERSION_STATE = POOL.FindEnumTypeByName(_S + "ModelVersionStatus.State")


def dtype_enum(name: str) -> int:
    """DataType number of a name such as "DT_FLOAT"."""
    return _DATA_TYPE.values_by_name[name].number


def dtype_name(number: int) -> str:
    value = _DATA_TYPE.values_by_number.get(number)
    return value.name if value is not None else str(number)


def error_code_enum(name: str) -> int:
    """tensorflow.error.Code number of a canonical code name such as "NOT_FOUND"."""
    return _ERROR_CODE.values_by_name[name].number


def error_code_name(number: int) -> str:
    value = _ERROR_CODE.values_by_number.get(number)
    return value.name if value is not None else str(number)


def version_state_name(number: int) -> str:
    value = _VERSION_STATE.values_by_number.get(number)
    return value.name if value is not None else str(number)


def version_state_enum(name: str) -> int:
    """ModelVersionStatus.State number of a state name such as "AVAILABLE"."""
    return _VERSION_STATE.values_by_name[name].number


# --- tensors -------------------------------------------------------------------------------

# numpy dtype -> (DataType name, TensorProto value field) as Tensor::AsProtoField writes them.
DTYPE_FIELDS: dict[str, tuple[str, str]] = {
    "float32": ("DT_FLOAT", "float_val"),
    "float64": ("DT_DOUBLE", "double_val"),
    "int32": ("DT_INT32", "int_val"),
    "int16": ("DT_INT16", "int_val"),
    "int8": ("DT_INT8", "int_val"),
    "uint8": ("DT_UINT8", "int_val"),
    "uint16": ("DT_UINT16", "int_val"),
    "int64": ("DT_INT64", "int64_val"),
    "uint32": ("DT_UINT32", "uint32_val"),
    "uint64": ("DT_UINT64", "uint64_val"),
    "bool": ("DT_BOOL", "bool_val"),
    "float16": ("DT_HALF", "half_val"),
    "complex64": ("DT_COMPLEX64", "scomplex_val"),
    "complex128": ("DT_COMPLEX128", "dcomplex_val"),
}


def tensor_proto_from_array(array: np.ndarray, out: Any = None) -> Any:
    """A TensorProto with typed value fields (Tensor::AsProtoField); fills `out` if given."""
    proto = TensorProto() if out is None else out
    array = np.asarray(array)
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    if array.dtype.kind in ("O", "S", "U"):
        proto.dtype = dtype_enum("DT_STRING")
        proto.string_val.extend(
            item if isinstance(item, bytes) else str(item).encode() for item in array.ravel()
        )
        return proto
    name, field = DTYPE_FIELDS.get(array.dtype.name, ("", ""))
    if not name:
        raise ValueError(f"cannot write a tensor of numpy type {array.dtype}")
    proto.dtype = dtype_enum(name)
    flat = array.ravel()
    if field == "half_val":
        values: list = flat.view(np.uint16).tolist()
    elif field in ("scomplex_val", "dcomplex_val"):
        values = np.stack([flat.real, flat.imag], axis=-1).ravel().tolist()
    else:
        values = flat.tolist()
    getattr(proto, field).extend(values)
    return proto


def array_from_tensor_proto(proto: Any) -> np.ndarray:
    """The numpy value of a TensorProto, as Tensor::FromProto reads it (ValueError if it
    cannot be parsed)."""
    import tensorflow as tf  # the server always has it; keep this module importable without

    # tf.make_ndarray reads the fields by name, so a message of our private pool works as is;
    # it pads a short value list with its last value, as Tensor::FromProto does.
    try:
        return tf.make_ndarray(proto)
    except (TypeError, ValueError, KeyError, IndexError) as error:
        raise ValueError(str(error)) from None
