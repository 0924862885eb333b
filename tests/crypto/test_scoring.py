from __future__ import annotations

import numpy as np
import pytest
import tenseal as ts

from fedchain import crypto
from fedchain.errors import CryptoError, SerializationError

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
