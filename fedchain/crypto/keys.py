"""Key custody: who holds which CKKS context.

The federation's secret key is created once at provisioning and held by member nodes only. Members
encrypt with it directly (CKKS *symmetric* encryption): a fresh ciphertext costs half the work of a
public-key one (no product with the public key, no modulus switch down from the key level), and is
the same size and the same kind of ciphertext, so everything downstream is unchanged.

The coordinator receives an *evaluation* context: the parameters, plus relinearization and Galois
keys for the SCORING preset, and no key that encrypts or decrypts. It can add and (SCORING) multiply
ciphertexts, nothing else: :func:`load_coordinator_context` refuses any context that carries a
secret key, decryption raises :class:`CryptoError`, and since it holds no public key either, the
coordinator cannot make a ciphertext under the federation's key, so it cannot pass off an update of
its own as a member's. (Contexts provisioned by fedchain before this change use public-key
encryption; they still load and work.)

Example:
    >>> from fedchain.crypto import AGGREGATION, create_secret_context, export_public_context
    >>> from fedchain.crypto import load_coordinator_context
    >>> member_ctx = create_secret_context(AGGREGATION)
    >>> coordinator_ctx = load_coordinator_context(export_public_context(member_ctx))
    >>> coordinator_ctx.has_secret_key(), can_encrypt(coordinator_ctx)
    (False, False)
"""

from __future__ import annotations

import logging

import tenseal as ts

from fedchain.crypto._wire import check_context_frame
from fedchain.crypto.params import CkksParams
from fedchain.errors import CryptoError, SerializationError

__all__ = [
    "can_encrypt",
    "context_slot_count",
    "create_secret_context",
    "export_public_context",
    "export_secret_context",
    "is_symmetric",
    "load_coordinator_context",
    "load_member_context",
]

logger = logging.getLogger(__name__)

_TENSEAL_ERRORS = (ValueError, RuntimeError, TypeError, OverflowError, MemoryError)


def is_symmetric(ctx: ts.Context) -> bool:
    """Whether ``ctx`` encrypts with the secret key (fedchain's default) rather than a public key.

    Example:
        >>> from fedchain.crypto import AGGREGATION, create_secret_context
        >>> is_symmetric(create_secret_context(AGGREGATION))
        True
    """
    try:
        ctx.has_public_key()
    except ValueError:  # TenSEAL: "has_public_key is not supported for symmetric encryption"
        return True
    return False


def can_encrypt(ctx: ts.Context) -> bool:
    """Whether ``ctx`` holds a key that encrypts: the secret key (symmetric) or a public key.

    Example:
        >>> from fedchain.crypto import AGGREGATION, create_secret_context
        >>> can_encrypt(create_secret_context(AGGREGATION))
        True
    """
    return bool(ctx.has_secret_key() if is_symmetric(ctx) else ctx.has_public_key())


def can_score(ctx: ts.Context) -> bool:
    """Whether ``ctx`` holds the evaluation keys of encrypted inner products (SCORING: relinearization, Galois).

    Example:
        >>> from fedchain.crypto import AGGREGATION, create_secret_context
        >>> can_score(create_secret_context(AGGREGATION))
        False
    """
    return bool(ctx.has_relin_keys() and ctx.has_galois_keys())


def create_secret_context(params: CkksParams) -> ts.Context:
    """Create a fresh CKKS context holding a new secret key (run once, at provisioning).

    The context encrypts symmetrically (with the secret key; see the module docstring).

    Args:
        params: the parameter set, e.g. ``AGGREGATION`` or ``SCORING``. Galois and relinearization
            keys are generated when ``params.galois_keys`` is set.

    Returns:
        A private TenSEAL context with the public and secret keys and the global scale set.

    Raises:
        CryptoError: when SEAL refuses the parameters.

    Example:
        >>> from fedchain.crypto import AGGREGATION, create_secret_context
        >>> create_secret_context(AGGREGATION).has_secret_key()
        True
    """
    try:
        ctx = ts.context(
            ts.SCHEME_TYPE.CKKS,
            poly_modulus_degree=params.poly_modulus_degree,
            coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes),
            encryption_type=ts.ENCRYPTION_TYPE.SYMMETRIC,
        )
        ctx.global_scale = float(2**params.global_scale_bits)
        if params.galois_keys:
            ctx.generate_relin_keys()
            ctx.generate_galois_keys()
    except _TENSEAL_ERRORS as exc:
        raise CryptoError(f"SEAL refused the CKKS parameters {params}: {exc}") from exc
    logger.info(
        "created CKKS context N=%d moduli=%s scale=2^%d galois=%s",
        params.poly_modulus_degree,
        list(params.coeff_mod_bit_sizes),
        params.global_scale_bits,
        params.galois_keys,
    )
    return ctx


