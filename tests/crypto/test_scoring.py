from __future__ import annotations

import numpy as np
import pytest
import tenseal as ts

from fedchain import crypto
from fedchain.errors import ConfigError, CryptoError, SerializationError

LENGTH = 9000  # three chunks


def _scaled(rng: np.random.Generator, norm: float) -> np.ndarray:
    x = rng.normal(size=LENGTH)
    return x * (norm / np.linalg.norm(x))


def test_encrypted_dot_matches_plaintext(scoring_member: ts.Context, scoring_coordinator: ts.Context) -> None:
    rng = np.random.default_rng(0)
    a, b = _scaled(rng, 3.0), _scaled(rng, 5.0)
    ca, cb = crypto.encrypt_update(scoring_member, a), crypto.encrypt_update(scoring_member, b)
    dot = crypto.encrypted_dot(scoring_coordinator, ca, cb)
    (value,) = crypto.decrypt_scalars(scoring_member, dot, 1)
    assert value == pytest.approx(float(a @ b), rel=1e-4, abs=1e-4)


def test_packed_scores_at_weighted_update_magnitudes(
    scoring_member: ts.Context, scoring_coordinator: ts.Context
) -> None:
    """<n_i delta_i, sum> and <n_i delta_i, n_i delta_i> with |delta| up to 100 and n up to 1e4."""
    rng = np.random.default_rng(1)
    weighted = [n * _scaled(rng, norm) for n, norm in [(1e4, 100.0), (1.0, 1.0), (500.0, 10.0)]]
    total = 100 * np.sum(weighted, axis=0)  # stands for the sum over ~100 members of this size
    enc = [crypto.encrypt_update(scoring_member, w) for w in weighted]
    enc_total = crypto.encrypt_update(scoring_member, total)
    dots = [crypto.encrypted_dot(scoring_coordinator, e, enc_total) for e in enc]
    dots += [crypto.encrypted_dot(scoring_coordinator, e, e) for e in enc]
    packed = crypto.pack_scalars(scoring_coordinator, dots)
    values = crypto.decrypt_scalars(scoring_member, packed, len(dots))
    expected = [float(w @ total) for w in weighted] + [float(w @ w) for w in weighted]
    # documented tolerance: 1e-4 relative, plus cross-talk of 1e-9 x the largest packed scalar
    largest = max(abs(v) for v in expected)
    assert largest > 5e13
    for got, want in zip(values, expected, strict=True):
        assert abs(got - want) <= 1e-4 * abs(want) + 1e-9 * largest + 1e-3
    # unpacked, each inner product is exact to 1e-4 relative whatever the others are
    for dot, want in zip(dots, expected, strict=True):
        assert crypto.decrypt_scalars(scoring_member, dot, 1)[0] == pytest.approx(want, rel=1e-4)


def test_dot_needs_evaluation_keys(agg_member: ts.Context) -> None:
    chunks = crypto.encrypt_update(agg_member, np.ones(4))
    with pytest.raises(CryptoError, match="need relinearization and Galois keys: use the SCORING"):
        crypto.encrypted_dot(agg_member, chunks, chunks)


def test_dot_chunk_counts_must_match(scoring_coordinator: ts.Context, scoring_member: ts.Context) -> None:
    a = crypto.encrypt_update(scoring_member, np.ones(5000))
    with pytest.raises(CryptoError, match="inner product of 2 and 1 chunks"):
        crypto.encrypted_dot(scoring_coordinator, a, a[:1])
    with pytest.raises(SerializationError, match="b chunk 1: "):
        crypto.encrypted_dot(scoring_coordinator, a, [a[0], b"junk"])


def test_pack_and_decrypt_check_their_inputs(scoring_member: ts.Context, scoring_coordinator: ts.Context) -> None:
    fresh = crypto.encrypt_update(scoring_member, np.ones(4))
    with pytest.raises(SerializationError, match="scalar 0: vector of size 4096, expected 1"):
        crypto.pack_scalars(scoring_coordinator, fresh)
    with pytest.raises(CryptoError, match="cannot pack 0 scalars"):
        crypto.pack_scalars(scoring_coordinator, [])
    dot = crypto.encrypted_dot(scoring_coordinator, fresh, fresh)
    with pytest.raises(SerializationError, match="scalars: vector of size 1, expected 2"):
        crypto.decrypt_scalars(scoring_member, dot, 2)


