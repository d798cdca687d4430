"""The predict request the latency prober sends: built from the model's metadata, or a file.

Generated values are small and valid for typical recommender inputs (ids
0..9 fit any embedding table), so the request exercises the real graph.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import requests

from soak.errors import EnvironmentFailure, UsageError

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


def _value(name: str, dtype: str, rng: random.Random):
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


def _tensor(name: str, dtype: str, shape: list[int], rng: random.Random):
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
