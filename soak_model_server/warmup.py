"""TF Serving's SavedModel warmup file: a TFRecord of `tensorflow.serving.PredictionLog`.

The file lives at `VERSION_DIR/assets.extra/tf_serving_warmup_requests`; TF Serving replays each
record against the freshly loaded session before it marks the version AVAILABLE. We read and
write exactly that format so real TF Serving reads what we write and we read real files.

`tensorflow-serving-api` cannot be installed next to `tensorflow-cpu` (it pulls in the full
`tensorflow` package), so the few messages we need are declared here from the upstream .proto
files (tensorflow_serving/apis/{prediction_log,predict,model}.proto), with the same package,
names and field numbers. They live in a private descriptor pool so they never clash with the
real generated classes should those be imported in the same process.

Reading mirrors TF Serving's `RunSavedModelWarmup` (servables/tensorflow/saved_model_warmup*.cc):
- no file: no warmup;
- a record that is not a PredictionLog, or a file that is not a TFRecord: error;
- more than 1000 records: error (TF Serving fails the load, it does not truncate);
- `session_run_log`: error (TF Serving: "Unsupported log_type for warmup");
- a record with no log type set: ignored, as TF Serving does;
- `classify_log`, `regress_log`, `multi_inference_log`, `predict_streamed_log`: skipped with a
  warning. TF Serving runs the first three through tf.Example signatures, which the stand-in
  does not serve; skipping them keeps such a model loadable.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2
from google.protobuf.message import DecodeError
from tensorflow.core.framework import tensor_pb2
from tensorflow.python.util import deprecation

WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000
DEFAULT_SIGNATURE = "serving_default"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WarmupRequest:
    """One predict request to replay: signature name and input tensors by alias."""

    signature_name: str
    inputs: dict[str, np.ndarray]


# --- message classes -------------------------------------------------------------------------

_F = descriptor_pb2.FieldDescriptorProto
_PROTO_FILE = "tensorflow_serving/apis/prediction_log.proto"
# Log types of PredictionLog that we keep opaque (declared as bytes: the same wire type as a
# message, so they parse and we can tell which one is set without declaring their contents).
_OPAQUE_LOG_TYPES = {
    "classify_log": 2,
    "regress_log": 3,
    "multi_inference_log": 4,
    "session_run_log": 5,
    "predict_streamed_log": 7,
}


def _field(
    message: descriptor_pb2.DescriptorProto,
    name: str,
    number: int,
    field_type: int,
    type_name: str = "",
    label: int = _F.LABEL_OPTIONAL,
    oneof_index: int | None = None,
) -> None:
    field = message.field.add(name=name, number=number, type=field_type, label=label)
    if type_name:
        field.type_name = type_name
    if oneof_index is not None:
        field.oneof_index = oneof_index


def _tensor_map(message: descriptor_pb2.DescriptorProto, name: str, number: int) -> None:
    """Declare `map<string, tensorflow.TensorProto> name = number;`."""
    entry_name = "".join(part.capitalize() for part in name.split("_")) + "Entry"
    entry = message.nested_type.add(name=entry_name)
    entry.options.map_entry = True
    _field(entry, "key", 1, _F.TYPE_STRING)
    _field(entry, "value", 2, _F.TYPE_MESSAGE, ".tensorflow.TensorProto")
    _field(
        message,
        name,
        number,
        _F.TYPE_MESSAGE,
        f".tensorflow.serving.{message.name}.{entry_name}",
        label=_F.LABEL_REPEATED,
    )


def _serving_file() -> descriptor_pb2.FileDescriptorProto:
    """The subset of TF Serving's protos that warmup needs, field numbers as upstream."""
    proto = descriptor_pb2.FileDescriptorProto(
        name=_PROTO_FILE,
        package="tensorflow.serving",
        syntax="proto3",
        dependency=[tensor_pb2.DESCRIPTOR.name, wrappers_pb2.DESCRIPTOR.name],
    )
    spec = proto.message_type.add(name="ModelSpec")  # model.proto
    spec.oneof_decl.add(name="version_choice")
    _field(spec, "name", 1, _F.TYPE_STRING)
    _field(spec, "version", 2, _F.TYPE_MESSAGE, ".google.protobuf.Int64Value", oneof_index=0)
    _field(spec, "signature_name", 3, _F.TYPE_STRING)
    _field(spec, "version_label", 4, _F.TYPE_STRING, oneof_index=0)

    request = proto.message_type.add(name="PredictRequest")  # predict.proto
    _field(request, "model_spec", 1, _F.TYPE_MESSAGE, ".tensorflow.serving.ModelSpec")
    _tensor_map(request, "inputs", 2)
    _field(request, "output_filter", 3, _F.TYPE_STRING, label=_F.LABEL_REPEATED)

    response = proto.message_type.add(name="PredictResponse")  # predict.proto
    _tensor_map(response, "outputs", 1)
    _field(response, "model_spec", 2, _F.TYPE_MESSAGE, ".tensorflow.serving.ModelSpec")

    predict_log = proto.message_type.add(name="PredictLog")  # prediction_log.proto
    _field(predict_log, "request", 1, _F.TYPE_MESSAGE, ".tensorflow.serving.PredictRequest")
    _field(predict_log, "response", 2, _F.TYPE_MESSAGE, ".tensorflow.serving.PredictResponse")

    # PredictionLog.log_metadata (1) is left undeclared: it is kept as an unknown field.
    prediction_log = proto.message_type.add(name="PredictionLog")
    prediction_log.oneof_decl.add(name="log_type")
    _field(
        prediction_log,
        "predict_log",
        6,
        _F.TYPE_MESSAGE,
        ".tensorflow.serving.PredictLog",
        oneof_index=0,
    )
    for name, number in _OPAQUE_LOG_TYPES.items():
        _field(prediction_log, name, number, _F.TYPE_BYTES, oneof_index=0)
    return proto


