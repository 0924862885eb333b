"""Homomorphic encryption for fedchain: CKKS parameters, key custody, packed updates, scoring.

TenSEAL is imported only inside this package. Members hold the secret context; the coordinator holds
a public one and can only add (and, with SCORING keys, multiply) ciphertexts.

Example:
    >>> import numpy as np
    >>> from fedchain import crypto
    >>> member = crypto.create_secret_context(crypto.AGGREGATION)
    >>> coordinator = crypto.load_coordinator_context(crypto.export_public_context(member))
    >>> updates = [crypto.encrypt_update(member, np.full(3, w)) for w in (1.0, 2.0)]
    >>> total = crypto.sum_encrypted(coordinator, updates, expected_chunks=1)
    >>> np.round(crypto.decrypt_update(member, total, 3), 3)
    array([3., 3., 3.])
"""

from fedchain.crypto.digest import ciphertext_digest, verify_digest
from fedchain.crypto.keys import (
    can_encrypt,
    can_score,
    context_slot_count,
    create_secret_context,
    export_public_context,
    export_secret_context,
    is_symmetric,
    load_coordinator_context,
    load_member_context,
)
from fedchain.crypto.params import AGGREGATION, MAX_COEFF_MODULUS_BITS_128, SCORING, CkksParams
from fedchain.crypto.scoring import (
    answer_scalar_request,
    answer_scalar_requests,
    build_scalar_requests,
    decrypt_scalars,
    encrypted_dot,
    encrypted_square,
    pack_scalars,
)
from fedchain.crypto.storage import read_context, write_context
from fedchain.crypto.vectors import (
    EncryptedSum,
    UpdateRejectedError,
    chunk_count,
    compact_sum,
    decrypt_update,
    encrypt_update,
    sum_encrypted,
    sum_encrypted_valid,
)

__all__ = [
    "AGGREGATION",
    "CkksParams",
    "EncryptedSum",
    "MAX_COEFF_MODULUS_BITS_128",
    "SCORING",
    "UpdateRejectedError",
    "answer_scalar_request",
    "answer_scalar_requests",
    "build_scalar_requests",
    "can_encrypt",
    "can_score",
    "chunk_count",
    "ciphertext_digest",
    "compact_sum",
    "context_slot_count",
    "create_secret_context",
    "decrypt_scalars",
    "decrypt_update",
    "encrypt_update",
    "encrypted_dot",
    "encrypted_square",
    "export_public_context",
    "export_secret_context",
    "is_symmetric",
    "load_coordinator_context",
    "load_member_context",
    "pack_scalars",
    "read_context",
    "sum_encrypted",
    "sum_encrypted_valid",
    "verify_digest",
    "write_context",
]
