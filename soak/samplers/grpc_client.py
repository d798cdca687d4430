"""A small gRPC client for TF Serving: Predict and GetModelStatus, for the prober and poller.

Speaks TF Serving's gRPC API (`tensorflow.serving.PredictionService/Predict`,
`tensorflow.serving.ModelService/GetModelStatus`) to real TF Serving and to the stand-in
alike. It needs `grpcio` and `protobuf` but neither TensorFlow nor `tensorflow-serving-api`:
the messages are the stand-in's (`soak_model_server.protos`: TF Serving's descriptors in a
private pool, no TensorFlow). grpc and protobuf are imported only when a client is created.

    client = GrpcClient(8500)
    outputs = client.predict("m", {"x": [[1.0], [2.0]]})   # {"y": np.array(...)}
    client.model_status("m")                               # [(2, "AVAILABLE"), (1, "END")]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
STATUS_METHOD = "/tensorflow.serving.ModelService/GetModelStatus"
# TF Serving accepts messages up to 2 GiB; so does this client.
_MAX_MESSAGE = 2**31 - 1


class GrpcCallError(Exception):
    """A failed call: `code` is the gRPC status name (e.g. "NOT_FOUND"), `details` its text."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details


@dataclass(frozen=True)
class VersionState:
    """One ModelVersionStatus of GetModelStatus."""

    version: int
    state: str  # START, LOADING, AVAILABLE, UNLOADING, END
    error_code: str  # "OK" unless the version failed
    error_message: str


class GrpcClient:
    """One channel to a TF Serving gRPC port; thread-safe, reuse it for every request."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout_s: float = 10.0) -> None:
        import grpc  # lazily: soak without grpcio still imports

        from soak_model_server import protos  # protobuf only, no TensorFlow

        self._grpc = grpc
        self._messages = protos
        self.target = f"{host}:{port}"
        self.timeout_s = timeout_s
        self._channel = grpc.insecure_channel(
            self.target,
            options=[
                ("grpc.max_send_message_length", _MAX_MESSAGE),
                ("grpc.max_receive_message_length", _MAX_MESSAGE),
            ],
        )
        m = self._messages
        self._predict = self._channel.unary_unary(
            PREDICT_METHOD,
            request_serializer=m.PredictRequest.SerializeToString,
            response_deserializer=m.PredictResponse.FromString,
        )
        self._status = self._channel.unary_unary(
            STATUS_METHOD,
            request_serializer=m.GetModelStatusRequest.SerializeToString,
            response_deserializer=m.GetModelStatusResponse.FromString,
        )

    def predict(
        self,
        model_name: str,
        inputs: Mapping[str, Any],
        signature_name: str = "",
        version: int | None = None,
        timeout_s: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Run Predict; outputs by alias. GrpcCallError on failure.

        Inputs are numpy arrays (sent with their dtype) or anything numpy can turn into one;
        plain Python values are typed as tf.make_tensor_proto types them, as clients of the
        official API do: floats as float32, integers as int32 if they fit, str/bytes as
        DT_STRING."""
        request = self.predict_request(model_name, inputs, signature_name, version)
        response = self.send_predict(request, timeout_s)
        return {alias: _array(tensor, self._messages) for alias, tensor in response.outputs.items()}

    def predict_request(
        self,
        model_name: str,
        inputs: Mapping[str, Any],
        signature_name: str = "",
        version: int | None = None,
    ) -> Any:
        """A PredictRequest, built once and sent many times (the prober's)."""
        m = self._messages
        request = m.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = signature_name
        if version is not None:
            request.model_spec.version.value = version
        for alias, value in inputs.items():
            _fill_tensor(request.inputs[alias], _as_array(value), m)
        return request

    def send_predict(self, request: Any, timeout_s: float | None = None) -> Any:
        """Send a built PredictRequest; the PredictResponse message. GrpcCallError on failure."""
        return self._call(self._predict, request, timeout_s)

    def model_version_status(
        self, model_name: str, version: int | None = None, timeout_s: float | None = None
    ) -> list[VersionState]:
        """GetModelStatus: every version the server knows of (newest first), or one."""
        m = self._messages
        request = m.GetModelStatusRequest()
        request.model_spec.name = model_name
        if version is not None:
            request.model_spec.version.value = version
        response = self._call(self._status, request, timeout_s)
        return [
            VersionState(
                version=entry.version,
                state=m.version_state_name(entry.state),
                error_code=m.error_code_name(entry.status.error_code),
                error_message=entry.status.error_message,
            )
            for entry in response.model_version_status
        ]

    def model_status(
        self, model_name: str, version: int | None = None, timeout_s: float | None = None
    ) -> list[tuple[int, str]]:
        """(version, state) pairs of GetModelStatus, e.g. [(2, "AVAILABLE"), (1, "END")]."""
        return [
            (entry.version, entry.state)
            for entry in self.model_version_status(model_name, version, timeout_s)
        ]

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> GrpcClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: Any, request: Any, timeout_s: float | None) -> Any:
        try:
            return method(request, timeout=timeout_s or self.timeout_s)
        except self._grpc.RpcError as error:
            code = error.code() if hasattr(error, "code") else None
            details = error.details() if hasattr(error, "details") else str(error)
            raise GrpcCallError(code.name if code else "UNKNOWN", details or "") from None


