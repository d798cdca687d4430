"""Predict, Classify and Regress on a loaded version, as TF Serving's servables/tensorflow does.

Shared by the REST and gRPC fronts (both go through these in TF Serving too):
- predict (predict_util.cc RunPredict): signature lookup, input count and names checked
  against the signature (with its `defaults`), `output_filter`, one session run;
- classify / regress (classifier.cc, regressor.cc, util.cc): tf.Examples of the request's
  Input serialized into one DT_STRING [batch] tensor fed to the signature's `inputs`, the
  `classes`/`scores` or `outputs` tensors checked and turned into results.
Error codes and messages are TF Serving's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from soak_model_server import metrics, status
from soak_model_server.servable import DEFAULT_SIGNATURE, Servable
from soak_model_server.status import ServingError

CLASSIFY_INPUTS = "inputs"
CLASSIFY_CLASSES = "classes"
CLASSIFY_SCORES = "scores"
REGRESS_INPUTS = "inputs"
REGRESS_OUTPUTS = "outputs"


def _invalid(message: str) -> ServingError:
    return ServingError(status.INVALID_ARGUMENT, message)


def _keys(names) -> str:
    return ",".join(sorted(names))


# --- predict -------------------------------------------------------------------------------


def burn_thread_cpu(ms: float) -> None:
    """Busy-loop until this thread has used `ms` more milliseconds of CPU
    (--debug_cpu_ms_per_request: CPU, not sleep, whatever the other threads do)."""
    if ms <= 0:
        return
    end = time.thread_time() + ms / 1000
    while time.thread_time() < end:
        pass


def predict(
    servable: Servable,
    model_name: str,
    signature_name: str,
    inputs: dict[str, np.ndarray],
    output_filter: list[str] | tuple[str, ...] = (),
    timeout_ms: int | None = None,
) -> tuple[str, dict[str, np.ndarray]]:
    """RunPredict: (resolved signature name, outputs by alias)."""
    name = signature_name or DEFAULT_SIGNATURE
    signature = servable.find_signature(name)
    if signature is None:
        raise ServingError(status.FAILED_PRECONDITION, f'Serving signature key "{name}" not found.')
    sent, expected = set(inputs), set(signature.inputs)
    defaults = dict(signature.defaults) if hasattr(signature, "defaults") else {}
    if len(sent) > len(expected) or (len(sent) < len(expected) and not defaults):
        raise _invalid(
            f"input size does not match signature: {len(sent)}!={len(expected)} "
            f"len({{{_keys(sent)}}}) != len({{{_keys(expected)}}}). "
            f"Sent extra: {{{_keys(sent - expected)}}}. "
            f"Missing but required: {{{_keys(expected - sent)}}}."
        )
    feeds: dict[str, np.ndarray] = {}
    seen: set[str] = set()
    for alias, info in sorted(signature.inputs.items()):
        if alias in inputs:
            feeds[info.name] = inputs[alias]
            seen.add(alias)
        elif alias in defaults:
            feeds[info.name] = tf.make_ndarray(defaults[alias])
        else:
            raise _invalid(
                f"Signature input alias: {alias}(feed name: {info.name}) not found in request "
                f"and no default value provided. Inputs expected to be in the request "
                f"{{{_keys(sent)}}}, or default input alias set: {_keys(defaults)}"
            )
    if inputs and len(seen) != len(inputs):
        raise _invalid(
            f"Inputs contains invalid name. Used request inputs: {_keys(seen)}, "
            f"request input: {_keys(sent)}"
        )
    aliases: list[str] = []
    for alias in output_filter:
        if alias not in signature.outputs:
            raise _invalid(
                f"output tensor alias not found in signature: {alias} Outputs expected to be "
                f"in the set {{{_keys(signature.outputs)}}}."
            )
        if alias in aliases:
            raise _invalid(f"duplicate output tensor alias: {alias}")
        aliases.append(alias)
    if not aliases:
        aliases = sorted(signature.outputs)
    fetches = [signature.outputs[alias].name for alias in aliases]
    start = time.monotonic()
    values = servable.run_tensors(feeds, fetches, timeout_ms)
    metrics.runtime_latency.labels(model_name, "Predict", "TF1").observe(
        metrics.micros_since(start)
    )
    return name, dict(zip(aliases, values, strict=True))


# --- classify and regress ------------------------------------------------------------------


def serialized_examples(request_input: Any) -> np.ndarray:
    """InputToSerializedExampleTensor: the request's tf.Examples as a DT_STRING [batch] array;
    with a context, each example is the context's bytes followed by its own (a proto merge)."""
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        examples = [e.SerializeToString() for e in request_input.example_list.examples]
    elif kind == "example_list_with_context":
        with_context = request_input.example_list_with_context
        context = with_context.context.SerializeToString()
        examples = [context + e.SerializeToString() for e in with_context.examples]
    else:
        examples = []
    if not examples:
        raise _invalid("Input is empty.")
    return np.array(examples, dtype=object)


def _method_signature(servable: Servable, signature_name: str, check) -> Any:
    name = signature_name or DEFAULT_SIGNATURE
    signature = servable.find_signature(name)
    if signature is None:
        raise _invalid(f"No signature was found with the name: {name}")
    check(signature)
    return signature


