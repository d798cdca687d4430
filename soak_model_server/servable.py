"""One loaded model version: its own tf.Graph and Session, as a TF Serving SavedModelBundle.

Requests hold a lease while they run, so an unload waits for them to finish before it closes
the session (TF Serving waits for outstanding servable handles in the same way).
"""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.python.client import pywrap_tf_session as tf_session

from soak_model_server import metrics, status
from soak_model_server.status import ServingError

DEFAULT_SIGNATURE = "serving_default"

_TF_CODE_NAMES = {
    getattr(tf.errors, name): name
    for name in (
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
    )
}

# Lines TensorFlow's Python layer adds around the runtime's own message.
_PYTHON_NOISE_PREFIXES = ("Graph execution error:", "Detected at node ", "Node: '")


def tf_error_message(error: tf.errors.OpError) -> str:
    """The runtime's message without the Python-side decoration (as TF Serving would show)."""
    lines = [
        line
        for line in (error.message or "").splitlines()
        if line.strip() and not line.startswith(_PYTHON_NOISE_PREFIXES)
    ]
    return "\n".join(lines) or type(error).__name__


def serving_error_from(exc: BaseException) -> ServingError:
    """Map an exception from TensorFlow (or our own code) to TF Serving's error code."""
    if isinstance(exc, ServingError):
        return exc
    if isinstance(exc, tf.errors.OpError):
        return ServingError(
            _TF_CODE_NAMES.get(exc.error_code, status.UNKNOWN), tf_error_message(exc)
        )
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError):
        if "does not exist" in text or isinstance(exc, FileNotFoundError):
            return ServingError(status.NOT_FOUND, text)
        if "Cannot parse" in text:
            return ServingError(status.DATA_LOSS, text)
        return ServingError(status.UNKNOWN, text)
    if isinstance(exc, RuntimeError) and "could not be found" in text:
        return ServingError(status.NOT_FOUND, text)
    if isinstance(exc, (ValueError, TypeError)):
        return ServingError(status.INVALID_ARGUMENT, text)
    return ServingError(status.UNKNOWN, f"{type(exc).__name__}: {text}")


class Servable:
    """A loaded version: session, signatures, and a count of requests using it."""

    def __init__(
        self,
        name: str,
        version: int,
        path: Path,
        graph: tf.Graph,
        session: tf.compat.v1.Session,
        meta_graph: meta_graph_pb2.MetaGraphDef,
        run_timeout_ms: int,
        cold_start_ms: float = 0.0,
    ) -> None:
        self.name = name
        self.version = version
        self.path = path
        self._graph = graph
        self._session = session
        self._signatures = dict(meta_graph.signature_def)
        options = tf.compat.v1.RunOptions(timeout_in_ms=run_timeout_ms)
        self._run_options = tf_session.TF_NewBufferFromString(options.SerializeToString())
        self._outputs: dict[str, object] = {}  # tensor name -> TF_Output
        session._extend_graph()  # make the C session see the imported graph
        self._leases = 0
        self._idle = threading.Condition()
        # --debug_cold_start_ms: what the first session run waits (warmup's, if it ran)
        self._cold_start_ms = cold_start_ms
        self._cold = threading.Lock()

    # --- signatures ----------------------------------------------------------------------

    def find_signature(self, signature_name: str) -> meta_graph_pb2.SignatureDef | None:
        """The named signature ("" means serving_default), or None."""
        return self._signatures.get(signature_name or DEFAULT_SIGNATURE)

    def signature(self, signature_name: str) -> meta_graph_pb2.SignatureDef:
        """The named signature ("" means serving_default); INVALID_ARGUMENT if absent."""
        name = signature_name or DEFAULT_SIGNATURE
        signature = self._signatures.get(name)
        if signature is None:
            raise ServingError(
                status.INVALID_ARGUMENT,
                f'Serving signature name: "{name}" not found in signature def',
            )
        return signature

    def input_dtypes(self, signature_name: str) -> dict[str, str]:
        """Input alias -> dtype name (e.g. "DT_INT64") of a signature."""
        inputs = self.signature(signature_name).inputs
        return {
            alias: types_pb2.DataType.Name(info.dtype) for alias, info in sorted(inputs.items())
        }

    def signature_defs(self) -> dict[str, meta_graph_pb2.SignatureDef]:
        """The SignatureDefMap of the loaded MetaGraphDef."""
        return dict(self._signatures)

    def signature_def_json(self) -> dict:
        """The SignatureDefMap as TF Serving's metadata API prints it."""
        return {
            name: json_format.MessageToDict(
                signature,
                always_print_fields_with_no_presence=True,
                preserving_proto_field_name=True,
            )
            for name, signature in self._signatures.items()
        }

    # --- running -------------------------------------------------------------------------

    def run_tensors(
        self, feeds: dict[str, np.ndarray], fetches: list[str], timeout_ms: int | None = None
    ) -> list[np.ndarray]:
        """Session::Run with feeds and fetches by tensor name, as TF Serving's C++ session runs
        them: no check of feed shapes against the graph (Python's Session.run would reject a
        [3] feed into a [None, 1] tensor; TensorFlow's runtime does not), and a feed of another
        dtype fails in the runtime ("Expects arg[0] to be float but double is provided").
        `timeout_ms` replaces the server's run timeout (a gRPC call's deadline; 0: none)."""
        if self._cold_start_ms:
            self._pay_cold_start()
        options = self._run_options
        if timeout_ms is not None:
            run_options = tf.compat.v1.RunOptions(timeout_in_ms=timeout_ms)
            options = tf_session.TF_NewBufferFromString(run_options.SerializeToString())
        try:
            feed_outputs = {self._tf_output(name): value for name, value in feeds.items()}
            fetch_outputs = [self._tf_output(name) for name in fetches]
            with metrics.graph_run():
                return tf_session.TF_SessionRun_wrapper(
                    self._session._session,  # the C session handle
                    options,
                    feed_outputs,
                    fetch_outputs,
                    [],
                    None,
                )
        except Exception as exc:  # TF raises OpError; a bad name KeyError/ValueError
            raise serving_error_from(exc) from None
        finally:
            if options is not self._run_options:
                tf_session.TF_DeleteBuffer(options)

    def _pay_cold_start(self) -> None:
        """The first run waits the planted cold start; runs racing it wait for it too."""
        with self._cold:
            wait_ms, self._cold_start_ms = self._cold_start_ms, 0.0
            time.sleep(wait_ms / 1000)

    def _tf_output(self, tensor_name: str):
        output = self._outputs.get(tensor_name)
        if output is None:
            output = self._graph.get_tensor_by_name(tensor_name)._as_tf_output()
            self._outputs[tensor_name] = output
        return output

    # --- leases and unload ---------------------------------------------------------------

    def acquire(self) -> None:
        with self._idle:
            self._leases += 1

    def release(self) -> None:
        with self._idle:
            self._leases -= 1
            if self._leases == 0:
                self._idle.notify_all()

    def close(self) -> None:
        """Wait for running requests, close the session and drop the graph."""
        with self._idle:
            while self._leases:
                self._idle.wait()
        self._session.close()
        tf_session.TF_DeleteBuffer(self._run_options)
        self._outputs = {}
        self._session = None
        self._graph = None
        self._signatures = {}
        gc.collect()  # graphs hold reference cycles; free them now (see main's gc.freeze)
