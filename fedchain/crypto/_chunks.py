"""Loading one serialized ciphertext chunk under a context, with every check we can make.

What a context can verify about a ciphertext (without the secret key):

* the byte count is at most what an uncompressed two-polynomial ciphertext of the expected level
  takes (:func:`max_chunk_bytes`), checked before anything is parsed or decompressed;
* the bytes are one well-formed TenSEAL vector holding one SEAL ciphertext (:mod:`._wire`), either
  in full or *seeded* (the second polynomial replaced by the seed that regrows it, as members upload:
  :mod:`._seeded`); SEAL expands a seeded one while loading it;
* SEAL's own load checks: the ciphertext's ``parms_id`` (a hash of N, the coefficient moduli and
  the scheme) belongs to this context's modulus chain, and every coefficient is below its prime;
* our checks: the level (``parms_id``) is the one expected, the scale is the context's global scale
  (or the expected one), there are exactly 2 polynomials (relinearized), the vector's logical size,
  and SEAL's ``is_valid_for`` on the loaded ciphertext (metadata and every coefficient).

What it cannot verify: which *key* a ciphertext was made under. A ciphertext encrypted with another
key pair of the same parameters is indistinguishable from a valid one to anyone without the secret
key; it adds noise of the full modulus size to a sum. Members detect that at decryption (decoded
values far outside the representable range, non-zero padding slots: see ``decrypt_update``), and the
signature layer (``fedchain/identity``) ties each upload to a registered member.
"""

from __future__ import annotations

import math
from typing import Any

import tenseal as ts
import tenseal.sealapi as sealapi

from fedchain.crypto._wire import parse_vector_frame
from fedchain.errors import CryptoError, SerializationError

__all__ = [
    "TENSEAL_ERRORS",
    "chunk_level",
    "data_levels",
    "level_data",
    "level_parms_id",
    "load_chunk",
    "magnitude_bound",
    "max_chunk_bytes",
]

TENSEAL_ERRORS = (ValueError, RuntimeError, TypeError, OverflowError, MemoryError)


def level_data(ctx: ts.Context, multiplications: int) -> Any:
    """SEAL's context data of the level ``multiplications`` rescales (or modulus switches) below a fresh encryption.

    Raises:
        CryptoError: when the modulus chain has no such level.
    """
    data = ctx.seal_context().data.first_context_data()
    for _ in range(multiplications):
        data = data.next_context_data()
        if data is None:
            raise CryptoError(f"the context's modulus chain has no level after {multiplications} rescales")
    return data


def level_parms_id(ctx: ts.Context, multiplications: int) -> list[int]:
    """The ``parms_id`` of a ciphertext after ``multiplications`` rescales from a fresh encryption."""
    return list(level_data(ctx, multiplications).parms_id())


def data_levels(ctx: ts.Context) -> int:
    """How many levels a ciphertext of this context can be at: its data primes (1 for AGGREGATION, 4 for SCORING)."""
    return len(ctx.seal_context().data.first_context_data().parms().coeff_modulus())


def chunk_level(ctx: ts.Context, vector: ts.CKKSVector) -> int:
    """The level of a loaded chunk: primes dropped since encryption (by rescales or modulus switches)."""
    return data_levels(ctx) - int(vector.ciphertext()[0].coeff_modulus_size())


#: Frame, SEAL header and compression overhead allowed on top of the raw coefficients.
_CHUNK_SLACK_BYTES = 4096


def max_chunk_bytes(ctx: ts.Context, multiplications: int = 0) -> int:
    """Largest serialized chunk accepted at a level: two uncompressed polynomials, plus slack.

    A well-formed chunk is smaller (zstd, and seeded uploads carry one polynomial): N = 8192 with one
    56-bit prime allows 135,168 bytes against 62,093 for a seeded upload and 123,959 for a sum.

    Example:
        >>> from fedchain.crypto import AGGREGATION, create_secret_context
        >>> max_chunk_bytes(create_secret_context(AGGREGATION))
        135168
    """
    parms = level_data(ctx, multiplications).parms()
    return 2 * parms.poly_modulus_degree() * len(parms.coeff_modulus()) * 8 + _CHUNK_SLACK_BYTES


def magnitude_bound(ctx: ts.Context, multiplications: int = 0) -> float:
    """Largest slot magnitude that decodes correctly at a level, with one bit of margin."""
    bits = level_data(ctx, multiplications).total_coeff_modulus_bit_count()
    return float(2 ** (bits - 2)) / ctx.global_scale


def load_chunk(
    ctx: ts.Context,
    data: bytes,
    *,
    label: str,
    size: int,
    multiplications: int | tuple[int, ...] = 0,
) -> ts.CKKSVector:
    """Deserialize one chunk under ``ctx`` and check it is a ciphertext of this context's kind.

    Args:
        ctx: the context the chunk must belong to (public or secret).
        data: serialized ``CKKSVector`` bytes, the ciphertext in full or seeded.
        label: how error messages name the chunk, e.g. ``"update 3 chunk 7"``.
        size: the vector's expected logical size.
        multiplications: expected number of rescales since encryption (0: fresh), or the allowed ones.

    Raises:
        SerializationError: the bytes are malformed, or do not match the context's parameters.
    """
    levels = (multiplications,) if isinstance(multiplications, int) else multiplications
    limit = max(max_chunk_bytes(ctx, level) for level in levels)
    if isinstance(data, bytes | bytearray | memoryview) and memoryview(data).nbytes > limit:
        raise SerializationError(
            f"{label}: {memoryview(data).nbytes} bytes, more than the {limit} a ciphertext of this context takes"
        )
    try:
        frame = parse_vector_frame(data)
    except SerializationError as exc:
        raise SerializationError(f"{label}: {exc}") from exc
    if frame.size != size:
        raise SerializationError(f"{label}: vector of size {frame.size}, expected {size}")
    scale = ctx.global_scale
    if not math.isclose(frame.scale, scale, rel_tol=1e-9):
        raise SerializationError(
            f"{label}: scale 2^{math.log2(frame.scale):.2f}, expected the context's 2^{math.log2(scale):.2f}"
        )
    try:
        vector = ts.ckks_vector_from(ctx, bytes(data))
        ciphertexts = vector.ciphertext()
    except TENSEAL_ERRORS as exc:
        raise SerializationError(
            f"{label}: not a ciphertext of this context ({exc}); different CKKS parameters or corrupt bytes"
        ) from exc
    if len(ciphertexts) != 1:
        raise SerializationError(f"{label}: {len(ciphertexts)} SEAL ciphertexts in one vector, expected 1")
    ct = ciphertexts[0]
    if list(ct.parms_id()) not in [level_parms_id(ctx, level) for level in levels]:
        raise SerializationError(
            f"{label}: ciphertext at the wrong modulus level ({ct.coeff_modulus_size()} primes) for "
            f"{' or '.join(map(str, levels))} multiplication(s) under this context"
        )
    if ct.size() != 2 or not ct.is_ntt_form() or not math.isclose(ct.scale, scale, rel_tol=1e-9):
        raise SerializationError(
            f"{label}: ciphertext has {ct.size()} polynomials, scale {ct.scale:g}; expected 2 and {scale:g}"
        )
    if not sealapi.is_valid_for(ct, ctx.seal_context().data):
        raise SerializationError(f"{label}: SEAL finds the ciphertext invalid for this context")
    return vector
