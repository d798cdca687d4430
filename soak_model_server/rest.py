"""TF Serving's HTTP/REST API (http_rest_api_handler.cc) over the stdlib HTTP server.

Routes, JSON shapes, error messages and status codes follow TF Serving:
  GET  /v1/models/NAME[/versions/V]            model status
  GET  /v1/models/NAME[/versions/V]/metadata   signature defs
  POST /v1/models/NAME[/versions/V]:predict    row (instances) or columnar (inputs)
Errors are `{"error": "..."}`. At most `--rest_api_num_threads` requests are processed at
once (TF Serving's request executor has that many threads); more wait their turn.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from soak_model_server import json_tensor, status
from soak_model_server.manager import Manager
from soak_model_server.status import ServingError

log = logging.getLogger(__name__)

_V1_PATH = re.compile(r"/v1/.*", re.IGNORECASE)
_PREDICTION_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE,
)
_STATUS_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE,
)


class RestApi:
    """Request -> (HTTP status, JSON body), independent of the HTTP transport."""

    def __init__(self, manager: Manager) -> None:
        self._manager = manager

    def handle(self, method: str, raw_path: str, body: bytes) -> tuple[int, str]:
        path = urlsplit(raw_path).path
        if not _V1_PATH.fullmatch(path):
            return 404, json.dumps({"error": f"Not found: {path}"})
        try:
            return 200, self._route(method, path, body)
        except ServingError as error:
            return error.http_status, json.dumps({"error": error.message})
        except Exception as exc:  # a bug here must not kill the connection thread silently
            log.exception("Unexpected error serving %s %s", method, path)
            return 500, json.dumps({"error": f"{type(exc).__name__}: {exc}"})

    def _route(self, method: str, path: str, body: bytes) -> str:
        if method == "POST":
            match = _PREDICTION_PATH.fullmatch(path)
            if match:
                name, version, label, verb = match.groups()
                version_number = _version(version, label)
                if verb.lower() != "predict":
                    raise ServingError(
                        status.UNIMPLEMENTED,
                        f"{verb} is not implemented by the stand-in server; use predict",
                    )
                return self._predict(unquote(name), version_number, body)
        elif method == "GET":
            match = _STATUS_PATH.fullmatch(path)
            if match:
                name, version, label, metadata = match.groups()
                if not name:
                    raise ServingError(status.INVALID_ARGUMENT, "Missing model name in request.")
                version_number = _version(version, label)
                if metadata:
                    return self._metadata(unquote(name), version_number)
                return self._status(unquote(name), version_number)
        raise ServingError(status.INVALID_ARGUMENT, f"Malformed request: {method} {path}")

    def _status(self, name: str, version: int | None) -> str:
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

    def _metadata(self, name: str, version: int | None) -> str:
        with self._manager.lease(name, version) as servable:
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

    def _predict(self, name: str, version: int | None, body: bytes) -> str:
        document = json_tensor.parse_document(body)
        signature_name = json_tensor.signature_name_of(document)
        # One lease for parsing and running, so both see the same version during a swap.
        with self._manager.lease(name, version) as servable:
            request = json_tensor.predict_request_from_json(
                document, servable.input_dtypes(signature_name)
            )
            outputs = servable.run(request.signature_name, request.inputs)
        return json_tensor.json_from_tensors(outputs, request.format)


def _version(version: str | None, label: str | None) -> int | None:
    if label is not None:
        # The stand-in serves one version per model and has no version labels.
        raise ServingError(
            status.INVALID_ARGUMENT, f"Unrecognized servable version label: {unquote(label)}"
        )
    return int(version) if version is not None else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients of TF Serving expect
    server_version = "soak-model-server"
    server: RestServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm
        # holds the body until the client's delayed ACK (~40 ms on Linux) on keep-alive.
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
            code, text = self.server.api.handle(self.command, self.path, body)
        self._reply(code, text)

    def _reply(self, code: int, text: str) -> None:
        payload = text.encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
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
