"""TF Serving's gRPC API on --port: PredictionService and ModelService.GetModelStatus.

Method paths, messages and status codes are TF Serving's (prediction_service_impl.cc,
model_service_impl.cc, get_model_status_impl.cc, get_model_metadata_impl.cc), so the official
`tensorflow-serving-api` client works unchanged. Messages come from `protos` (TF Serving's
descriptors in a private pool); no generated gRPC code is needed: the handlers are registered
as generic handlers under the services' full names. MultiInference and the
HandleReloadConfigRequest of ModelService are UNIMPLEMENTED (the stand-in serves one model
from flags). Predict, Classify and Regress are counted in :tensorflow:serving:request_count
and timed in request_latency (entrypoint "GRPC"), as in TF Serving.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from google.protobuf import any_pb2

from soak_model_server import inference, metrics, protos, status
from soak_model_server.manager import Manager
from soak_model_server.servable import serving_error_from
from soak_model_server.status import ServingError

log = logging.getLogger(__name__)

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
SIGNATURE_DEF_FIELD = "signature_def"  # GetModelMetadataImpl::kSignatureDef
_MAX_MESSAGE = 2**31 - 1  # builder.SetMaxMessageSize(INT32_MAX)


def _spec(model_spec: Any) -> tuple[str, int | None, str | None]:
    """(name, version, label) of a ModelSpec."""
    choice = model_spec.WhichOneof("version_choice")
    version = model_spec.version.value if choice == "version" else None
    label = model_spec.version_label if choice == "version_label" else None
    return model_spec.name, version, label


def _timeout_ms(context: grpc.ServicerContext) -> int:
    """DeadlineToTimeoutMillis (--enforce_session_run_timeout, on by default): the call's
    deadline as the session run timeout; 0 (none) for a call without a deadline."""
    remaining = context.time_remaining()
    if remaining is None or remaining > 2**31 / 1000:
        return 0
    return max(1, int(remaining * 1000))


def _set_model_spec(spec: Any, name: str, signature_name: str | None, version: int) -> None:
    """MakeModelSpec."""
    spec.Clear()
    spec.name = name
    if signature_name is not None:
        spec.signature_name = signature_name
    spec.version.value = version


class GrpcApi:
    """The services' methods: request message -> response message, or ServingError."""

    def __init__(self, manager: Manager, cpu_ms_per_request: float = 0.0) -> None:
        self._manager = manager
        self._cpu_ms_per_request = cpu_ms_per_request  # --debug_cpu_ms_per_request

    def predict(self, request: Any, context: grpc.ServicerContext) -> Any:
        inference.burn_thread_cpu(self._cpu_ms_per_request)
        name, version, label = _spec(request.model_spec)
        with self._manager.lease(name, version, label) as servable:
            inputs = {}
            for alias, tensor in request.inputs.items():
                try:
                    inputs[alias] = protos.array_from_tensor_proto(tensor)
                except ValueError:
                    raise ServingError(
                        status.INVALID_ARGUMENT, f"tensor parsing error: {alias}"
                    ) from None
            signature_name, outputs = inference.predict(
                servable,
                name,
                request.model_spec.signature_name,
                inputs,
                list(request.output_filter),
                _timeout_ms(context),
            )
            response = protos.PredictResponse()
            _set_model_spec(response.model_spec, name, signature_name, servable.version)
        for alias, value in outputs.items():
            try:
                protos.tensor_proto_from_array(value, response.outputs[alias])
            except ValueError as error:
                raise ServingError(status.INTERNAL, str(error)) from None
        return response

    def classify(self, request: Any, context: grpc.ServicerContext) -> Any:
        name, version, label = _spec(request.model_spec)
        with self._manager.lease(name, version, label) as servable:
            signature_name, classes = inference.classify(
                servable,
                name,
                request.model_spec.signature_name,
                request.input,
                _timeout_ms(context),
            )
            response = protos.ClassificationResponse()
            _set_model_spec(response.model_spec, name, signature_name, servable.version)
        for example in classes:
            classifications = response.result.classifications.add()
            for item in example:
                classifications.classes.add(label=item.label, score=item.score)
        return response

    def regress(self, request: Any, context: grpc.ServicerContext) -> Any:
        name, version, label = _spec(request.model_spec)
        with self._manager.lease(name, version, label) as servable:
            signature_name, values = inference.regress(
                servable,
                name,
                request.model_spec.signature_name,
                request.input,
                _timeout_ms(context),
            )
            response = protos.RegressionResponse()
            _set_model_spec(response.model_spec, name, signature_name, servable.version)
        for value in values:
            response.result.regressions.add(value=value)
        return response

    def get_model_metadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        if not request.HasField("model_spec"):
            raise ServingError(status.INVALID_ARGUMENT, "Missing ModelSpec")
        if not request.metadata_field:
            raise ServingError(
                status.INVALID_ARGUMENT,
                "GetModelMetadataRequest must specify at least one metadata_field",
            )
        for field in request.metadata_field:
            if field != SIGNATURE_DEF_FIELD:
                raise ServingError(
                    status.INVALID_ARGUMENT, f"Metadata field {field} is not supported"
                )
        name, version, label = _spec(request.model_spec)
        response = protos.GetModelMetadataResponse()
        with self._manager.lease(name, version, label) as servable:
            signature_map = protos.SignatureDefMap()
            for key, signature in servable.signature_defs().items():
                signature_map.signature_def[key].ParseFromString(signature.SerializeToString())
            response.model_spec.name = servable.name
            response.model_spec.version.value = servable.version
        packed = any_pb2.Any()
        packed.Pack(signature_map)
        response.metadata[SIGNATURE_DEF_FIELD].ParseFromString(packed.SerializeToString())
        return response

    def get_model_status(self, request: Any, context: grpc.ServicerContext) -> Any:
        if not request.HasField("model_spec"):
            raise ServingError(status.INVALID_ARGUMENT, "Missing ModelSpec")
        name, version, _ = _spec(request.model_spec)  # a label is ignored, as in TF Serving
        response = protos.GetModelStatusResponse()
        for entry in self._manager.version_statuses(name, version):
            version_status = response.model_version_status.add()
            version_status.version = entry.version
            version_status.state = protos.version_state_enum(entry.state.value)
            version_status.status.error_code = protos.error_code_enum(entry.error_code)
            version_status.status.error_message = entry.error_message
        return response


