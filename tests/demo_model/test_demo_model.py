"""The demo model: real SavedModels loaded the way TF Serving loads them (TF1 loader)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from soak.core.errors import UsageError
from soak.driver.demo_model import (
    MIB,
    TABLES,
    demo_inputs,
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


def test_full_size_layout_keeps_most_tables_below_glibcs_mmap_threshold():
    shapes = variable_shapes(128)
    table_mib = [math.prod(shapes[t.name]) * 4 / MIB for t in TABLES]
    above = [size for size in table_mib if size > 32]
    assert 1 <= len(above) <= 2
    assert len(table_mib) - len(above) >= 5
    total = sum(math.prod(shape) for shape in shapes.values()) * 4
    assert total == pytest.approx(128 * MIB, rel=0.001)


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