def export_public_context(ctx: ts.Context) -> bytes:
    """Serialize what the coordinator may hold: parameters, and relin + Galois keys when present.

    A symmetric context (fedchain's default) exports no encryption key at all; a public-key context
    from an older provisioning exports its public key too.

    Args:
        ctx: any context (usually the member's secret one).

    Returns:
        Bytes that :func:`load_coordinator_context` accepts; they never contain the secret key.

    Example:
        >>> from fedchain.crypto import AGGREGATION, create_secret_context, export_public_context
        >>> data = export_public_context(create_secret_context(AGGREGATION))
        >>> isinstance(data, bytes)
        True
    """
    return bytes(
        ctx.serialize(
            save_public_key=not is_symmetric(ctx),
            save_secret_key=False,
            save_galois_keys=ctx.has_galois_keys(),
            save_relin_keys=ctx.has_relin_keys(),
        )
    )


def export_secret_context(ctx: ts.Context) -> bytes:
    """Serialize a member's full context, secret key included (for member nodes only).

    Args:
        ctx: a context holding the secret key.

    Returns:
        Bytes for :func:`load_member_context`; write them with ``write_context(..., secret=True)``.

    Raises:
        CryptoError: when ``ctx`` has no secret key.

    Example:
        >>> from fedchain.crypto import AGGREGATION, create_secret_context, export_secret_context
        >>> len(export_secret_context(create_secret_context(AGGREGATION))) > 0
        True
    """
    if not ctx.has_secret_key():
        raise CryptoError("cannot export a secret context: this context holds no secret key")
    return bytes(
        ctx.serialize(
            save_public_key=not is_symmetric(ctx),
            save_secret_key=True,
            save_galois_keys=ctx.has_galois_keys(),
            save_relin_keys=ctx.has_relin_keys(),
        )
    )


def _load(data: bytes, role: str) -> ts.Context:
    try:
        ctx = ts.context_from(bytes(data))
    except _TENSEAL_ERRORS as exc:
        raise SerializationError(f"{role} context: TenSEAL cannot load these bytes ({exc})") from exc
    return ctx


def load_coordinator_context(data: bytes) -> ts.Context:
    """Load the coordinator's context, refusing any that carries a secret key.

    Args:
        data: bytes from :func:`export_public_context`.

    Returns:
        A TenSEAL context without a secret key: it can add and (SCORING) multiply, never decrypt (nor
        encrypt, unless it is an older public-key context).

    Raises:
        CryptoError: when the bytes carry a secret key (the coordinator must never hold one).
        SerializationError: when the bytes are not a TenSEAL context.

    Example:
        >>> from fedchain.crypto import AGGREGATION, create_secret_context, export_secret_context
        >>> from fedchain.crypto import load_coordinator_context
        >>> load_coordinator_context(export_secret_context(create_secret_context(AGGREGATION)))
        Traceback (most recent call last):
        ...
        fedchain.errors.CryptoError: refusing a context that holds a CKKS secret key: ...
    """
    refusal = (
        "refusing a context that holds a CKKS secret key: the coordinator must only receive "
        "export_public_context() output"
    )
    if check_context_frame(data):  # decided from the bytes, before the secret reaches memory
        raise CryptoError(refusal)
    ctx = _load(data, "coordinator")
    if ctx.has_secret_key() or not ctx.is_public():
        raise CryptoError(refusal)
    logger.info("loaded the coordinator's CKKS context (galois=%s)", ctx.has_galois_keys())
    return ctx


def load_member_context(data: bytes) -> ts.Context:
    """Load a member's context, which must carry the secret key.

    Args:
        data: bytes from :func:`export_secret_context`.

    Returns:
        A private TenSEAL context that can decrypt.

    Raises:
        CryptoError: when the bytes hold no secret key.
        SerializationError: when the bytes are not a TenSEAL context.

    Example:
        >>> from fedchain.crypto import AGGREGATION, create_secret_context, export_secret_context
        >>> from fedchain.crypto import load_member_context
        >>> load_member_context(export_secret_context(create_secret_context(AGGREGATION))).is_private()
        True
    """
    has_secret = check_context_frame(data)
    ctx = _load(data, "member")
    if not has_secret or not ctx.has_secret_key():
        raise CryptoError(
            "member context holds no CKKS secret key: load the provisioned secret context, not the public one"
        )
    if not can_encrypt(ctx):
        raise CryptoError("member context cannot encrypt (a public-key context saved without its public key)")
    return ctx


def context_slot_count(ctx: ts.Context) -> int:
    """Number of CKKS slots (``N / 2``) of a context.

    Example:
        >>> from fedchain.crypto import AGGREGATION, context_slot_count, create_secret_context
        >>> context_slot_count(create_secret_context(AGGREGATION))
        4096
    """
    degree: int = ctx.seal_context().data.first_context_data().parms().poly_modulus_degree()
    return degree // 2