def _unary(
    method: Callable[[Any, grpc.ServicerContext], Any],
    request_class: Any,
    response_class: Any,
    api_name: str | None = None,
) -> grpc.RpcMethodHandler:
    """A unary handler that maps ServingError to TF Serving's gRPC status (ToGRPCStatus) and,
    for the inference APIs, records the request metrics."""

    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        start = time.monotonic()
        code = status.OK
        try:
            return method(request, context)
        except Exception as exc:
            error = serving_error_from(exc)
            if not isinstance(exc, ServingError):
                log.exception("Unexpected error in gRPC %s", getattr(method, "__name__", ""))
            code = error.code
            grpc_code = getattr(grpc.StatusCode, error.code, grpc.StatusCode.UNKNOWN)
            context.abort(grpc_code, error.message)
        finally:
            if api_name is not None:
                metrics.record_request(request.model_spec.name, api_name, "GRPC", code, start)

    return grpc.unary_unary_rpc_method_handler(
        handle,
        request_deserializer=request_class.FromString,
        response_serializer=response_class.SerializeToString,
    )


def _unimplemented(request: bytes, context: grpc.ServicerContext) -> Any:
    context.abort(grpc.StatusCode.UNIMPLEMENTED, "Not implemented by the stand-in server")


def handlers(api: GrpcApi) -> list[grpc.GenericRpcHandler]:
    p = protos
    prediction = {
        "Predict": _unary(api.predict, p.PredictRequest, p.PredictResponse, "Predict"),
        "Classify": _unary(
            api.classify, p.ClassificationRequest, p.ClassificationResponse, "Classify"
        ),
        "Regress": _unary(api.regress, p.RegressionRequest, p.RegressionResponse, "Regress"),
        "GetModelMetadata": _unary(
            api.get_model_metadata, p.GetModelMetadataRequest, p.GetModelMetadataResponse
        ),
        "MultiInference": grpc.unary_unary_rpc_method_handler(_unimplemented),
    }
    model = {
        "GetModelStatus": _unary(
            api.get_model_status, p.GetModelStatusRequest, p.GetModelStatusResponse
        ),
        "HandleReloadConfigRequest": grpc.unary_unary_rpc_method_handler(_unimplemented),
    }
    return [
        grpc.method_handlers_generic_handler(PREDICTION_SERVICE, prediction),
        grpc.method_handlers_generic_handler(MODEL_SERVICE, model),
    ]


def start_grpc_server(
    manager: Manager, host: str, port: int, max_threads: int, cpu_ms_per_request: float = 0.0
) -> grpc.Server:
    """Serve on host:port (OSError if the port cannot be bound)."""
    server = grpc.server(
        ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="grpc"),
        handlers=handlers(GrpcApi(manager, cpu_ms_per_request)),
        options=[
            ("grpc.max_send_message_length", _MAX_MESSAGE),
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
            ("grpc.so_reuseport", 0),
        ],
    )
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as error:
        raise OSError(f"cannot listen on {address}: {error}") from None
    if bound != port:
        raise OSError(f"cannot listen on {address}")
    server.start()
    return server
