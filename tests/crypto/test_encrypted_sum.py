from __future__ import annotations

import numpy as np
import pytest
import tenseal as ts

from fedchain import crypto
from fedchain.errors import ConfigError, CryptoError


def test_running_sum_matches_the_batch_sum(agg_member: ts.Context, agg_coordinator: ts.Context) -> None:
    rng = np.random.default_rng(3)
    values = [rng.normal(scale=0.5, size=5000) for _ in range(3)]
    uploads = [crypto.encrypt_update(agg_member, v) for v in values]
    running = crypto.EncryptedSum(agg_coordinator, expected_chunks=2, expected_length=5000)
    assert running.count == 0
    for upload in uploads:
        running.add(upload)
    assert running.count == 3
    result = crypto.decrypt_update(agg_member, running.result(), 5000)
    np.testing.assert_allclose(result, sum(values), rtol=0, atol=1e-4)


def test_rejected_update_leaves_the_sum_unchanged(agg_member: ts.Context, agg_coordinator: ts.Context) -> None:
    good = crypto.encrypt_update(agg_member, np.ones(5000))
    running = crypto.EncryptedSum(agg_coordinator, expected_chunks=2)
    running.add(good)
    before = running.result()
    # the first chunk is valid and would load: the second is truncated, so nothing may be added
    bad = [good[0], good[1][:-100]]
    with pytest.raises(crypto.UpdateRejectedError) as info:
        running.add(bad)
    assert info.value.index == 1 and info.value.reason.startswith("chunk 1: ")
    with pytest.raises(crypto.UpdateRejectedError, match="update 7 rejected: 1 chunks, expected 2"):
        running.add(good[:1], index=7)
    assert running.count == 1
    after = running.result()
    np.testing.assert_allclose(
        crypto.decrypt_update(agg_member, after, 5000), crypto.decrypt_update(agg_member, before, 5000), atol=1e-6
    )
    np.testing.assert_allclose(crypto.decrypt_update(agg_member, after, 5000), np.ones(5000), atol=1e-4)
    running.add(good)
    np.testing.assert_allclose(crypto.decrypt_update(agg_member, running.result(), 5000), np.full(5000, 2.0), atol=1e-4)


def test_empty_sum_and_bad_expectations(agg_coordinator: ts.Context) -> None:
    with pytest.raises(CryptoError, match="no encrypted update to sum"):
        crypto.EncryptedSum(agg_coordinator, expected_chunks=1).result()
    with pytest.raises(ConfigError):
        crypto.EncryptedSum(agg_coordinator, expected_chunks=0)
    with pytest.raises(ConfigError):
        crypto.EncryptedSum(agg_coordinator, expected_chunks=1, expected_length=5000)


def test_squared_norms_come_from_the_chunks_loaded_for_the_sum(
    scoring_member: ts.Context, scoring_coordinator: ts.Context
) -> None:
    rng = np.random.default_rng(5)
    values = [rng.normal(scale=2.0, size=5000) for _ in range(2)]
    uploads = [crypto.encrypt_update(scoring_member, v) for v in values]
    running = crypto.EncryptedSum(scoring_coordinator, expected_chunks=2, expected_length=5000, square_norms=True)
    squares = [running.add(upload) for upload in uploads]
    for value, upload, square in zip(values, uploads, squares, strict=True):
        assert square is not None
        (got,) = crypto.decrypt_scalars(scoring_member, square, 1)
        (apart,) = crypto.decrypt_scalars(scoring_member, crypto.encrypted_dot(scoring_coordinator, upload, upload), 1)
        assert got == pytest.approx(float(value @ value), rel=1e-4)
        assert got == pytest.approx(apart, rel=1e-9, abs=1e-6)  # the same products, in the same order
    # the sum is the same as without the squares
    np.testing.assert_allclose(
        crypto.decrypt_update(scoring_member, running.result(), 5000), sum(values), rtol=0, atol=1e-3
    )
    # a rejected update yields no square and changes nothing
    with pytest.raises(crypto.UpdateRejectedError):
        running.add([uploads[0][0], uploads[0][1][:-100]])
    assert running.count == 2


def test_squared_norms_need_scoring_keys(agg_member: ts.Context, agg_coordinator: ts.Context) -> None:
    with pytest.raises(CryptoError, match="SCORING"):
        crypto.EncryptedSum(agg_coordinator, expected_chunks=1, square_norms=True)
    running = crypto.EncryptedSum(agg_coordinator, expected_chunks=1)
    assert running.add(crypto.encrypt_update(agg_member, np.ones(3))) is None
