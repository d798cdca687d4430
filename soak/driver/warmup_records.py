"""TF Serving warmup records for a model that has none, from the request soak sends (for
soak tune's warmup recipe).

The versions are copied (hard links where the file system allows: the model is
never written) into a new base path, and each copy gets
`assets.extra/tf_serving_warmup_requests` (TF Serving's format, soak_model_server.warmup)
holding the predict request of the run: `--request-file`, else the one soak builds from the
signature, read from the SavedModel itself (no server needed).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from google.protobuf import json_format

from soak.core.errors import UsageError
from soak.samplers.payload import build_predict_payload, grpc_inputs, load_request_file


def with_warmup_records(
    versions: list[Path],
    out: Path,
    model_name: str,
    request_file: str | None,
    batch: int,
) -> Path:
    """A base path in `out` with each of `versions` (as version 1, 2, ...) and its warmup
    records; returns it."""
    from soak_model_server.warmup import WarmupRequest, write_warmup_requests

    metadata = saved_model_metadata(versions[0])
    body = load_request_file(Path(request_file)) if request_file else None
    body = body or build_predict_payload(metadata, batch)
    signature_name, inputs = grpc_inputs(body, metadata)
    request = WarmupRequest(signature_name, inputs)
    out.mkdir(parents=True)
    for number, version in enumerate(versions, 1):
        copy = out / str(number)
        shutil.copytree(version, copy, copy_function=_link_or_copy)
        write_warmup_requests(copy, model_name, [request])
    return out


def saved_model_metadata(version: Path) -> dict:
    """The model's signatures as TF Serving's metadata API gives them, from saved_model.pb."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    try:
        saved_model.ParseFromString((version / "saved_model.pb").read_bytes())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the signatures of {version}: {exc}") from None
    graphs = [g for g in saved_model.meta_graphs if "serve" in g.meta_info_def.tags]
    if not graphs:
        raise UsageError(f"{version} has no meta graph tagged 'serve'")
    signatures = {
        name: json_format.MessageToDict(signature, preserving_proto_field_name=True)
        for name, signature in graphs[0].signature_def.items()
    }
    return {"metadata": {"signature_def": {"signature_def": signatures}}}


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system
        shutil.copy2(src, dst)
