"""Garbage never crashes the process: it raises a fedchain error (bounded hypothesis runs)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import tenseal as ts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedchain import crypto
from fedchain.errors import FedChainError, SerializationError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def valid_chunk(agg_member: ts.Context) -> bytes:
    return crypto.encrypt_update(agg_member, np.linspace(-1, 1, 4096))[0]


@FUZZ
@given(data=st.binary(max_size=512))
def test_random_bytes_are_rejected(agg_member: ts.Context, agg_coordinator: ts.Context, data: bytes) -> None:
    _, rejected = _sum_with(agg_member, agg_coordinator, data)
    assert 1 in rejected


@FUZZ
@given(cut=st.integers(min_value=0, max_value=200_000))
def test_truncated_ciphertexts_are_rejected(
    agg_member: ts.Context, agg_coordinator: ts.Context, valid_chunk: bytes, cut: int
) -> None:
    cut %= len(valid_chunk)
    _, rejected = _sum_with(agg_member, agg_coordinator, valid_chunk[:cut])
    assert 1 in rejected


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 7)), min_size=1, max_size=4))
def test_bit_flips_never_crash(
    agg_member: ts.Context, agg_coordinator: ts.Context, valid_chunk: bytes, flips: list[tuple[int, int]]
) -> None:
    mutated = bytearray(valid_chunk)
    for position, bit in flips:
        # half the flips land in the framing and SEAL header, where the checks are
        mutated[position % 64 if position % 2 else position % len(mutated)] ^= 1 << bit
    total, rejected = _sum_with(agg_member, agg_coordinator, bytes(mutated))
    if 1 not in rejected:
        # Some flips in the ciphertext body survive every structural check; the signed digest
        # (verify_digest) is what catches those, and decryption still never crashes.
        with contextlib.suppress(FedChainError):
            crypto.decrypt_update(agg_member, total, 4096)


@FUZZ
@given(data=st.binary(max_size=512))
def test_random_context_bytes_are_rejected(data: bytes) -> None:
    with pytest.raises(FedChainError):
        crypto.load_coordinator_context(data)


def test_empty_protobuf_is_not_a_vector(agg_member: ts.Context, agg_coordinator: ts.Context) -> None:
    # TenSEAL alone accepts b"" as a vector of size 0 with no ciphertext
    assert ts.ckks_vector_from(agg_coordinator, b"").size() == 0
    _, rejected = _sum_with(agg_member, agg_coordinator, b"")
    assert rejected[1] == "chunk 0: ciphertext is empty"


def test_extra_fields_are_refused(agg_member: ts.Context, agg_coordinator: ts.Context, valid_chunk: bytes) -> None:
    _, rejected = _sum_with(agg_member, agg_coordinator, valid_chunk + b"\x20\x01")
    assert rejected[1] == "chunk 0: not a CKKS vector: protobuf fields [1, 2, 3, 4], expected [1, 2, 3]"


def _sum_with(member: ts.Context, ctx: ts.Context, data: bytes) -> tuple[list[bytes], dict[int, str]]:
    good = crypto.encrypt_update(member, np.zeros(4096))
    try:
        return crypto.sum_encrypted_valid(ctx, [good, [data]], expected_chunks=1)
    except SerializationError as exc:  # pragma: no cover - would mean the index was lost
        raise AssertionError(f"unwrapped error: {exc}") from exc