def test_a_squared_norm_equals_the_product_with_an_equal_copy(
    scoring_member: ts.Context, scoring_coordinator: ts.Context
) -> None:
    """The squaring shortcut (one load, one product per chunk) computes what the general product does."""
    a = _scaled(np.random.default_rng(4), 7.0)
    chunks = crypto.encrypt_update(scoring_member, a)
    copies = [bytes(bytearray(c)) for c in chunks]  # equal bytes, other objects
    assert all(c is not d for c, d in zip(chunks, copies, strict=True))
    squared = crypto.decrypt_scalars(scoring_member, crypto.encrypted_dot(scoring_coordinator, chunks, chunks), 1)[0]
    again = crypto.decrypt_scalars(scoring_member, crypto.encrypted_dot(scoring_coordinator, chunks, copies), 1)[0]
    assert squared == pytest.approx(49.0, rel=1e-4)
    assert again == pytest.approx(squared, rel=1e-6)


def test_the_sum_members_decrypt_drops_the_primes_only_products_need(
    scoring_member: ts.Context, scoring_coordinator: ts.Context, agg_member: ts.Context
) -> None:
    rng = np.random.default_rng(5)
    weighted = [n * _scaled(rng, 50.0) for n in (1e4, 3.0, 700.0)]
    total = crypto.sum_encrypted(
        scoring_coordinator, [crypto.encrypt_update(scoring_member, w) for w in weighted], expected_chunks=3
    )
    small = crypto.compact_sum(scoring_coordinator, total, max_abs=crypto.SCORING.max_magnitude)
    assert sum(map(len, small)) < 0.6 * sum(map(len, total))
    expected = np.sum(weighted, axis=0)
    for chunks in (total, small):
        np.testing.assert_allclose(crypto.decrypt_update(scoring_member, chunks, LENGTH), expected, rtol=0, atol=1e-3)
    # Nothing to drop under addition-only parameters; more range than a level holds keeps the primes.
    plain = crypto.encrypt_update(agg_member, weighted[1])
    assert crypto.compact_sum(agg_member, plain, max_abs=crypto.AGGREGATION.max_magnitude) == plain
    assert crypto.compact_sum(scoring_coordinator, total, max_abs=2.0**100) == total
    # A sum is decrypted at one level: a chunk at another is refused, naming it.
    with pytest.raises(SerializationError, match=r"chunk 1: [0-9]+ bytes, more than the 266240"):
        crypto.decrypt_update(scoring_member, [small[0], total[1], small[2]], LENGTH)
    with pytest.raises(SerializationError, match="chunk 1: ciphertext at the wrong modulus level"):
        crypto.decrypt_update(scoring_member, [total[0], small[1], total[2]], LENGTH)
    with pytest.raises(SerializationError, match="sum chunk 0"):
        crypto.compact_sum(scoring_coordinator, [b"junk", *total[1:]], max_abs=crypto.SCORING.max_magnitude)


def test_requests_use_the_squares_given_and_need_one_per_member(
    scoring_member: ts.Context, scoring_coordinator: ts.Context
) -> None:
    rng = np.random.default_rng(6)
    a, b = _scaled(rng, 3.0), _scaled(rng, 5.0)
    chunks = {"a": crypto.encrypt_update(scoring_member, a), "b": crypto.encrypt_update(scoring_member, b)}
    running = crypto.EncryptedSum(scoring_coordinator, expected_chunks=len(chunks["a"]), square_norms=True)
    squares: dict[str, bytes] = {}
    for address, upload in chunks.items():
        square = running.add(upload)
        assert square is not None
        squares[address] = square
    given = crypto.build_scalar_requests(scoring_coordinator, chunks, None, squares=squares)
    computed = crypto.build_scalar_requests(scoring_coordinator, chunks, None)
    assert [r.kind for r in given] == [r.kind for r in computed] == ["sq_norms"]
    (from_squares,) = crypto.answer_scalar_requests(scoring_member, given)
    (from_chunks,) = crypto.answer_scalar_requests(scoring_member, computed)
    assert from_squares == pytest.approx(from_chunks, rel=1e-9)
    assert from_squares == pytest.approx([9.0, 25.0], rel=1e-4)
    with pytest.raises(ConfigError, match="squares"):
        crypto.build_scalar_requests(scoring_coordinator, chunks, None, squares={"a": squares["a"]})
