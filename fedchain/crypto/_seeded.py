"""Seeded symmetric encryption: uploads half the size of a TenSEAL ``CKKSVector``.

A fresh symmetric CKKS ciphertext is ``(c0, c1) = (-a*s + m + e, a)`` where ``a`` is uniformly random.
SEAL can save it *seeded*: ``c0`` in full, and in place of ``c1`` the seed of the generator that made
``a``. Whoever loads it under the same parameters (no key needed) regrows ``a`` from the seed and
holds an ordinary two-polynomial ciphertext. So a member's upload carries one polynomial instead of
two: at N = 8192 with one 56-bit data prime, 62,074 bytes of SEAL data per 4096 values (zstd, 3.79
bytes per float32 byte) against 123,950 for TenSEAL's serialization.

TenSEAL 0.3.18 does not expose seeded saves, so the ciphertext is made through ``tenseal.sealapi``
(SEAL's own encoder and encryptor, bound by TenSEAL) and wrapped in TenSEAL's ``CKKSVector``
protobuf frame (:func:`fedchain.crypto._wire.vector_frame`): every reader (``ts.ckks_vector_from``,
hence :func:`fedchain.crypto._chunks.load_chunk`) loads it unchanged, with the same checks, because
SEAL's ``Ciphertext::load`` expands a seeded ciphertext itself. Results of homomorphic operations
(sums, products) are ordinary ciphertexts: only fresh uploads are seeded.

``SerializableCiphertext.save`` only takes a path, so the bytes go through an anonymous in-memory
file (``memfd_create``, Linux) or, elsewhere, a private temporary file; ciphertexts are not secret.

Example:
    >>> import numpy as np
    >>> from fedchain.crypto import AGGREGATION, create_secret_context
    >>> from fedchain.crypto._seeded import SeededEncryptor
    >>> ctx = create_secret_context(AGGREGATION)
    >>> data = SeededEncryptor(ctx).encrypt(np.zeros(4096))
    >>> 60_000 < len(data) < 64_000
    True
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import tenseal as ts
import tenseal.sealapi as sealapi

from fedchain.crypto._wire import vector_frame
from fedchain.errors import CryptoError

__all__ = ["SeededEncryptor", "saved_bytes"]

_MAX_SAVED = 1 << 26  # 64 MiB: far above any ciphertext of the supported parameters


def saved_bytes(obj: Any) -> bytes:
    """What a sealapi object's path-only ``save`` writes, read back into memory.

    Raises:
        CryptoError: when SEAL cannot save, or the file cannot be read back.
    """
    try:
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create("fedchain-ciphertext", os.MFD_CLOEXEC)
            try:
                obj.save(f"/proc/self/fd/{fd}")
                data = os.pread(fd, _MAX_SAVED, 0)
            finally:
                os.close(fd)
        else:  # pragma: no cover - not Linux
            with tempfile.TemporaryDirectory(prefix="fedchain-ct-") as folder:
                path = Path(folder) / "ciphertext"
                obj.save(str(path))
                data = path.read_bytes()
    except (OSError, RuntimeError, ValueError) as exc:
        raise CryptoError(f"saving a ciphertext failed: {exc}") from exc
    if not data:
        raise CryptoError("saving a ciphertext wrote nothing")
    return data


class SeededEncryptor:
    """Encrypts chunks of ``N / 2`` values with the secret key, as seeded ``CKKSVector`` bytes.

    Args:
        ctx: a context holding the secret key (any member's context).

    Raises:
        CryptoError: when the context holds no secret key.
    """

    def __init__(self, ctx: ts.Context) -> None:
        if not ctx.has_secret_key():
            raise CryptoError("seeded encryption needs the secret key: this context holds none")
        seal_context = ctx.seal_context().data
        self._encryptor = sealapi.Encryptor(seal_context, ctx.secret_key().data)
        self._encoder = sealapi.CKKSEncoder(seal_context)
        self._slots = int(self._encoder.slot_count())
        self._scale = float(ctx.global_scale)

    @property
    def slots(self) -> int:
        """Values per chunk (``N / 2``)."""
        return self._slots

    def encrypt(self, values: np.ndarray) -> bytes:
        """Encrypt exactly ``slots`` float64 values (already checked and padded by the caller).

        Returns:
            A serialized ``CKKSVector`` of logical size ``slots`` whose ciphertext is seeded.

        Raises:
            CryptoError: when SEAL fails to encode, encrypt or save.
        """
        if values.shape != (self._slots,):
            raise CryptoError(f"a chunk holds {self._slots} values, got an array of shape {values.shape}")
        try:
            plain = sealapi.Plaintext()
            self._encoder.encode(values.tolist(), self._scale, plain)
            seeded = self._encryptor.encrypt_symmetric(plain)
        except (RuntimeError, ValueError, TypeError, OverflowError, MemoryError) as exc:
            raise CryptoError(f"seeded encryption failed: {exc}") from exc
        return vector_frame(self._slots, saved_bytes(seeded), self._scale)
