"""The demo model: real SavedModels loaded the way TF Serving loads them (TF1 loader)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from soak.core.errors import UsageError
from soak.driver.demo_model import (
    MIB,
    PARTITION_MAX_MB,
    TABLES,
    demo_inputs,
    table_variables,
    variable_shapes,
    write_demo_model,
)
from soak.driver.model_versions import resolve_model
from soak_model_server.warmup import read_warmup_requests

SIZE_MB = 4.0
INT64 = np.iinfo(np.int64)


@pytest.fixture(scope="module")
def base_path(tmp_path_factory):
    return write_demo_model(tmp_path_factory.mktemp("demo") / "model", versions=2, size_mb=SIZE_MB)


def _predict(version_dir, inputs):
    """Load in a fresh graph and session, as TF Serving does per version, and predict."""
    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(version_dir))
        signature = meta_graph.signature_def["serving_default"]
        feeds = {signature.inputs[alias].name: value for alias, value in inputs.items()}
        return session.run(signature.outputs["score"].name, feeds)


def _checkpoint_bytes(version_dir) -> int:
    variables = tf.train.list_variables(str(version_dir / "variables" / "variables"))
    return sum(math.prod(shape) * 4 for _, shape in variables)


def test_writes_numeric_versions_only(base_path):
    assert sorted(p.name for p in base_path.iterdir()) == ["1", "2"]


def test_signature_is_the_documented_predict_signature(base_path):
    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(base_path / "1"))
    signature = meta_graph.signature_def["serving_default"]
    assert signature.method_name == "tensorflow/serving/predict"

    def spec(tensor_info):
        return tf.as_dtype(tensor_info.dtype), [d.size for d in tensor_info.tensor_shape.dim]

    assert {alias: spec(info) for alias, info in signature.inputs.items()} == {
        "user_id": (tf.int64, [-1]),
        "item_ids": (tf.int64, [-1, 8]),
        "dense_features": (tf.float32, [-1, 16]),
    }
    assert {alias: spec(info) for alias, info in signature.outputs.items()} == {
        "score": (tf.float32, [-1])
    }
    # A request feeds the placeholders, so it runs the whole graph (the cold path too).
    assert {alias: info.name for alias, info in signature.inputs.items()} == {
        "user_id": "user_id:0",
        "item_ids": "item_ids:0",
        "dense_features": "dense_features:0",
    }
    needed = tf.compat.v1.graph_util.extract_sub_graph(meta_graph.graph_def, ["score"])
    assert "dense_normalisation/MatMul_1" in {node.name for node in needed.node}


def test_any_int64_id_is_valid(base_path):
    user_id = np.array([INT64.min, INT64.max, -1, 0, 123_456_789_012_345], dtype=np.int64)
    item_ids = np.tile(np.array([INT64.min, INT64.max, -7, 0], dtype=np.int64), (5, 2))
    dense = np.linspace(-3, 3, 5 * 16, dtype=np.float32).reshape(5, 16)
    scores = _predict(
        base_path / "1", {"user_id": user_id, "item_ids": item_ids, "dense_features": dense}
    )
    assert scores.shape == (5,) and scores.dtype == np.float32
    assert np.all((scores > 0) & (scores < 1))


def test_versions_have_different_weights(base_path):
    inputs = demo_inputs(np.random.default_rng(7), batch=6)
    first, second = _predict(base_path / "1", inputs), _predict(base_path / "2", inputs)
    assert not np.allclose(first, second)


def test_same_seed_gives_the_same_model(tmp_path):
    one = write_demo_model(tmp_path / "a", versions=1, size_mb=1, warmup=False, seed=5)
    two = write_demo_model(tmp_path / "b", versions=1, size_mb=1, warmup=False, seed=5)
    other = write_demo_model(tmp_path / "c", versions=1, size_mb=1, warmup=False, seed=6)
    inputs = demo_inputs(np.random.default_rng(1), batch=3)
    np.testing.assert_array_equal(_predict(one / "1", inputs), _predict(two / "1", inputs))
    assert not np.allclose(_predict(one / "1", inputs), _predict(other / "1", inputs))


def test_variables_add_up_to_the_requested_size(base_path):
    for version in ("1", "2"):
        assert _checkpoint_bytes(base_path / version) == pytest.approx(SIZE_MB * MIB, rel=0.01)
    for path in (base_path, base_path / "1"):  # a base path, a SavedModel dir
        size = resolve_model(str(path), demo_size_mb=0).size_bytes
        assert size == pytest.approx(SIZE_MB * MIB, rel=0.02)


@pytest.mark.parametrize("size_mb", [128, 512, 2048])
def test_every_size_keeps_most_weight_below_glibcs_mmap_threshold(size_mb):
    """The same shape at every size: the two whole tables above 32 MiB (returned at once),
    the rest in variables glibc serves from its arenas."""
    shapes = variable_shapes(size_mb)
    mib = {name: math.prod(shape) * 4 / MIB for name, shape in shapes.items()}
    above = sorted(name for name, size in mib.items() if size > 32)
    assert above == sorted(t.name for t in TABLES if t.whole)
    assert all(size <= PARTITION_MAX_MB for name, size in mib.items() if "/part_" in name)
    below = sum(size for size in mib.values() if size <= 32)
    assert below / size_mb == pytest.approx(0.42, abs=0.01)
    assert sum(mib.values()) == pytest.approx(size_mb, rel=0.001)
    for table in TABLES:  # every table present, whole or in parts
        assert table_variables(shapes, table)


def test_a_partitioned_table_serves_every_id(tmp_path):
    """At 256 MiB two tables are partitioned; any int64 id still finds its row."""
    shapes = variable_shapes(256)
    partitioned = [t.name for t in TABLES if len(table_variables(shapes, t)) > 1]
    assert len(partitioned) == 2
    base = write_demo_model(tmp_path / "m", versions=1, size_mb=256, warmup=False)
    assert _checkpoint_bytes(base / "1") == pytest.approx(256 * MIB, rel=0.01)
    ids = np.array([INT64.min, INT64.max, -1, 0, 1, 2, 3, 123_456_789], dtype=np.int64)
    item_ids = np.tile(np.array([INT64.min, INT64.max, -7, 0, 1, 2, 3, 5], dtype=np.int64), (8, 1))
    dense = np.linspace(-3, 3, 8 * 16, dtype=np.float32).reshape(8, 16)
    scores = _predict(base / "1", {"user_id": ids, "item_ids": item_ids, "dense_features": dense})
    assert scores.shape == (8,) and np.all((scores > 0) & (scores < 1))


def test_each_version_carries_predict_warmup_requests(base_path):
    for version in ("1", "2"):
        requests = read_warmup_requests(base_path / version)
        assert len(requests) == 20
        assert {r.signature_name for r in requests} == {"serving_default"}
        scores = _predict(base_path / version, requests[0].inputs)
        assert scores.shape == requests[0].inputs["user_id"].shape


def test_warmup_can_be_left_out(tmp_path):
    base = write_demo_model(tmp_path / "m", versions=1, size_mb=0.5, warmup=False)
    assert read_warmup_requests(base / "1") == []
    assert not (base / "1" / "assets.extra").exists()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"versions": 0},
        {"versions": 2.5},
        {"size_mb": 0},
        {"size_mb": -1},
        {"size_mb": float("nan")},
    ],
)
def test_bad_arguments_are_usage_errors(tmp_path, kwargs):
    with pytest.raises(UsageError):
        write_demo_model(tmp_path / "m", **kwargs)
    assert not (tmp_path / "m").exists()


def test_refuses_to_write_over_an_existing_model(base_path):
    with pytest.raises(UsageError, match="not an empty directory"):
        write_demo_model(base_path, versions=1, size_mb=1)


def test_model_size_of_something_that_is_not_a_model(tmp_path):
    with pytest.raises(UsageError):
        resolve_model(str(tmp_path), demo_size_mb=0)
    with pytest.raises(UsageError):
        resolve_model(str(tmp_path / "missing"), demo_size_mb=0)
