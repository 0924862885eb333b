from __future__ import annotations

import re

import numpy as np
import pytest
import tenseal as ts

from fedchain import crypto
from fedchain.errors import ConfigError, CryptoError, SerializationError


def test_weighted_sum_of_ten_members(agg_member: ts.Context, agg_coordinator: ts.Context) -> None:
    rng = np.random.default_rng(0)
    length = 6000  # two chunks, the second one padded
    deltas = [rng.normal(scale=0.1, size=length) for _ in range(10)]
    weights = rng.integers(1, 10_000, size=10)
    uploads = [crypto.encrypt_update(agg_member, float(n) * d) for n, d in zip(weights, deltas, strict=True)]
    total = crypto.sum_encrypted(agg_coordinator, uploads, expected_chunks=2, expected_length=length)
    expected = sum(float(n) * d for n, d in zip(weights, deltas, strict=True))
    result = crypto.decrypt_update(agg_member, total, length)
    assert result.dtype == np.float64 and result.shape == (length,)
    np.testing.assert_allclose(result, expected, rtol=0, atol=1e-4)


def test_round_trip_100k(agg_member: ts.Context, agg_coordinator: ts.Context) -> None:
    flat = np.random.default_rng(1).normal(size=100_000).astype(np.float32)
    chunks = crypto.encrypt_update(agg_member, flat)
    assert len(chunks) == crypto.chunk_count(100_000, 4096) == 25
    total = crypto.sum_encrypted(agg_coordinator, [chunks, chunks], expected_chunks=25, expected_length=100_000)
    np.testing.assert_allclose(crypto.decrypt_update(agg_member, total, 100_000), 2 * flat, atol=1e-4)


def test_chunk_count_mismatch_names_the_update(agg_member: ts.Context, agg_coordinator: ts.Context) -> None:
    good = crypto.encrypt_update(agg_member, np.ones(5000))
    with pytest.raises(crypto.UpdateRejectedError) as info:
        crypto.sum_encrypted(agg_coordinator, [good, good[:1], good], expected_chunks=2)
    assert info.value.index == 1
    assert str(info.value) == "update 1 rejected: 1 chunks, expected 2"


def test_malformed_chunk_names_update_and_chunk(agg_member: ts.Context, agg_coordinator: ts.Context) -> None:
    good = crypto.encrypt_update(agg_member, np.ones(5000))
    bad = [good[0], good[1][:-100]]
    with pytest.raises(crypto.UpdateRejectedError) as info:
        crypto.sum_encrypted(agg_coordinator, [good, good, bad], expected_chunks=2)
    assert str(info.value).startswith("update 2 rejected: chunk 1: ")
    assert isinstance(info.value.__cause__, SerializationError)


def test_round_continues_without_rejected_members(agg_member: ts.Context, agg_coordinator: ts.Context) -> None:
    ones = crypto.encrypt_update(agg_member, np.ones(10))
    twos = crypto.encrypt_update(agg_member, np.full(10, 2.0))
    total, rejected = crypto.sum_encrypted_valid(
        agg_coordinator, [ones, [b"garbage"], twos, [], ones + ones], expected_chunks=1
    )
    assert sorted(rejected) == [1, 3, 4]
    assert rejected[3] == "0 chunks, expected 1"
    assert rejected[4] == "2 chunks, expected 1"
    assert rejected[1].startswith("chunk 0: ")
    np.testing.assert_allclose(crypto.decrypt_update(agg_member, total, 10), np.full(10, 3.0), atol=1e-4)


def test_no_valid_update(agg_coordinator: ts.Context) -> None:
    with pytest.raises(CryptoError, match=r"no valid encrypted update to sum \(0: chunk 0: "):
        crypto.sum_encrypted_valid(agg_coordinator, [[b""]], expected_chunks=1)
    with pytest.raises(CryptoError, match="no encrypted update to sum"):
        crypto.sum_encrypted(agg_coordinator, [], expected_chunks=1)


