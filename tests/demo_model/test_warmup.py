"""The warmup file: TF Serving's TFRecord of PredictionLog, written and read back."""

import struct
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from soak_model_server.warmup import (
    MAX_WARMUP_RECORDS,
    WARMUP_FILE,
    PredictionLog,
    WarmupRequest,
    read_warmup_requests,
    write_warmup_requests,
)


def _request(batch: int, signature: str = "serving_default") -> WarmupRequest:
    rng = np.random.default_rng(batch)
    return WarmupRequest(
        signature,
        {
            "user_id": rng.integers(-(2**63), 2**63 - 1, (batch,), dtype=np.int64),
            "dense_features": rng.standard_normal((batch, 3), dtype=np.float32),
            "query": np.array([b"shoes"] * batch, dtype=object),
            "count": np.arange(batch, dtype=np.int32),
        },
    )


def _write_raw_records(version_dir: Path, records: list[bytes]) -> None:
    path = version_dir / WARMUP_FILE
    path.parent.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)


def _raw_records(version_dir: Path) -> list[bytes]:
    return list(tf.compat.v1.io.tf_record_iterator(str(version_dir / WARMUP_FILE)))


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, bytes]]:
    """(field number, payload) of each length-delimited field; fails on any other wire type."""
    fields, pos = [], 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        assert tag & 7 == 2, f"unexpected wire type {tag & 7}"
        length, pos = _varint(buf, pos)
        fields.append((tag >> 3, buf[pos : pos + length]))
        pos += length
    return fields


def test_round_trip_keeps_signatures_and_arrays(tmp_path):
    written = [_request(1), _request(3, signature="rank"), _request(2)]
    path = write_warmup_requests(tmp_path, "ranker", written)

    assert path == tmp_path / "assets.extra" / "tf_serving_warmup_requests"
    read = read_warmup_requests(tmp_path)
    assert [r.signature_name for r in read] == ["serving_default", "rank", "serving_default"]
    for before, after in zip(written, read, strict=True):
        assert before.inputs.keys() == after.inputs.keys()
        for alias, array in before.inputs.items():
            assert after.inputs[alias].dtype == array.dtype
            np.testing.assert_array_equal(after.inputs[alias], array)


def test_no_file_means_no_warmup(tmp_path):
    assert read_warmup_requests(tmp_path) == []


def test_empty_signature_name_means_the_default_signature(tmp_path):
    write_warmup_requests(tmp_path, "m", [_request(1, signature="")])
    assert read_warmup_requests(tmp_path)[0].signature_name == "serving_default"


def test_written_bytes_have_tf_servings_field_layout(tmp_path):
    write_warmup_requests(tmp_path, "ranker", [_request(2, signature="rank")])
    file_bytes = (tmp_path / WARMUP_FILE).read_bytes()
    (record,) = _raw_records(tmp_path)

    # TFRecord framing: little-endian uint64 length, masked crc32c, data, masked crc32c.
    assert struct.unpack("<Q", file_bytes[:8])[0] == len(record)
    assert file_bytes[12 : 12 + len(record)] == record
    assert len(file_bytes) == 8 + 4 + len(record) + 4

    # PredictionLog.predict_log is field 6, length-delimited: tag byte (6 << 3) | 2 = 0x32.
    assert record[0] == 0x32
    ((log_field, predict_log),) = _fields(record)
    assert log_field == 6
    ((request_field, request),) = _fields(predict_log)  # PredictLog.request = 1
    assert request_field == 1
    request_fields = _fields(request)
    spec = [payload for number, payload in request_fields if number == 1]  # model_spec = 1
    inputs = [payload for number, payload in request_fields if number == 2]  # inputs = 2
    assert dict(_fields(spec[0])) == {1: b"ranker", 3: b"rank"}  # name = 1, signature_name = 3
    aliases = set()
    for entry in inputs:  # map entries: key = 1, value (tensorflow.TensorProto) = 2
        key_and_value = dict(_fields(entry))
        aliases.add(key_and_value[1].decode())
        tensor = tf.make_tensor_proto(0)
        tensor.ParseFromString(key_and_value[2])
        assert tf.make_ndarray(tensor).shape[0] == 2
    assert aliases == {"user_id", "dense_features", "query", "count"}

    # And our message classes see the same thing.
    log = PredictionLog.FromString(record)
    assert PredictionLog.DESCRIPTOR.full_name == "tensorflow.serving.PredictionLog"
    assert log.WhichOneof("log_type") == "predict_log"
    assert log.predict_log.request.model_spec.name == "ranker"


def test_exactly_the_maximum_number_of_records_is_accepted(tmp_path):
    write_warmup_requests(tmp_path, "m", [_request(1)] * MAX_WARMUP_RECORDS)
    assert len(read_warmup_requests(tmp_path)) == MAX_WARMUP_RECORDS == 1000


def test_more_records_than_the_maximum_fail_as_in_tf_serving(tmp_path):
    write_warmup_requests(tmp_path, "m", [_request(1)] * (MAX_WARMUP_RECORDS + 1))
    with pytest.raises(ValueError, match=r"exceeds the maximum \(1000\)") as error:
        read_warmup_requests(tmp_path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "content",
    [b"", b"garbage" * 10, b"\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00abc"],
    ids=["empty-file-is-fine", "not-a-tfrecord", "bad-crc"],
)
def test_a_corrupt_file_is_a_one_line_value_error(tmp_path, content):
    path = tmp_path / WARMUP_FILE
    path.parent.mkdir()
    path.write_bytes(content)
    if not content:
        assert read_warmup_requests(tmp_path) == []
        return
    with pytest.raises(ValueError, match="not a valid TFRecord") as error:
        read_warmup_requests(tmp_path)
    assert "\n" not in str(error.value)


def test_a_truncated_file_is_a_value_error(tmp_path):
    write_warmup_requests(tmp_path, "m", [_request(4)] * 3)
    path = tmp_path / WARMUP_FILE
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError):
        read_warmup_requests(tmp_path)


def test_a_record_that_is_not_a_prediction_log_is_a_value_error(tmp_path):
    _write_raw_records(tmp_path, [b"\xff\xff\xff"])
    with pytest.raises(ValueError, match="failed to parse warmup record 0"):
        read_warmup_requests(tmp_path)


def test_other_log_types_are_skipped_and_session_run_fails(tmp_path):
    predict = PredictionLog()
    predict.predict_log.request.model_spec.name = "m"
    predict_bytes = predict.SerializeToString()
    metadata = b"\x0a\x02\x0a\x00"  # log_metadata (1) holding a model_spec: unknown to us
    classify = b"\x12\x00"  # classify_log = 2
    regress = b"\x1a\x00"  # regress_log = 3
    empty = b""  # no log type: TF Serving ignores it
    _write_raw_records(tmp_path, [classify, metadata + predict_bytes, regress, empty])
    (request,) = read_warmup_requests(tmp_path)
    assert request.signature_name == "serving_default"
    assert request.inputs == {}

    session_run = b"\x2a\x00"  # session_run_log = 5: TF Serving fails the load
    _write_raw_records(tmp_path / "2", [predict_bytes, session_run])
    with pytest.raises(ValueError, match="session_run_log"):
        read_warmup_requests(tmp_path / "2")
