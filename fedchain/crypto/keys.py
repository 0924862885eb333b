"""Key custody: who holds which CKKS context.

The federation's secret key is created once at provisioning and held by member nodes only. The
coordinator receives a *public* context: the public key, plus relinearization and Galois keys for
the SCORING preset. :func:`load_coordinator_context` refuses any context that carries a secret key,
so a coordinator cannot be handed one by mistake; without it, decryption raises :class:`CryptoError`.

Example:
    >>> from fedchain.crypto import AGGREGATION, create_secret_context, export_public_context
    >>> from fedchain.crypto import load_coordinator_context
    >>> member_ctx = create_secret_context(AGGREGATION)
    >>> coordinator_ctx = load_coordinator_context(export_public_context(member_ctx))
    >>> coordinator_ctx.has_secret_key()
    False
"""

from __future__ import annotations

import logging

import tenseal as ts

from fedchain.crypto._wire import check_context_frame
from fedchain.crypto.params import CkksParams
from fedchain.errors import CryptoError, SerializationError

__all__ = [
    "context_slot_count",
    "create_secret_context",
    "export_public_context",
    "export_secret_context",
    "load_coordinator_context",
    "load_member_context",
]

logger = logging.getLogger(__name__)

_TENSEAL_ERRORS = (ValueError, RuntimeError, TypeError, OverflowError, MemoryError)


def create_secret_context(params: CkksParams) -> ts.Context:
    """Create a fresh CKKS context holding a new secret key (run once, at provisioning).

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
    """Serialize the public part of a context: public key, and relin + Galois keys when present.

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
            save_public_key=True,
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
            save_public_key=True,
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
    if not ctx.has_public_key():
        raise CryptoError(f"{role} context: no public key; re-export it with export_public_context()")
    return ctx


def load_coordinator_context(data: bytes) -> ts.Context:
    """Load the coordinator's context, refusing any that carries a secret key.

    Args:
        data: bytes from :func:`export_public_context`.

    Returns:
        A public TenSEAL context: it can encrypt, add and (SCORING) multiply, never decrypt.

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
    logger.info("loaded public CKKS context (galois=%s)", ctx.has_galois_keys())
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