def test_other_parameters_are_rejected(
    scoring_member: ts.Context, agg_member: ts.Context, agg_coordinator: ts.Context
) -> None:
    foreign = crypto.encrypt_update(scoring_member, np.ones(10))  # SCORING parameters, other scale
    good = crypto.encrypt_update(agg_member, np.ones(10))
    _, rejected = crypto.sum_encrypted_valid(agg_coordinator, [good, foreign], expected_chunks=1)
    # a SCORING chunk carries four primes: refused by its size before anything is parsed
    assert list(rejected) == [1]
    assert re.fullmatch(r"chunk 0: 19\d{4} bytes, more than the 135168 a ciphertext of this context takes", rejected[1])
    # a chunk of the same size but another scale is refused by its scale
    rescaled = crypto.create_secret_context(
        crypto.CkksParams(poly_modulus_degree=8192, coeff_mod_bit_sizes=(56, 40), global_scale_bits=36)
    )
    _, rejected = crypto.sum_encrypted_valid(
        agg_coordinator, [good, crypto.encrypt_update(rescaled, np.ones(10))], expected_chunks=1
    )
    assert rejected == {1: "chunk 0: scale 2^36.00, expected the context's 2^30.00"}


def test_other_parameters_same_scale_are_rejected(agg_member: ts.Context, agg_coordinator: ts.Context) -> None:
    other = crypto.create_secret_context(
        crypto.CkksParams(poly_modulus_degree=8192, coeff_mod_bit_sizes=(60, 40), global_scale_bits=30)
    )
    good = crypto.encrypt_update(agg_member, np.ones(10))
    _, rejected = crypto.sum_encrypted_valid(
        agg_coordinator, [good, crypto.encrypt_update(other, np.ones(10))], expected_chunks=1
    )
    assert rejected[1].startswith("chunk 0: not a ciphertext of this context (ciphertext data is invalid)")


def test_other_key_same_parameters(agg_member: ts.Context, agg_coordinator: ts.Context) -> None:
    """What we guarantee: the coordinator cannot tell (no secret key), the decrypting member can."""
    stranger = crypto.create_secret_context(crypto.AGGREGATION)
    honest = crypto.encrypt_update(agg_member, np.ones(100))
    forged = crypto.encrypt_update(stranger, np.ones(100))
    total, rejected = crypto.sum_encrypted_valid(agg_coordinator, [honest, forged], expected_chunks=1)
    assert rejected == {}  # indistinguishable without the secret key: documented limitation
    with pytest.raises(CryptoError, match="encrypted under another key"):
        crypto.decrypt_update(agg_member, total, 100)


def test_other_key_is_detected_without_padding(agg_member: ts.Context) -> None:
    stranger = crypto.create_secret_context(crypto.AGGREGATION)
    forged = crypto.encrypt_update(stranger, np.ones(4096))
    with pytest.raises(CryptoError, match=r"decrypted values reach .* encrypted under another key"):
        crypto.decrypt_update(agg_member, forged, 4096)


@pytest.mark.parametrize(
    ("flat", "message"),
    [
        (np.array([1.0, np.nan]), "must be finite values. Got 'nan at index 1'."),
        (np.ones((2, 2)), "must be a non-empty 1-D numpy array. Got 'array of shape (2, 2)'."),
        (np.array([]), "must be a non-empty 1-D numpy array"),
        (np.array([1e9]), "values of magnitude at most 1.68e+07"),
        (np.array(["a"]), "must be a real numeric array"),
        ([1.0, 2.0], "must be a 1-D numpy array. Got 'list'."),
    ],
)
def test_encrypt_validates_input(agg_member: ts.Context, flat: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        crypto.encrypt_update(agg_member, flat)  # type: ignore[arg-type]
    assert str(info.value).startswith("The 'flat' parameter must be")
    assert message in str(info.value)


def test_expected_sizes_are_validated(agg_coordinator: ts.Context) -> None:
    with pytest.raises(ConfigError, match=r"'expected_chunks' parameter must be ceil\(expected_length / 4096\)"):
        crypto.sum_encrypted(agg_coordinator, [[b""]], expected_chunks=2, expected_length=100)
    with pytest.raises(ConfigError, match="'expected_chunks' parameter must be an int in"):
        crypto.sum_encrypted(agg_coordinator, [[b""]], expected_chunks=0)


def test_decrypt_length_must_fit_chunks(agg_member: ts.Context) -> None:
    chunks = crypto.encrypt_update(agg_member, np.ones(5000))
    with pytest.raises(ConfigError, match="'length' parameter must be a length that fits 2 chunks"):
        crypto.decrypt_update(agg_member, chunks, 100)
