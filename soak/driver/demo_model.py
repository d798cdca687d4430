"""The demo model: a recommender-like SavedModel base path with numeric versions.

Its shape is chosen to show what hot reloads do to a heap allocator. Most of the weight is in
embedding tables below 32 MiB each: glibc malloc serves chunks under its mmap threshold (which
adapts up to 32 MiB) from arenas, and after an unload that memory tends to stay in the process;
two tables above 32 MiB at 128 MiB go to mmap and are returned at once. An MLP sits on top.
The shape holds at every size: in a bigger model the other tables are partitioned into
variables of at most PARTITION_MAX_MB, as production recommenders shard their big
embeddings (`tf.compat.v1.fixed_size_partitioner`), and looked up across their partitions.

Its first run is slow, as a production graph's is: the dense features are scaled by a
normalisation that TensorFlow computes from constants at a signature's first Session::Run
(constant folding of two FEATURE_BASIS x FEATURE_BASIS matmuls) and keeps for the
later runs (~0.2 ms). That is the lazy cost TF Serving's warmup records pay during the load;
without them the first request after each swap pays it.

Every int64 id is valid input (ids are mapped into each table with floormod), so a load
generator can send arbitrary ids. Weights come from numpy and are fed through placeholders, so
the GraphDef stays small whatever the size (no constants near protobuf's 2 GiB limit).

TensorFlow is imported inside the writer: the layout (`variable_shapes`) and the request
inputs (`demo_inputs`) are plain numpy, usable where TensorFlow is not installed.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from soak.core.errors import UsageError

DEMO_MODEL_NAME = "demo"
SIGNATURE_NAME = "serving_default"
ITEMS_PER_REQUEST = 8
DENSE_FEATURES = 16
HIDDEN_UNITS = (256, 128)
WARMUP_RECORDS = 20
FEATURE_BASIS = 1024  # the first run's constant folding: 4 MiB matrices (Grappler folds <= 10 MiB)
PARTITION_MAX_MB = 24  # a partition's most: under glibc's largest mmap threshold (32 MiB)
MIB = 1 << 20
_FLOAT_BYTES = 4
_CROSS_MODULUS = 1_000_003  # keeps user*modulus+item far below 2^63: no int64 overflow


@dataclass(frozen=True)
class EmbeddingTable:
    """One table: its share of the embedding bytes, width, and which ids look it up."""

    name: str
    share: float
    dim: int
    ids: str  # "user", "items" or "cross" (user x item)
    whole: bool = False  # one variable at any size; else partitioned past PARTITION_MAX_MB


# At 128 MiB: two whole tables above 32 MiB (41 and 33 MiB), six between 2.6 and 15 MiB.
TABLES = (
    EmbeddingTable("user_embedding", 0.32, 64, "user", whole=True),
    EmbeddingTable("item_embedding", 0.26, 64, "items", whole=True),
    EmbeddingTable("item_category", 0.12, 32, "items"),
    EmbeddingTable("user_geo", 0.10, 32, "user"),
    EmbeddingTable("item_brand", 0.08, 32, "items"),
    EmbeddingTable("user_segment", 0.06, 16, "user"),
    EmbeddingTable("user_item_cross", 0.04, 16, "cross"),
    EmbeddingTable("item_shop", 0.02, 16, "items"),
)


def _mlp_shapes() -> list[tuple[str, tuple[int, ...]]]:
    widths = [sum(t.dim for t in TABLES) + DENSE_FEATURES, *HIDDEN_UNITS, 1]
    shapes: list[tuple[str, tuple[int, ...]]] = []
    for layer, (fan_in, fan_out) in enumerate(pairwise(widths)):
        shapes += [
            (f"dense_{layer}/kernel", (fan_in, fan_out)),
            (f"dense_{layer}/bias", (fan_out,)),
        ]
    return shapes


def variable_shapes(size_mb: float) -> dict[str, tuple[int, ...]]:
    """Shapes of all float32 variables for a model of about `size_mb` MiB.

    The MLP (about 0.4 MiB) is fixed; the tables share the rest (at least one row each).
    A partitioned table's variables are `NAME/part_K` (table_variables), rows dealt as the
    "mod" strategy of `embedding_lookup` wants them: row r of the table is row r // n of
    partition r % n.
    """
    mlp = dict(_mlp_shapes())
    mlp_bytes = sum(int(np.prod(shape)) for shape in mlp.values()) * _FLOAT_BYTES
    table_bytes = max(0.0, size_mb * MIB - mlp_bytes)
    shapes: dict[str, tuple[int, ...]] = {}
    for t in TABLES:
        rows = max(1, int(table_bytes * t.share) // (t.dim * _FLOAT_BYTES))
        parts = 1 if t.whole else math.ceil(rows * t.dim * _FLOAT_BYTES / (PARTITION_MAX_MB * MIB))
        if parts == 1:
            shapes[t.name] = (rows, t.dim)
            continue
        for k in range(parts):
            shapes[f"{t.name}/part_{k}"] = (rows // parts + (k < rows % parts), t.dim)
    return {**shapes, **mlp}


def table_variables(shapes: dict[str, tuple[int, ...]], table: EmbeddingTable) -> list[str]:
    """The variables holding `table`: itself, or its partitions in order."""
    if table.name in shapes:
        return [table.name]
    parts: list[str] = []
    while f"{table.name}/part_{len(parts)}" in shapes:
        parts.append(f"{table.name}/part_{len(parts)}")
    return parts


def write_demo_model(
    out_dir: Path,
    versions: int = 3,
    size_mb: float = 128.0,
    warmup: bool = True,
    seed: int = 0,
    cold_path: bool = True,
) -> Path:
    """Write versions 1..N of the demo model under `out_dir` (a base path); return it.

    Versions differ only in their weights (drawn from seed and version). Each version is
    written under a dot-named temp dir and renamed into place, so a model server polling
    `out_dir` never sees a half-written version. With `warmup`, each version carries a
    TF Serving warmup file of small predict requests. Without `cold_path` the graph has no
    first-run normalisation (for tests that plant a cold path of a known length).
    """
    if isinstance(versions, bool) or not isinstance(versions, int) or versions < 1:
        raise UsageError(f"--versions must be an integer >= 1, got {versions!r}")
    if not isinstance(size_mb, int | float) or not size_mb > 0 or size_mb == float("inf"):
        raise UsageError(f"--size-mb must be a number > 0, got {size_mb!r}")
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UsageError(f"{out_dir} already exists and is not an empty directory")
    out_dir.mkdir(parents=True, exist_ok=True)

    shapes = variable_shapes(size_mb)
    for version in range(1, versions + 1):
        partial = out_dir / f".{version}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        rng = np.random.default_rng((seed, version))
        _write_version(partial, shapes, rng, cold_path)
        if warmup:
            _write_warmup(partial, rng)
        os.rename(partial, out_dir / str(version))
    return out_dir


def _random_weights(
    shapes: dict[str, tuple[int, ...]], rng: np.random.Generator
) -> Iterator[tuple[str, np.ndarray]]:
    """Embeddings ~ N(0, 0.05); kernels He-scaled; biases small."""
    for name, shape in shapes.items():
        values = rng.standard_normal(shape, dtype=np.float32)
        if name.endswith("/kernel"):
            values *= np.float32(np.sqrt(2.0 / shape[0]))
        else:
            values *= np.float32(0.05)
        yield name, values


def _write_version(
    export_dir: Path, shapes: dict[str, tuple[int, ...]], rng: np.random.Generator, cold_path: bool
) -> None:
    import tensorflow as tf

    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        weights, feeds = {}, {}
        for name, shape in shapes.items():
            initial = v1.placeholder(tf.float32, shape, name=f"{name}/initial_value")
            weights[name] = v1.Variable(initial, name=name)
            feeds[name] = initial
        inputs, score = _build_forward(tf, weights, shapes, cold_path)
        signature = v1.saved_model.signature_def_utils.predict_signature_def(
            inputs=inputs, outputs={"score": score}
        )
        config = v1.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)
        with v1.Session(graph=graph, config=config) as session:
            # One variable at a time, so at most one table's numpy copy is alive.
            for name, values in _random_weights(shapes, rng):
                session.run(weights[name].initializer, feed_dict={feeds[name]: values})
                del values
            builder = v1.saved_model.Builder(str(export_dir))
            builder.add_meta_graph_and_variables(
                session,
                [v1.saved_model.tag_constants.SERVING],
                signature_def_map={SIGNATURE_NAME: signature},
                strip_default_attrs=True,
            )
            builder.save()


def _build_forward(
    tf: Any, weights: Any, shapes: dict[str, tuple[int, ...]], cold_path: bool
) -> Any:
    """Placeholders and the score: embeddings looked up by id, pooled, concatenated, MLP."""
    v1 = tf.compat.v1
    user_id = v1.placeholder(tf.int64, [None], name="user_id")
    item_ids = v1.placeholder(tf.int64, [None, ITEMS_PER_REQUEST], name="item_ids")
    dense = v1.placeholder(tf.float32, [None, DENSE_FEATURES], name="dense_features")
    cross = tf.math.floormod(user_id, _CROSS_MODULUS)[:, None] * _CROSS_MODULUS + tf.math.floormod(
        item_ids, _CROSS_MODULUS
    )
    ids_by_source = {"user": user_id, "items": item_ids, "cross": cross}

    features = []
    for table in TABLES:
        names = table_variables(shapes, table)
        rows = sum(shapes[name][0] for name in names)
        with tf.name_scope(f"{table.name}_lookup"):
            ids = tf.math.floormod(ids_by_source[table.ids], rows)
            if len(names) == 1:
                vectors = tf.gather(weights[names[0]], ids)
            else:
                partitions = [weights[name] for name in names]
                vectors = v1.nn.embedding_lookup(partitions, ids, partition_strategy="mod")
            if table.ids != "user":
                vectors = tf.reduce_mean(vectors, axis=1)
        features.append(vectors)
    # The signature keeps the placeholder: a request fed to the scaled tensor would skip
    # the normalisation, and with it the cold path.
    scaled = dense * _dense_scale(tf) if cold_path else dense
    hidden = tf.concat([*features, scaled], axis=1)

    layers = len(HIDDEN_UNITS) + 1
    for layer in range(layers):
        hidden = (
            tf.matmul(hidden, weights[f"dense_{layer}/kernel"]) + weights[f"dense_{layer}/bias"]
        )
        if layer < layers - 1:
            hidden = tf.nn.relu(hidden)
    score = tf.sigmoid(tf.squeeze(hidden, axis=1), name="score")
    inputs = {"user_id": user_id, "item_ids": item_ids, "dense_features": dense}
    return inputs, score


def _dense_scale(tf: Any) -> Any:
    """Per dense feature a scale of about 1, from constants only: TensorFlow folds it at the
    first run (the model's cold path) and reuses the result."""
    n = FEATURE_BASIS
    with tf.name_scope("dense_normalisation"):
        basis = tf.reshape(tf.range(n * n, dtype=tf.float32), [n, n]) / float(n * n)
        gram = tf.matmul(basis, basis, transpose_b=True)
        gram = tf.matmul(gram, gram) / float(n)
        scale = tf.reduce_mean(gram, axis=0)[:DENSE_FEATURES]
        return scale / tf.reduce_mean(scale)


def demo_inputs(rng: np.random.Generator, batch: int) -> dict[str, np.ndarray]:
    """A request batch for the demo model: ids over the whole int64 range, any sign."""
    info = np.iinfo(np.int64)

    def ids(shape: tuple[int, ...]) -> np.ndarray:
        return rng.integers(info.min, info.max, shape, dtype=np.int64, endpoint=True)

    return {
        "user_id": ids((batch,)),
        "item_ids": ids((batch, ITEMS_PER_REQUEST)),
        "dense_features": rng.standard_normal((batch, DENSE_FEATURES), dtype=np.float32),
    }


def _write_warmup(version_dir: Path, rng: np.random.Generator) -> None:
    from soak_model_server.warmup import WarmupRequest, write_warmup_requests

    requests = [
        WarmupRequest(SIGNATURE_NAME, demo_inputs(rng, batch=1 + index % 4))
        for index in range(WARMUP_RECORDS)
    ]
    write_warmup_requests(version_dir, DEMO_MODEL_NAME, requests)
