"""The predict request the latency prober sends: built from the model's metadata, or a file.

Generated values are small and valid for typical recommender inputs (ids
0..9 fit any embedding table), so the request exercises the real graph.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import requests

from soak.core.errors import EnvironmentFailure, UsageError

_INT_DTYPES = {"DT_INT64", "DT_INT32", "DT_INT16", "DT_INT8", "DT_UINT8", "DT_UINT16"}
_FLOAT_DTYPES = {"DT_FLOAT", "DT_DOUBLE", "DT_HALF", "DT_BFLOAT16"}
_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")


def fetch_metadata(rest_url: str, model_name: str, timeout_s: float = 10) -> dict:
    """GET {rest_url}/v1/models/{model_name}/metadata (TF Serving's GetModelMetadata as JSON)."""
    url = f"{rest_url.rstrip('/')}/v1/models/{model_name}/metadata"
    with requests.Session() as session:
        session.trust_env = False  # loopback only, never through a proxy
        try:
            response = session.get(url, timeout=timeout_s)
        except requests.RequestException as exc:
            raise EnvironmentFailure(f"cannot read model metadata from {url}: {exc}") from None
    if response.status_code != 200:
        raise EnvironmentFailure(
            f"model metadata {url} answered HTTP {response.status_code}: {response.text[:200]}"
        )
    try:
        return response.json()
    except ValueError:
        raise EnvironmentFailure(f"model metadata {url} is not JSON") from None


def _signature(metadata: dict, signature_name: str) -> dict:
    signatures = metadata.get("metadata", {}).get("signature_def", {}).get("signature_def", {})
    if signature_name not in signatures:
        available = ", ".join(sorted(signatures)) or "none"
        raise UsageError(
            f"the model has no signature {signature_name!r} (available: {available}); "
            "pass --request-file"
        )
    return signatures[signature_name]


def _instance_shape(name: str, tensor_info: dict, batch: int) -> list[int]:
    """Shape of one row of the input (its dims after the batch dim)."""
    shape = tensor_info.get("tensor_shape", {})
    if shape.get("unknown_rank"):
        return []  # a batch of scalars is the best guess
    dims = [int(d.get("size", -1)) for d in shape.get("dim", [])]
    if not dims:
        raise UsageError(f"input {name!r} is a scalar with no batch dim; pass --request-file")
    if dims[0] not in (-1, batch):
        raise UsageError(
            f"input {name!r} has a fixed batch size {dims[0]}; use --batch {dims[0]} "
            "or --request-file"
        )
    return [1 if d == -1 else d for d in dims[1:]]


def _value(name: str, dtype: str, rng: random.Random) -> Any:
    if dtype in _INT_DTYPES:
        return rng.randrange(10)
    if dtype in _FLOAT_DTYPES:
        return round(rng.random(), 4)
    if dtype == "DT_STRING":
        return rng.choice(_WORDS)
    if dtype == "DT_BOOL":
        return rng.random() < 0.5
    raise UsageError(
        f"input {name!r} has dtype {dtype}, which soak cannot generate; pass --request-file"
    )


def _tensor(name: str, dtype: str, shape: list[int], rng: random.Random) -> Any:
    if not shape:
        return _value(name, dtype, rng)
    return [_tensor(name, dtype, shape[1:], rng) for _ in range(shape[0])]


def build_predict_payload(
    metadata: dict, batch: int, signature_name: str = "serving_default", seed: int = 0
) -> dict:
    """A TF Serving REST predict body in row format: {"signature_name", "instances": [...]}.

    One instance per batch row, each a {input_name: value} dict shaped by the
    signature (-1 in the first dim is the batch, other -1 dims become 1).
    """
    if batch < 1:
        raise UsageError(f"--batch must be at least 1, got {batch}")
    inputs = _signature(metadata, signature_name).get("inputs") or {}
    if not inputs:
        raise UsageError(f"signature {signature_name!r} has no inputs; pass --request-file")
    rng = random.Random(seed)
    shapes = {name: _instance_shape(name, info, batch) for name, info in inputs.items()}
    instances = [
        {
            name: _tensor(name, info.get("dtype", "DT_INVALID"), shapes[name], rng)
            for name, info in sorted(inputs.items())
        }
        for _ in range(batch)
    ]
    return {"signature_name": signature_name, "instances": instances}


def load_request_file(path: Path) -> dict:
    """A predict body from --request-file: a JSON object with `instances` or `inputs`."""
    try:
        body = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read request file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"request file {path} is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise UsageError(f"request file {path} must hold a JSON object")
    keys = {"instances", "inputs"} & body.keys()
    if len(keys) != 1:
        raise UsageError(f"request file {path} must have exactly one of 'instances' or 'inputs'")
    if "instances" in body and not (isinstance(body["instances"], list) and body["instances"]):
        raise UsageError(f"request file {path}: 'instances' must be a non-empty list")
    if "inputs" in body and body["inputs"] in (None, [], {}):
        raise UsageError(f"request file {path}: 'inputs' is empty")
    if not isinstance(body.get("signature_name", ""), str):
        raise UsageError(f"request file {path}: 'signature_name' must be a string")
    return body


# --- the same request as gRPC input tensors ------------------------------------------------

_NUMPY_DTYPES = {
    "DT_FLOAT": "float32",
    "DT_DOUBLE": "float64",
    "DT_HALF": "float16",
    "DT_INT64": "int64",
    "DT_INT32": "int32",
    "DT_INT16": "int16",
    "DT_INT8": "int8",
    "DT_UINT8": "uint8",
    "DT_UINT16": "uint16",
    "DT_UINT32": "uint32",
    "DT_UINT64": "uint64",
    "DT_BOOL": "bool",
}


def grpc_inputs(body: dict, metadata: dict | None = None) -> tuple[str, dict[str, np.ndarray]]:
    """A REST predict body as gRPC input tensors: (signature name, {input: array}).

    The row format (`instances`: one row per item) stacks the rows of each input into one
    array; the columnar format (`inputs`) takes each input as it is. Unnamed rows or
    inputs belong to the signature's only input. {"b64": ...} values are decoded to bytes.
    With the model's metadata, each array gets its input's dtype, as TF Serving's JSON
    parser gives it (without: floats are float32, integers int64, text DT_STRING); this
    way both protocols send the same request.
    """
    signature_name = str(body.get("signature_name") or "serving_default")
    signature = _signature(metadata, signature_name) if metadata is not None else {}
    declared = signature.get("inputs") or {}
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise UsageError("'instances' must be a non-empty list")
        if all(_named(row) for row in rows):
            names = list(rows[0])
            if any(set(row) != set(names) for row in rows):
                raise UsageError("every instance must name the same inputs")
            columns = {name: [_decoded(row[name]) for row in rows] for name in names}
        else:
            columns = {_only_input(declared, signature_name): [_decoded(r) for r in rows]}
    else:
        given = body.get("inputs")
        if isinstance(given, dict) and _named(given):
            columns = {name: _decoded(value) for name, value in given.items()}
        else:
            columns = {_only_input(declared, signature_name): _decoded(given)}
    return signature_name, {
        name: _array_of(name, value, declared.get(name, {}).get("dtype"))
        for name, value in columns.items()
    }


def _named(value: object) -> bool:
    """A {input: value} object (not a {"b64": ...} value)."""
    return isinstance(value, dict) and set(value) != {"b64"}


def _decoded(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"b64"}:
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise UsageError(f"not valid base64: {str(value['b64'])[:40]!r}") from None
    if isinstance(value, list):
        return [_decoded(v) for v in value]
    return value


def _only_input(declared: dict, signature_name: str) -> str:
    if len(declared) != 1:
        raise UsageError(
            f"the request does not name its inputs, and signature {signature_name!r} has "
            f"{len(declared) or 'no known'} inputs: name them in the request file"
        )
    return next(iter(declared))


def _array_of(name: str, value: Any, dtype: str | None) -> np.ndarray:
    try:
        if dtype == "DT_STRING":
            array = np.array(value, dtype=object)
            return np.vectorize(_utf8, otypes=[object])(array) if array.size else array
        if dtype in _NUMPY_DTYPES:
            return np.array(value, dtype=_NUMPY_DTYPES[dtype])
        array = np.array(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise UsageError(f"input {name!r} is not a {dtype or 'tensor'}: {exc}") from None
    if array.dtype.kind == "U":
        return np.vectorize(_utf8, otypes=[object])(array)
    if array.dtype == np.float64:
        return array.astype(np.float32)
    if array.dtype == object:
        raise UsageError(f"input {name!r} is ragged or mixed; every row must have one shape")
    return array


def _utf8(item: Any) -> bytes:
    return item if isinstance(item, bytes) else str(item).encode()
