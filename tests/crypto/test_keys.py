from __future__ import annotations

import numpy as np
import pytest
import tenseal as ts

from fedchain import crypto
from fedchain.errors import CryptoError, SerializationError


def test_public_export_has_no_secret_key(agg_member: ts.Context) -> None:
    public = crypto.export_public_context(agg_member)
    assert not ts.context_from(public).has_secret_key()
    assert crypto.load_coordinator_context(public).is_public()


def test_coordinator_refuses_a_secret_context(agg_member: ts.Context) -> None:
    with pytest.raises(CryptoError) as info:
        crypto.load_coordinator_context(crypto.export_secret_context(agg_member))
    assert "refusing a context that holds a CKKS secret key" in str(info.value)


def test_coordinator_cannot_decrypt(agg_member: ts.Context, agg_coordinator: ts.Context) -> None:
    chunks = crypto.encrypt_update(agg_member, np.arange(10.0))
    with pytest.raises(CryptoError, match="holds no CKKS secret key"):
        crypto.decrypt_update(agg_coordinator, chunks, 10)
    # Not just our guard: TenSEAL itself has no key to decrypt with.
    vector = ts.ckks_vector_from(agg_coordinator, chunks[0])
    with pytest.raises(ValueError, match="secret"):
        vector.decrypt()
    with pytest.raises(CryptoError, match="holds no CKKS secret key"):
        crypto.decrypt_scalars(agg_coordinator, chunks[0], 1)


def test_coordinator_context_cannot_encrypt(agg_coordinator: ts.Context) -> None:
    """Members encrypt with the secret key, so the coordinator cannot forge a member's ciphertext."""
    assert crypto.is_symmetric(agg_coordinator) and not crypto.can_encrypt(agg_coordinator)
    with pytest.raises(CryptoError, match="holds no encryption key"):
        crypto.encrypt_update(agg_coordinator, np.ones(5))
    with pytest.raises(ValueError, match="doesn't support encryption"):  # not just our guard
        ts.ckks_vector(agg_coordinator, [1.0])


def test_public_key_contexts_from_older_provisioning_still_work() -> None:
    legacy = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[56, 40])
    legacy.global_scale = 2.0**30
    member = crypto.load_member_context(crypto.export_secret_context(legacy))
    coordinator = crypto.load_coordinator_context(crypto.export_public_context(legacy))
    assert not crypto.is_symmetric(member) and coordinator.has_public_key() and not coordinator.has_secret_key()
    total = crypto.sum_encrypted(coordinator, [crypto.encrypt_update(member, np.ones(5))] * 2, expected_chunks=1)
    np.testing.assert_allclose(crypto.decrypt_update(member, total, 5), np.full(5, 2.0), atol=1e-4)


def test_symmetric_and_public_key_ciphertexts_cost_the_same_bytes(agg_member: ts.Context) -> None:
    legacy = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[56, 40])
    legacy.global_scale = 2.0**30
    values = np.random.default_rng(0).normal(size=4096)
    symmetric = len(crypto.encrypt_update(agg_member, values)[0])
    public_key = len(crypto.encrypt_update(legacy, values)[0])
    assert abs(symmetric - public_key) < 0.01 * public_key


def test_member_context_requires_secret_key(agg_member: ts.Context) -> None:
    assert crypto.load_member_context(crypto.export_secret_context(agg_member)).has_secret_key()
    with pytest.raises(CryptoError) as info:
        crypto.load_member_context(crypto.export_public_context(agg_member))
    assert "member context holds no CKKS secret key" in str(info.value)


def test_export_secret_refuses_a_public_context(agg_coordinator: ts.Context) -> None:
    with pytest.raises(CryptoError, match="holds no secret key"):
        crypto.export_secret_context(agg_coordinator)


def test_scoring_public_context_carries_evaluation_keys(scoring_coordinator: ts.Context) -> None:
    assert scoring_coordinator.has_galois_keys() and scoring_coordinator.has_relin_keys()
    assert not scoring_coordinator.has_secret_key()


@pytest.mark.parametrize("data", [b"", b"\x00", b"not a context", b"\n\x02\x80 "])
def test_garbage_context_bytes_raise_serialization_error(data: bytes) -> None:
    for load in (crypto.load_coordinator_context, crypto.load_member_context):
        with pytest.raises(SerializationError):
            load(data)


def test_truncated_context_raises_serialization_error(agg_member: ts.Context) -> None:
    public = crypto.export_public_context(agg_member)
    with pytest.raises(SerializationError, match=r"coordinator context|declares"):
        crypto.load_coordinator_context(public[: len(public) // 2])
