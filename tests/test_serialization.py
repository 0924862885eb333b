import numpy as np
import pytest

from fedchain.errors import IntegrityError, SerializationError
from fedchain.protocol import chunks_to_record, record_to_chunks, record_to_weights, weights_to_record
from fedchain.serialization import (
    check_weights,
    flatten,
    load_model,
    model_bytes,
    model_hash,
    save_model,
    unflatten,
)


@pytest.fixture
def weights():
    rng = np.random.default_rng(0)
    return {"layer.weight": rng.normal(size=(3, 4)).astype(np.float32), "layer.bias": np.zeros(3, np.float32)}


def test_safetensors_round_trip_preserves_values_and_hash(tmp_path, weights):
    digest = save_model(tmp_path / "m.safetensors", weights)
    assert digest == model_hash(weights)
    loaded = load_model(tmp_path / "m.safetensors", expected_hash=digest)
    assert list(loaded) == sorted(weights)
    for name, array in weights.items():
        assert np.array_equal(loaded[name], array) and loaded[name].dtype == array.dtype


def test_canonical_bytes_ignore_insertion_order(weights):
    reordered = dict(reversed(list(weights.items())))
    assert model_bytes(reordered) == model_bytes(weights)


def test_one_changed_byte_is_detected(tmp_path, weights):
    path = tmp_path / "m.safetensors"
    digest = save_model(path, weights)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="does not match the recorded"):
        load_model(path, expected_hash=digest)


def test_garbage_model_file_is_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"\x80\x04not safetensors")  # a pickle header must never be executed
    with pytest.raises(SerializationError, match="not valid safetensors"):
        load_model(path)
    with pytest.raises(SerializationError, match="does not exist"):
        load_model(tmp_path / "absent.safetensors")


def test_check_weights_names_the_mismatch(weights):
    bad_shape = dict(weights, **{"layer.bias": np.zeros(4, np.float32)})
    with pytest.raises(SerializationError, match=r"'layer.bias' has shape \(4,\), expected \(3,\)"):
        check_weights(bad_shape, weights)
    bad_dtype = dict(weights, **{"layer.bias": np.zeros(3, np.float64)})
    with pytest.raises(SerializationError, match="dtype float64, expected float32"):
        check_weights(bad_dtype, weights)
    nan = dict(weights, **{"layer.bias": np.array([0, np.nan, 0], np.float32)})
    with pytest.raises(SerializationError, match="NaN or infinite"):
        check_weights(nan, weights)
    with pytest.raises(SerializationError, match="expected arrays"):
        check_weights({"other": np.zeros(1)}, weights)


def test_flatten_round_trip(weights):
    vector = flatten(weights)
    assert vector.shape == (15,)
    back = unflatten(vector, weights)
    assert all(np.array_equal(back[k], weights[k]) for k in weights)
    with pytest.raises(SerializationError, match="expected \\(15,\\)"):
        unflatten(np.zeros(3), weights)


def test_flower_records_round_trip(weights):
    assert all(np.array_equal(record_to_weights(weights_to_record(weights))[k], weights[k]) for k in weights)
    chunks = [b"\x00\x01", b"abc"]
    assert record_to_chunks(chunks_to_record(chunks)) == chunks


def test_a_0d_buffer_keeps_its_shape_across_the_wire():
    # BatchNorm's num_batches_tracked: the member's shape check refused (1,) against ()
    weights = {"bn.num_batches_tracked": np.array(7, dtype=np.int64), "w": np.ones((2, 3), np.float32)}
    back = record_to_weights(weights_to_record(weights))
    assert back["bn.num_batches_tracked"].shape == () and int(back["bn.num_batches_tracked"]) == 7
    assert back["w"].shape == (2, 3)


def test_a_0d_buffer_keeps_its_shape_on_disk(tmp_path):
    weights = {"bn.num_batches_tracked": np.array(7, dtype=np.int64), "w": np.ones((2, 3), np.float32)}
    digest = save_model(tmp_path / "model.safetensors", weights)
    back = load_model(tmp_path / "model.safetensors", expected_hash=digest)
    assert digest == model_hash(weights) and back["bn.num_batches_tracked"].shape == ()
