"""Bounded fuzzing of every decoder that reads bytes from the network or disk.

Each decoder must either return a valid value or raise a fedchain error (``FedChainError``):
never crash, hang or raise something else. ``make fuzz`` runs the same properties with many more
examples (``HYPOTHESIS_PROFILE=fuzz``).
"""

from __future__ import annotations

import contextlib
import json
import os

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedchain.config import FedChainConfig
from fedchain.errors import FedChainError
from fedchain.protocol import record_to_chunks, record_to_weights
from fedchain.serialization import check_weights, load_model, model_bytes
from fedchain.types import record_from_json

settings.register_profile("suite", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))

TEMPLATE = {"0.weight": np.zeros((4, 3), np.float32), "0.bias": np.zeros(4, np.float32)}
VALID_MODEL = model_bytes(TEMPLATE)


def _mutations() -> st.SearchStrategy[bytes]:
    """Random bytes, truncations and bit flips of a valid payload."""
    flips = st.lists(st.tuples(st.integers(0, len(VALID_MODEL) - 1), st.integers(1, 255)), min_size=1, max_size=8)

    def flip(changes: list[tuple[int, int]]) -> bytes:
        data = bytearray(VALID_MODEL)
        for index, mask in changes:
            data[index] ^= mask
        return bytes(data)

    return st.one_of(
        st.binary(max_size=512),
        st.integers(0, len(VALID_MODEL)).map(lambda n: VALID_MODEL[:n]),
        flips.map(flip),
    )


@given(_mutations())
def test_model_files(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("m") / "model.safetensors"
    path.write_bytes(data)
    try:
        weights = load_model(path)
        check_weights(weights, TEMPLATE)
    except FedChainError:
        return


arrays = st.one_of(
    st.builds(
        np.zeros, st.tuples(st.integers(0, 5), st.integers(0, 5)), dtype=st.sampled_from([np.float32, np.float64])
    ),
    st.binary(max_size=64).map(lambda b: np.frombuffer(b, dtype=np.uint8)),
    st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=8).map(
        lambda v: np.asarray(v, np.float32)
    ),
)


@given(st.dictionaries(st.sampled_from(["0.weight", "0.bias", "x", "c0", "c1"]), arrays, max_size=4))
def test_update_arrays(record_arrays):
    record = ArrayRecord({name: Array(np.ascontiguousarray(value)) for name, value in record_arrays.items()})
    with contextlib.suppress(FedChainError):
        check_weights(record_to_weights(record), TEMPLATE)
    with contextlib.suppress(FedChainError):
        record_to_chunks(record)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.sampled_from([*list(FedChainConfig().to_run_config()), "bogus"]), json_values, max_size=6))
def test_run_config(run_config):
    with contextlib.suppress(FedChainError):
        FedChainConfig.from_run_config(run_config)


@given(json_values)
def test_pending_round_records(data):
    with contextlib.suppress(FedChainError):
        record_from_json(data)  # type: ignore[arg-type]


@given(st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode())))
def test_privacy_accountant_state(data):
    from fedchain.privacy import PrivacyAccountant

    with contextlib.suppress(FedChainError):
        PrivacyAccountant.from_json(data)


@given(st.binary(max_size=400))
def test_ckks_contexts(data):
    from fedchain import crypto

    for load in (crypto.load_coordinator_context, crypto.load_member_context):
        with contextlib.suppress(FedChainError):
            load(data)


@pytest.mark.parametrize("suffix", [".csv", ".npz", ".parquet"])
@given(data=st.binary(max_size=400))
def test_member_data_files(tmp_path_factory, suffix, data):
    from fedchain.data import read_table

    path = tmp_path_factory.mktemp("d") / f"data{suffix}"
    path.write_bytes(data)
    with contextlib.suppress(FedChainError):
        read_table(path)
