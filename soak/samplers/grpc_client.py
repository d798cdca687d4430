"""A small gRPC client for TF Serving: Predict and GetModelStatus, for the prober and poller.

Speaks TF Serving's gRPC API (`tensorflow.serving.PredictionService/Predict`,
`tensorflow.serving.ModelService/GetModelStatus`) to real TF Serving and to the stand-in
alike. It needs `grpcio` and `protobuf` but neither TensorFlow nor `tensorflow-serving-api`:
the few messages it uses are built from descriptors generated from that package (embedded
below) in a private descriptor pool. grpc and protobuf are imported only when a client is
created, so `soak` imports without them.

    client = GrpcClient(8500)
    outputs = client.predict("m", {"x": [[1.0], [2.0]]})   # {"y": np.array(...)}
    client.model_status("m")                               # [(2, "AVAILABLE"), (1, "END")]
"""

from __future__ import annotations

import base64
import zlib
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

        self._grpc = grpc
        self._messages = _messages()
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
        m = self._messages
        request = m.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = signature_name
        if version is not None:
            request.model_spec.version.value = version
        for alias, value in inputs.items():
            _fill_tensor(request.inputs[alias], _as_array(value), m)
        response = self._call(self._predict, request, timeout_s)
        return {alias: _array(tensor, m) for alias, tensor in response.outputs.items()}

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
                state=m.State.Name(entry.state),
                error_code=m.Code.Name(entry.status.error_code),
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


class _Messages:
    """The message classes and enums this client needs, from the embedded descriptors."""

    def __init__(self) -> None:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

        files = descriptor_pb2.FileDescriptorSet.FromString(
            zlib.decompress(base64.b64decode(_DESCRIPTOR_SET_B64))
        )
        pool = descriptor_pool.DescriptorPool()
        for file_proto in files.file:
            pool.Add(file_proto)

        def get(name: str) -> Any:
            return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))

        self.PredictRequest = get("tensorflow.serving.PredictRequest")
        self.PredictResponse = get("tensorflow.serving.PredictResponse")
        self.GetModelStatusRequest = get("tensorflow.serving.GetModelStatusRequest")
        self.GetModelStatusResponse = get("tensorflow.serving.GetModelStatusResponse")
        self.DataType = pool.FindEnumTypeByName("tensorflow.DataType")
        state = pool.FindEnumTypeByName("tensorflow.serving.ModelVersionStatus.State")
        code = pool.FindEnumTypeByName("tensorflow.error.Code")
        self.State = _EnumNames(state)
        self.Code = _EnumNames(code)


class _EnumNames:
    def __init__(self, enum: Any) -> None:
        self._names = {value.number: value.name for value in enum.values}

    def Name(self, number: int) -> str:  # noqa: N802 (protobuf's spelling)
        return self._names.get(number, str(number))


_MESSAGES: _Messages | None = None


def _messages() -> _Messages:
    global _MESSAGES
    if _MESSAGES is None:
        _MESSAGES = _Messages()
    return _MESSAGES


# numpy dtype name <-> (DataType name, TensorProto field for typed values)
_DTYPES: dict[str, tuple[str, str]] = {
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
}
_NUMPY_OF = {dtype: numpy for numpy, (dtype, _) in _DTYPES.items()}


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


def _fill_tensor(proto: Any, array: np.ndarray, m: _Messages) -> None:
    """numpy -> TensorProto: tensor_content for numbers (as tf.make_tensor_proto), string_val
    for strings."""
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    if array.dtype.kind in ("O", "S", "U"):
        proto.dtype = m.DataType.values_by_name["DT_STRING"].number
        proto.string_val.extend(
            item if isinstance(item, bytes) else str(item).encode() for item in array.ravel()
        )
        return
    if array.dtype.name not in _DTYPES:
        raise ValueError(f"cannot send a tensor of numpy type {array.dtype}")
    proto.dtype = m.DataType.values_by_name[_DTYPES[array.dtype.name][0]].number
    little_endian = array.astype(array.dtype.newbyteorder("<"), copy=False)
    proto.tensor_content = np.ascontiguousarray(little_endian).tobytes()


def _array(proto: Any, m: _Messages) -> np.ndarray:
    """TensorProto -> numpy, from tensor_content or the typed value fields (a short list is
    padded with its last value, as TensorFlow does)."""
    shape = [dim.size for dim in proto.tensor_shape.dim]
    count = int(np.prod(shape, dtype=np.int64))
    dtype_name = m.DataType.values_by_number[proto.dtype].name
    if dtype_name == "DT_STRING":
        values: Any = np.array(list(proto.string_val), dtype=object)
    else:
        numpy_name = _NUMPY_OF.get(dtype_name)
        if numpy_name is None:
            raise ValueError(f"cannot read a tensor of type {dtype_name}")
        dtype = np.dtype(numpy_name)
        if proto.tensor_content:
            return (
                np.frombuffer(proto.tensor_content, dtype=dtype.newbyteorder("<"))
                .astype(dtype)
                .reshape(shape)
            )
        field = list(getattr(proto, _DTYPES[numpy_name][1]))
        if numpy_name == "float16":
            values = np.array(field, dtype=np.uint16).view(np.float16)
        else:
            values = np.array(field, dtype=dtype)
    if values.size < count:
        fill = values[-1] if values.size else (b"" if dtype_name == "DT_STRING" else 0)
        values = np.concatenate([values, np.full(count - values.size, fill, values.dtype)])
    return values.reshape(shape)