def _add_with_dependencies(pool: descriptor_pool.DescriptorPool, file_descriptor) -> None:
    for dependency in file_descriptor.dependencies:
        _add_with_dependencies(pool, dependency)
    try:
        pool.FindFileByName(file_descriptor.name)
    except KeyError:
        proto = descriptor_pb2.FileDescriptorProto()
        file_descriptor.CopyToProto(proto)
        pool.Add(proto)


def _build_classes() -> dict[str, type]:
    pool = descriptor_pool.DescriptorPool()
    _add_with_dependencies(pool, tensor_pb2.DESCRIPTOR)
    _add_with_dependencies(pool, wrappers_pb2.DESCRIPTOR)
    pool.Add(_serving_file())
    names = ["ModelSpec", "PredictRequest", "PredictResponse", "PredictLog", "PredictionLog"]
    return {
        name: message_factory.GetMessageClass(
            pool.FindMessageTypeByName(f"tensorflow.serving.{name}")
        )
        for name in names
    }


_CLASSES = _build_classes()
ModelSpec = _CLASSES["ModelSpec"]
PredictRequest = _CLASSES["PredictRequest"]
PredictResponse = _CLASSES["PredictResponse"]
PredictLog = _CLASSES["PredictLog"]
PredictionLog = _CLASSES["PredictionLog"]


# --- reading and writing ---------------------------------------------------------------------


def warmup_path(version_dir: Path) -> Path:
    return Path(version_dir) / WARMUP_FILE


def read_warmup_requests(version_dir: Path) -> list[WarmupRequest]:
    """The predict requests of a version's warmup file ([] if it has none).

    Raises ValueError with a one-line message when TF Serving would fail the load.
    """
    path = warmup_path(version_dir)
    if not path.is_file():
        return []
    requests: list[WarmupRequest] = []
    skipped: dict[str, int] = {}
    for index, record in enumerate(_records(path)):
        if index >= MAX_WARMUP_RECORDS:
            raise ValueError(
                f"number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {path}"
            )
        prediction_log = PredictionLog()
        try:
            prediction_log.ParseFromString(record)
        except DecodeError:
            raise ValueError(f"failed to parse warmup record {index} of {path}") from None
        log_type = prediction_log.WhichOneof("log_type")
        if log_type == "predict_log":
            requests.append(_from_predict_request(prediction_log.predict_log.request, path))
        elif log_type == "session_run_log":
            raise ValueError(f"unsupported log_type for warmup: session_run_log in {path}")
        elif log_type is not None:
            skipped[log_type] = skipped.get(log_type, 0) + 1
    if skipped:
        log.warning("warmup %s: skipped records the stand-in cannot replay: %s", path, skipped)
    return requests


def write_warmup_requests(
    version_dir: Path, model_name: str, requests: list[WarmupRequest]
) -> Path:
    """Write `requests` as the version's warmup file (replacing any); return its path."""
    path = warmup_path(version_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for request in requests:
            writer.write(_to_prediction_log(model_name, request).SerializeToString())
    return path


def _records(path: Path) -> Iterator[bytes]:
    """Records of a TFRecord file, read lazily; a corrupt file is a ValueError.

    tf_record_iterator works in graph and eager mode alike (tf.data needs eager); its
    deprecation notice would only add noise to the server log.
    """
    with deprecation.silence():
        records = tf.compat.v1.io.tf_record_iterator(str(path))
    try:
        yield from records
    except tf.errors.OpError as error:
        reason = error.message.splitlines()[0] if error.message else type(error).__name__
        raise ValueError(f"{path} is not a valid TFRecord file: {reason}") from None


def _to_prediction_log(model_name: str, request: WarmupRequest):
    predict_request = PredictRequest()
    predict_request.model_spec.name = model_name
    predict_request.model_spec.signature_name = request.signature_name
    for alias, array in request.inputs.items():
        tensor = tf.make_tensor_proto(np.asarray(array))
        # Same message, different descriptor pool: hand it over as bytes.
        predict_request.inputs[alias].ParseFromString(tensor.SerializeToString())
    prediction_log = PredictionLog()
    prediction_log.predict_log.request.CopyFrom(predict_request)
    return prediction_log


def _from_predict_request(predict_request, path: Path) -> WarmupRequest:
    inputs: dict[str, np.ndarray] = {}
    for alias, tensor in predict_request.inputs.items():
        try:
            inputs[alias] = tf.make_ndarray(
                tensor_pb2.TensorProto.FromString(tensor.SerializeToString())
            )
        except (TypeError, ValueError) as error:
            raise ValueError(f"bad tensor {alias!r} in warmup file {path}: {error}") from None
    signature = predict_request.model_spec.signature_name or DEFAULT_SIGNATURE
    return WarmupRequest(signature_name=signature, inputs=inputs)