def _check_classification(signature: Any) -> None:
    """PreProcessClassification (without --enable_signature_method_name_check, the default)."""
    if len(signature.inputs) != 1:
        raise _invalid("Expected one input Tensor.")
    if len(signature.outputs) not in (1, 2):
        raise _invalid(f"Expected one or two output Tensors, found {len(signature.outputs)}")
    if CLASSIFY_INPUTS not in signature.inputs:
        raise _invalid(f"No classification inputs found in SignatureDef: {signature}")
    if CLASSIFY_CLASSES not in signature.outputs and CLASSIFY_SCORES not in signature.outputs:
        raise _invalid(
            "Expected classification signature outputs to contain at least one of "
            f'"{CLASSIFY_CLASSES}" or "{CLASSIFY_SCORES}". Signature was: {signature}'
        )


def _check_regression(signature: Any) -> None:
    """PreProcessRegression."""
    if len(signature.inputs) != 1:
        raise _invalid("Expected one input Tensor.")
    if len(signature.outputs) != 1:
        raise _invalid("Expected one output Tensor.")
    if REGRESS_INPUTS not in signature.inputs:
        raise _invalid(f"No regression inputs found in SignatureDef: {signature}")
    if REGRESS_OUTPUTS not in signature.outputs:
        raise _invalid(f"No regression outputs found in SignatureDef: {signature}")


def _shape_text(array: np.ndarray) -> str:
    return "[" + ",".join(str(size) for size in array.shape) + "]"


@dataclass(frozen=True)
class Classification:
    label: bytes
    score: float


def classify(
    servable: Servable,
    model_name: str,
    signature_name: str,
    request_input: Any,
    timeout_ms: int | None = None,
) -> tuple[str, list[list[Classification]]]:
    """RunClassify: (signature name for the response, classifications per example)."""
    signature = _method_signature(servable, signature_name, _check_classification)
    examples = serialized_examples(request_input)
    outputs = [alias for alias in (CLASSIFY_CLASSES, CLASSIFY_SCORES) if alias in signature.outputs]
    start = time.monotonic()
    values = servable.run_tensors(
        {signature.inputs[CLASSIFY_INPUTS].name: examples},
        [signature.outputs[alias].name for alias in outputs],
        timeout_ms,
    )
    metrics.runtime_latency.labels(model_name, "Classify", "TF1").observe(
        metrics.micros_since(start)
    )
    tensors = dict(zip(outputs, values, strict=True))
    classes, scores = tensors.get(CLASSIFY_CLASSES), tensors.get(CLASSIFY_SCORES)
    batch = len(examples)
    for name, tensor, kind in (("classes", classes, "O"), ("scores", scores, "f")):
        if tensor is None:
            continue
        if tensor.ndim != 2:
            raise _invalid(
                f"Expected Tensor shape: [batch_size num_classes] but got {_shape_text(tensor)}"
            )
        if kind == "O" and tensor.dtype.kind not in ("O", "S"):
            raise _invalid(f"Expected classes Tensor of DT_STRING. Got: {_dtype_name(tensor)}")
        if kind == "f" and tensor.dtype != np.float32:
            raise _invalid(f"Expected scores Tensor of DT_FLOAT. Got: {_dtype_name(tensor)}")
        if tensor.shape[0] != batch:
            raise _invalid(f"Expected {name} output batch size of {batch}. Got: {tensor.shape[0]}")
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise _invalid(
            "Tensors class and score should match in dim_size(1). Got "
            f"{classes.shape[1]} vs. {scores.shape[1]}"
        )
    num_classes = (classes if classes is not None else scores).shape[1]  # type: ignore[union-attr]
    result = [
        [
            Classification(
                label=bytes(classes[i, c]) if classes is not None else b"",
                score=float(scores[i, c]) if scores is not None else 0.0,
            )
            for c in range(num_classes)
        ]
        for i in range(batch)
    ]
    return signature_name or DEFAULT_SIGNATURE, result


def regress(
    servable: Servable,
    model_name: str,
    signature_name: str,
    request_input: Any,
    timeout_ms: int | None = None,
) -> tuple[str, list[float]]:
    """RunRegress: (signature name for the response, one value per example)."""
    signature = _method_signature(servable, signature_name, _check_regression)
    examples = serialized_examples(request_input)
    start = time.monotonic()
    (output,) = servable.run_tensors(
        {signature.inputs[REGRESS_INPUTS].name: examples},
        [signature.outputs[REGRESS_OUTPUTS].name],
        timeout_ms,
    )
    metrics.runtime_latency.labels(model_name, "Regress", "TF1").observe(
        metrics.micros_since(start)
    )
    batch = len(examples)
    if not (output.ndim == 1 or (output.ndim == 2 and output.shape[1] == 1)):
        raise _invalid(
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got "
            f"{_shape_text(output)}"
        )
    if output.shape[0] != batch:
        raise _invalid(
            f"Input batch size did not match output batch size: {batch} vs. {output.shape[0]}"
        )
    if output.dtype != np.float32:
        raise _invalid(f"Expected output Tensor of DT_FLOAT.  Got: {_dtype_name(output)}")
    return signature_name or DEFAULT_SIGNATURE, [float(v) for v in output.ravel()]


def _dtype_name(array: np.ndarray) -> str:
    """DataType_Name of an array's dtype, e.g. "DT_DOUBLE"."""
    try:
        return types_pb2.DataType.Name(tf.as_dtype(array.dtype).as_datatype_enum)
    except TypeError:
        return str(array.dtype)