# --- generated descriptors: begin (python -m soak_model_server.protos_gen)
_DESCRIPTOR_SET_B64 = (
    "eNq1WVtzG1kRzuhiSy3ZHo8vcZRNNqvsplIhK2MlZANLhRpZI0sbecbRSE42L1NjaSwPHmmUmZEThwUWdoF9gP9A"
    "UcULv4AfwAMUVMEzvPDIH6CKR/pcJI0U2VGy8JCKTp/uPn35uvvMMfwxArcDq+u73qHjPt9sup61eeiZHeu56x1v"
    "sh3DPzJ7Vq7nuYErwYg7+xLEOl3phGGP7n8I0Zbd2Yhci95M5a/lRty5SdZc0e5Iq5Dud4+77vOu4Znd443oNeFm"
    "IvMeRMlmGmK+/dLaEJAYJasuGoaqhZvJwi8E2HC9dviAod2F5cmz/D3hqd62g6P+Qa7pdjZDLk//2XbPi4XRdg0a"
    "jv8IwsEc/XUH/pqCD84J5WnP8qfE8NuwpFuebTroaKtYRy7pBiRaZmASCer6Yn417GYR9wjfrb8nITFYSIsAxbpR"
    "UfflaqUoXsBoJXBdqmpyXRSkBUjiqqg1ClVFjPDNilq/kxejfNXA5X0xNtrbuifGpRTMs9V9cY5r0eu1irojzksi"
    "pHG5re3uVZUn9+6KiZEsrpJctqBpVRH41iOqKcU1PWJnpgdLZtCCtAQpIkiNRysWQ/u4XOK+Umlci3ybL5elZVgY"
    "2bWVvy9K3JSyXC2JK1x9TdG1Rm1bEVe5vn25VpHVurgW0ofmrIeW6NZFSYLFQWTvG8q3dvPiBsJYDNHu7t4pqeIl"
    "aR2kSWrjqZiRLsHaOL2wtUW3Lk+IoHJKf2eUh7vilVDC7opXR1t58d3QVl68FjbrrqHkd/EU8T2eN0rFKJREi0eM"
    "wYOSDjkTDQGltDmFpoxSjkY8W/coxeahHbJ8n2tmkKGkY27UEDaU6ox0cUpngAKEDyV0OcujoXaXa380sqk3II0M"
    "fyatwFIITpTohfg4yeeJ5bCitICzhUh9aQ2Wx+BFySfcXAIxSnjOjx3AjBJf8DM41CjtNHQGN/lliMTD8YNXkUHp"
    "n0kbsDoJMrrzQykD66/Cj+79SLoCl6ZCkG7/WLo8JsphSPc+FzAPPMnMtJ8IaO4AGoz00xATs/OLMBMjfSlgIaxO"
    "4pNu/UwovDynvadIx/OHjb36NRs7UTa1o/8lBptnd3TP8t2+17SMI7PbcqbMx8wbTdbMbMMj+9sIrNT40WV6Mhu8"
    "izDXsk7sJpsZSQx3sul2A9PuWh6bmcMJGh0wHJn+kdF0W9ZGDEkx6SIsdczTA8sgBxqUN055y7DcYnHCE5nV/sYc"
    "nfEfhnM0xbBckQjK3RadxhkTkR0mSNch3nrdqJO+AXF6KHUklX/nvHvFJ7HEvJg4/4KwOGGo8HT/64FoAgzT4TQP"
    "N16HiCkoelMI/n9g9+sYpFikGdxmSlse0uETZ8ke9rnFE8vzbbdrdPudAwQvgWuc0LkuAmurG1DMpnGcJI5M59A4"
    "MZ2NBURkvBDBC88aJFG9GVByHMkRSl4HaLn9A0wQoRMAC5S+AvN2lzHPD3VIAH7g2d02pSeQnsZum/YRIj3HekGp"
    "yaFqPBFVYLsmZEBylJLRvAPXdSg1hdQEpaKaVlhNemjJd2FlEkuEYZHW2ruvqTXpI0idmHib5L4sUalsWGqfbbOw"
    "k0QNog59NB8HEJETUW5hELD+yK1lpMcGsaHxvU/pEslEtg3rZ2jHVjPqKKw9iZDoWIFJLroUFmnpJswzO33MOLH7"
    "4qs4oeoKn51T2ekQIxkOu/+TW/+0cv55DK62XbftWJuUctA/3Hzumb0eopeX8RLbzw32s9dxKlL87ZtO30JwxE/I"
    "DxoTocYW2SxAicR2Ck8kxFMhaZnCEx3w4GGNs5hi44ru5KfwxCcUTWVaGDC9B8kCAn0KSyKkR6cFNYUpGTKocBpY"
    "/hSeNOcpfCHACiY0NxHewsJjHn+afsz+Fudou47ZbecQNaNc0e62Sb89h3nrHWCGfxOJ7uwVfhe5usOE97hE7rHl"
    "OA8JP71/DIHwbwGuj0Bk+JZ3gj5umj3b3+zgcHU4GqQQYDlT5jUIyv5SgOQu0aH3rOZwgLMSysE875S8sV6eDEhu"
    "lP7yBZzuC4PO6pgHlkMbaBI3sLX6drtrBn2P1yi9IRTEUStuHrl4tShEwwXwq8XwB++43z3PatnN4BzPZxyFmVlC"
    "m/1DAhb32JE161nf8gNpC4ByGD5GjkYslb+Se9WQ3Ci8D2DO7vb6gc+fL3LT2MePwQgTAaUbeKc4AhbcfoBr49B2"
    "Ajq5opinKmzwcBg4Tyz0smW4vQDD6tPrVSp/65yDdC6iMQlMVrLp2Dj/DLuFEwyronzhK0GQNFjymE1D5fNU+dYM"
    "XvD/+RllARVmSpAKO5eC6LF1yqF3Y1CWDHhndervRO4Lmc/jsDiuf9wHYeRDC6SWhYHr2F3bD+ymQTJIz1jMb7+x"
    "G7liWBdJM3UMbyUfeBZivWuYrZZNWE3HMD3PPPWNQ8/tYKu3MIEOe4wqR4jMJVjmMn6A4XWP0RasH5zyUhbWBuoc"
    "J7ydpOJRIn4FxI75wmiazSPLcKxuOziiuYuWY2RbJ1fxbgsvSccWXmJISD9+c3fLAxXlOMnfbUgOKdK7cBE57Y4Z"
    "IPh65inOl5ZxQPosmxlZDb9qJ8OFrl0tKnWltltRK3q9sm3sakXFaKj6nrJdKVUU8tCE36WlyhOlaBSVbdytGXpV"
    "q4tCIQ1gDJNcWIMV49XUFm7CDWOmXBQ2YN2YGubCCiwbk8Glpw9DOmGLBKIxUSr4zRAT49l/RGD9jLJTYWEg4wcY"
    "RX7v/Wj2yh2kSyfi0qcg+j3HDoyW3UENtF5Z1/neG6jUiYriUAOr1KuwPsAqiuIFEi+UPdy1+OvqPVidKjdW4Qvh"
    "Co+TQs4+gPSYCwmIqZqqIAaSENf3qhX+0qioRYMtI3hNnNuW1W2lKkazfxNgaYhgZtFEl47M0qVlmGddlkCXBOyb"
    "55YKOyinMRHqaWYH0uH1W/e28Xn4+xhkXzjmZuA7o3lueR79ZGkNX3/FkD66e+vLKMS2Sb3NQUR7iPHEILKoVbHE"
    "BPLC11AfqtpjFSO6CiJ/5TXk2k5jV1HrYpQ+SilysVpRFUN5sq0oRZSMEUWqVjdKWkMtinHy+iRXa8j3KTJhRevi"
    "HJHcIxWu6xVNxSJWSVnPk9erhio36mXUX9mW60gUSa0P37OUJ2W5oRN6Am8WKyW5gsYaezXsAmqxUkdl7AlYLmg1"
    "wgXk/U5r1A2tZNRkdUcRU+SZq6FWyEMacQOZ0uQBs4I/a6pcZS/BaMU+6pbJyzV7CZbrslHVdF1ckh7CTlEziIsN"
    "nTyx6UptH60oaTWj1Kg3asTMPVmlrhGOolKSG1XyLmXojyv17TL+Qh/koiGuFp6d81khKiRTJEmjd6cHoU8Lfo0j"
    "qSf/8ENiiIBDmn+8WVHK9JemPwtwa/I+dA6E1ichlGv1O53TzAzwKzx+2nibT6LXurN3YejNPwV4/6xbG2meff+c"
    "e+EbxCF7TD4oiD72mXkPYMTDG/R67pVYkSzWQpzS+7DAVh3L9802/xNTbZw4Xut/ikHuLBfbVmDwpvY6Z2e53GZm"
    "imX2E1jbsQLWJin97S/C2X8JINHVPrv+M4VYjcMPDvYnuY8hzoYhu6LdPlPrmJ4cGx+bMMccoGNp4nFjIB1Kb1bH"
    "KUMlQ/2QzZ66XKtjg0F6VZOL5K9Tq6RTjBrHVbJsqIPdm9I8RHFMiflsAOuTYeOj6SmssrgNvoG4tWzo3JjN19pU"
    "HWNY+i/szBUM"
)
# --- generated descriptors: end