# --- messages and tensors ------------------------------------------------------------------


def _numpy_of(m: Any, dtype_name: str) -> str | None:
    """The numpy type of a DataType name (`protos.DTYPE_FIELDS` read backwards)."""
    return next((n for n, (d, _) in m.DTYPE_FIELDS.items() if d == dtype_name), None)


def _as_array(value: Any) -> np.ndarray:
    """An input as an array; Python values typed as tf.make_tensor_proto does."""
    if isinstance(value, (np.ndarray, np.generic)):
        return np.asarray(value)
    array = np.asarray(value)
    if array.dtype == np.float64:
        return array.astype(np.float32)
    if array.dtype == np.int64 and (
        array.size == 0 or (array.min() >= -(2**31) and array.max() < 2**31)
    ):
        return array.astype(np.int32)
    return array


def _fill_tensor(proto: Any, array: np.ndarray, m: Any) -> None:
    """numpy -> TensorProto: tensor_content for numbers (as tf.make_tensor_proto), string_val
    for strings."""
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    if array.dtype.kind in ("O", "S", "U"):
        proto.dtype = m.dtype_enum("DT_STRING")
        proto.string_val.extend(
            item if isinstance(item, bytes) else str(item).encode() for item in array.ravel()
        )
        return
    if array.dtype.name not in m.DTYPE_FIELDS or array.dtype.kind == "c":
        raise ValueError(f"cannot send a tensor of numpy type {array.dtype}")
    proto.dtype = m.dtype_enum(m.DTYPE_FIELDS[array.dtype.name][0])
    little_endian = array.astype(array.dtype.newbyteorder("<"), copy=False)
    proto.tensor_content = np.ascontiguousarray(little_endian).tobytes()


def _array(proto: Any, m: Any) -> np.ndarray:
    """TensorProto -> numpy, from tensor_content or the typed value fields (a short list is
    padded with its last value, as TensorFlow does)."""
    shape = [dim.size for dim in proto.tensor_shape.dim]
    count = int(np.prod(shape, dtype=np.int64))
    dtype_name = m.dtype_name(proto.dtype)
    if dtype_name == "DT_STRING":
        values: Any = np.array(list(proto.string_val), dtype=object)
    else:
        numpy_name = _numpy_of(m, dtype_name)
        if numpy_name is None or np.dtype(numpy_name).kind == "c":
            raise ValueError(f"cannot read a tensor of type {dtype_name}")
        dtype = np.dtype(numpy_name)
        if proto.tensor_content:
            return (
                np.frombuffer(proto.tensor_content, dtype=dtype.newbyteorder("<"))
                .astype(dtype)
                .reshape(shape)
            )
        field = list(getattr(proto, m.DTYPE_FIELDS[numpy_name][1]))
        if numpy_name == "float16":
            values = np.array(field, dtype=np.uint16).view(np.float16)
        else:
            values = np.array(field, dtype=dtype)
    if values.size < count:
        fill = values[-1] if values.size else (b"" if dtype_name == "DT_STRING" else 0)
        values = np.concatenate([values, np.full(count - values.size, fill, values.dtype)])
    return values.reshape(shape)
