"""TF Serving's HTTP/REST API (http_rest_api_handler.cc) over the stdlib HTTP server.

Routes, JSON shapes, error messages and status codes follow TF Serving:
  GET  /v1/models/NAME[/versions/V|/labels/L]            model status
  GET  /v1/models/NAME[/versions/V|/labels/L]/metadata   signature defs
  POST /v1/models/NAME[/versions/V|/labels/L]:predict    row (instances) or columnar (inputs)
  POST /v1/models/NAME[/versions/V|/labels/L]:classify   tf.Examples -> [[label, score]]
  POST /v1/models/NAME[/versions/V|/labels/L]:regress    tf.Examples -> [value]
  GET  the Prometheus path of --monitoring_config_file   TF Serving's metrics (text/plain)
Errors are `{"error": "..."}`. The stand-in has no version labels (TF Serving takes them from
--model_config_file), so every label is "Unrecognized" as in TF Serving without labels.
At most `--rest_api_num_threads` requests are processed at once (TF Serving's request
executor has that many threads); more wait their turn. Every /v1 request is counted in
:tensorflow:serving:request_count and, when it succeeds, timed in request_latency.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote_to_bytes, urlsplit

from soak_model_server import inference, json_tensor, metrics, status
from soak_model_server.manager import Manager
from soak_model_server.status import ServingError

log = logging.getLogger(__name__)

# tensorflow_serving/model_servers/http_rest_api_util.{h,cc}
_V1_PATH = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)
_PREDICTION_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE,
)
_STATUS_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE,
)
_INT64_MAX = 2**63 - 1
_JSON = "application/json"


def _decode(text: str) -> str:
    """DecodeArg (curl_easy_unescape): %XX decoded, '+' kept; bytes kept as they are."""
    return unquote_to_bytes(text).decode("utf-8", "surrogateescape")


class RestApi:
    """Request -> (HTTP status, content type, body), independent of the HTTP transport."""

    def __init__(
        self,
        manager: Manager,
        prometheus_path: str | None = None,
        cpu_ms_per_request: float = 0.0,
    ) -> None:
        self._manager = manager
        self.prometheus_path = prometheus_path
        self._cpu_ms_per_request = cpu_ms_per_request  # --debug_cpu_ms_per_request

    def handle(self, method: str, raw_path: str, body: bytes) -> tuple[int, str, str]:
        path = urlsplit(raw_path).path
        if self.prometheus_path is not None and path == self.prometheus_path:
            return 200, "text/plain", metrics.prometheus_page()
        if not _V1_PATH.fullmatch(path):
            return 404, _JSON, json.dumps({"error": f"Not found: {path}"})
        start = time.monotonic()
        route = _Route()
        try:
            text = self._route(method, path, body, route)
            code = status.OK
        except ServingError as error:
            text, code = json.dumps({"error": error.message}), error.code
        except Exception as exc:  # a bug here must not kill the connection thread silently
            log.exception("Unexpected error serving %s %s", method, path)
            text, code = json.dumps({"error": f"{type(exc).__name__}: {exc}"}), status.UNKNOWN
        metrics.record_request(route.model_name, route.method, "REST", code, start)
        http = ServingError(code, "").http_status
        return http, _JSON, text

    def _route(self, method: str, path: str, body: bytes, route: _Route) -> str:
        """ProcessRequest: parse the path, then dispatch on method and verb (case-sensitive,
        although the path pattern is not: ":PREDICT" parses but is a malformed request)."""
        malformed = ServingError(status.INVALID_ARGUMENT, f"Malformed request: {method} {path}")
        match = None
        if method == "POST":
            match = _PREDICTION_PATH.fullmatch(path)
        elif method == "GET":
            match = _STATUS_PATH.fullmatch(path)
        name, version_text, label, verb = match.groups() if match else (None,) * 4
        route.model_name = _decode(name) if name else ""
        route.method = verb if method == "POST" and verb else ""
        version = _version(version_text)
        label = _decode(label) if label else None
        if match is None:
            raise malformed
        if method == "POST":
            if verb == "predict":
                return self._predict(route.model_name, version, label, body)
            if verb in ("classify", "regress"):
                return self._classify_or_regress(verb, route.model_name, version, label, body)
            raise malformed
        if not route.model_name:
            raise ServingError(status.INVALID_ARGUMENT, "Missing model name in request.")
        if verb == "metadata":  # the subresource group
            return self._metadata(route.model_name, version, label)
        return self._status(route.model_name, version)

    def _status(self, name: str, version: int | None) -> str:
        # GetModelStatusImpl ignores a version label: all versions are reported.
        statuses = self._manager.version_statuses(name, version)
        return json.dumps(
            {
                "model_version_status": [
                    {
                        "version": str(s.version),
                        "state": s.state.value,
                        "status": {"error_code": s.error_code, "error_message": s.error_message},
                    }
                    for s in statuses
                ]
            },
            indent=1,
        )

    def _metadata(self, name: str, version: int | None, label: str | None) -> str:
        with self._manager.lease(name, version, label) as servable:
            return json.dumps(
                {
                    "model_spec": {
                        "name": name,
                        "signature_name": "",
                        "version": str(servable.version),
                    },
                    "metadata": {"signature_def": {"signature_def": servable.signature_def_json()}},
                },
                indent=1,
            )

    def _predict(self, name: str, version: int | None, label: str | None, body: bytes) -> str:
        inference.burn_thread_cpu(self._cpu_ms_per_request)
        # As TF Serving: the body is parsed first, then one lease serves the signature lookup
        # and the run, so both see the same version during a swap.
        document = json_tensor.parse_document(body)
        signature_name = json_tensor.signature_name_of(document)
        with self._manager.lease(name, version, label) as servable:
            request = json_tensor.predict_request_from_json(
                document, servable.input_dtypes(signature_name)
            )
            _, outputs = inference.predict(servable, name, request.signature_name, request.inputs)
        return json_tensor.json_from_tensors(outputs, request.format)

    def _classify_or_regress(
        self, verb: str, name: str, version: int | None, label: str | None, body: bytes
    ) -> str:
        # TF Serving parses the body before it looks up the model.
        document = json_tensor.parse_document(body)
        signature_name, request_input = json_tensor.input_from_json(document)
        with self._manager.lease(name, version, label) as servable:
            if verb == "classify":
                _, classes = inference.classify(servable, name, signature_name, request_input)
                return json_tensor.json_from_classification(classes)
            _, values = inference.regress(servable, name, signature_name, request_input)
            return json_tensor.json_from_regression(values)


class _Route:
    """What the path named, for the request metrics."""

    model_name = ""
    method = ""


def _version(text: str | None) -> int | None:
    if text is None:
        return None
    value = int(text)
    if value > _INT64_MAX:  # absl::SimpleAtoi into int64
        raise ServingError(
            status.INVALID_ARGUMENT, f"Failed to convert version: {text} to numeric."
        )
    return value


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients of TF Serving expect
    server_version = "soak-model-server"
    server: RestServer
    # A buffered wfile, flushed once a request is answered: headers and body go out in one
    # write, as TF Serving's libevent server sends a reply's one buffer (a client then
    # wakes once per answer, not for the headers and again for the body).
    wbufsize = 1 << 16

    def setup(self) -> None:
        super().setup()
        # A body past the buffer goes out in more writes; without TCP_NODELAY, Nagle's
        # algorithm holds them until the client's delayed ACK (~40 ms on Linux).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def do_PUT(self) -> None:  # noqa: N802
        self._serve()

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve()

    def _serve(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._reply(400, json.dumps({"error": "Bad Content-Length"}))
            return
        body = self.rfile.read(length) if length > 0 else b""
        with self.server.request_slots:
            code, content_type, text = self.server.api.handle(self.command, self.path, body)
        self._reply(code, text, content_type)

    def _reply(self, code: int, text: str, content_type: str = _JSON) -> None:
        payload = text.encode("utf-8", "surrogateescape")
        try:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Silence per-request access logs (TF Serving logs requests only at VLOG level)."""


class RestServer(ThreadingHTTPServer):
    """A thread per connection; a semaphore bounds requests processed at once."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, host: str, port: int, api: RestApi, num_threads: int) -> None:
        self.api = api
        self.request_slots = threading.BoundedSemaphore(num_threads)
        super().__init__((host, port), _Handler)
