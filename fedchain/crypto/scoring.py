"""Encrypted inner products for scoring and norm checks (SCORING parameters only).

The coordinator computes ``<a, b>`` on ciphertexts with its public context (relinearization and
Galois keys): one ciphertext x ciphertext product per chunk pair (one squaring for a squared norm),
the three-polynomial products added, then one relinearization and one rescale of the total, and one
rotate-and-add sum over all slots (12 rotations at N = 8192). Relinearizing and rescaling once
instead of per chunk makes a chunk cost about its load and its product: measured at N = 8192, 4 data
primes, per chunk: load 2.6 ms, product 1.0 ms, relinearization 6.2 ms, rescale 1.4 ms. SEAL's own
evaluator does the work (``tenseal.sealapi``): TenSEAL's ``CKKSVector.mul`` relinearizes and
rescales every product. Because every chunk fills all slots,
the sum leaves ``<a, b>`` in *every* slot: decrypting it reveals that scalar and nothing else.
:func:`pack_scalars` then places several such scalars in one ciphertext (a plaintext matrix product
with a one-hot row, one more level) for the decrypt committee, who call :func:`decrypt_scalars`.

Error, measured with SCORING (``[50, 36, 36, 36, 60]``, scale ``2**36``) on 100k-value vectors with
``a = n * delta`` (``|delta|`` from 1 to 100, ``n`` from 1 to 1e4) and ``b`` up to 100 such updates:

* relative error of ``<a, b>`` about ``4e-6``, and ``2e-5`` after packing: mostly a systematic
  bias, because TenSEAL's rescale assumes each dropped 36-bit prime equals the scale ``2**36``;
* packing adds cross-talk: every packed slot also carries up to about ``5e-10`` times the *largest*
  packed scalar (encoding error of the plaintext zeros; measured 2.5e4 next to 1e14). Budget
  ``1e-4 * |x_j| + 1e-9 * max_k |x_k|``; pack scalars of similar magnitude together (e.g. all
  ``<d_i, sum>`` apart from all ``<d_i, d_i>``), or decrypt an unpacked :func:`encrypted_dot`
  ciphertext, which has no cross-talk;
* an absolute floor near ``1e-5`` for 100k values (fresh noise times the other operand): inner products
  below about 1 should not be trusted beyond ``1e-4`` relative;
* packed scalars must stay below ``2**48 ~ 2.8e14`` (``SCORING.max_magnitude``) or they wrap around;
  unpacked ones below ``2**84``. ``<n delta, sum>`` with ``n <= 1e4``, ``|delta| <= 100`` and 100
  members reaches 1e14: within range, with no room for much more. Divide plaintext-side, never by
  a tiny plaintext factor under encryption (precision drops by the factor).

Example:
    >>> import numpy as np
    >>> from fedchain.crypto import SCORING, create_secret_context, decrypt_scalars
    >>> from fedchain.crypto import encrypt_update, encrypted_dot
    >>> ctx = create_secret_context(SCORING)
    >>> a = encrypt_update(ctx, np.array([1.0, 2.0, 3.0]))
    >>> round(decrypt_scalars(ctx, encrypted_dot(ctx, a, a), 1)[0], 3)
    14.0
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import tenseal as ts
import tenseal.sealapi as sealapi

from fedchain.crypto._chunks import TENSEAL_ERRORS, load_chunk, magnitude_bound
from fedchain.crypto._seeded import saved_bytes
from fedchain.crypto._wire import vector_frame
from fedchain.crypto.keys import can_score, context_slot_count
from fedchain.errors import ConfigError, CryptoError
from fedchain.types import ScalarRequest

__all__ = [
    "answer_scalar_request",
    "answer_scalar_requests",
    "build_scalar_requests",
    "decrypt_scalars",
    "encrypted_dot",
    "encrypted_square",
    "pack_scalars",
]

logger = logging.getLogger(__name__)


def _require_eval_keys(ctx: ts.Context) -> None:
    if not can_score(ctx):
        raise CryptoError(
            "encrypted inner products need relinearization and Galois keys: use the SCORING parameters "
            "and export_public_context() of a SCORING context"
        )


def encrypted_dot(public_ctx: ts.Context, a_chunks: Sequence[bytes], b_chunks: Sequence[bytes]) -> bytes:
    """Compute ``Enc(<a, b>)`` from two chunked ciphertexts of equal length.

    Args:
        public_ctx: a SCORING context with relinearization and Galois keys (no secret key needed).
        a_chunks: chunks of ``a`` from ``encrypt_update``.
        b_chunks: chunks of ``b``, as many as ``a_chunks``.

    Returns:
        One serialized ciphertext of logical size 1 whose slots all hold ``<a, b>``.

    Raises:
        CryptoError: when the context lacks evaluation keys or the chunk counts differ.
        SerializationError: when a chunk is malformed or not of this context.

    Example:
        >>> import numpy as np
        >>> from fedchain.crypto import SCORING, create_secret_context, encrypt_update, encrypted_dot
        >>> ctx = create_secret_context(SCORING)
        >>> x = encrypt_update(ctx, np.ones(4))
        >>> isinstance(encrypted_dot(ctx, x, x), bytes)
        True
    """
    _require_eval_keys(public_ctx)
    if len(a_chunks) != len(b_chunks) or not a_chunks:
        raise CryptoError(f"inner product of {len(a_chunks)} and {len(b_chunks)} chunks: need the same, non-zero count")
    slots = context_slot_count(public_ctx)
    products = _Products(public_ctx)
    for position, (a_data, b_data) in enumerate(zip(a_chunks, b_chunks, strict=True)):
        squaring = a_data is b_data or a_data == b_data  # a squared norm: load and multiply once
        a = load_chunk(public_ctx, a_data, label=f"a chunk {position}", size=slots).ciphertext()[0]
        b = a if squaring else load_chunk(public_ctx, b_data, label=f"b chunk {position}", size=slots).ciphertext()[0]
        products.add(position, a, None if squaring else b)
    return products.slot_sum()


def encrypted_square(public_ctx: ts.Context, vectors: Sequence[ts.CKKSVector]) -> bytes:
    """``Enc(||a||^2)`` from the chunks of ``a`` already loaded (as :func:`encrypted_dot` of ``a`` with itself).

    For a coordinator that has just loaded and checked a member's chunks to add them to a sum
    (:class:`fedchain.crypto.EncryptedSum` with ``square_norms=True``): the squared norm the
    committee decrypts comes from the same load, not from a second one.

    Raises:
        CryptoError: when the context lacks evaluation keys, ``vectors`` is empty, or SEAL fails.

    Example:
        >>> import numpy as np
        >>> from fedchain.crypto import SCORING, create_secret_context, decrypt_scalars, encrypt_update
        >>> from fedchain.crypto._chunks import load_chunk
        >>> ctx = create_secret_context(SCORING)
        >>> chunks = encrypt_update(ctx, np.array([1.0, 2.0, 3.0]))
        >>> vectors = [load_chunk(ctx, c, label="a", size=4096) for c in chunks]
        >>> round(decrypt_scalars(ctx, encrypted_square(ctx, vectors), 1)[0], 3)
        14.0
    """
    _require_eval_keys(public_ctx)
    if not vectors:
        raise CryptoError("the squared norm of no chunks")
    products = _Products(public_ctx)
    for position, vector in enumerate(vectors):
        try:
            ciphertext = vector.ciphertext()[0]
        except TENSEAL_ERRORS as exc:
            raise CryptoError(f"reading chunk {position} failed: {exc}") from exc
        products.add(position, ciphertext, None)
    return products.slot_sum()


class _Products:
    """The sum of chunk products (three-polynomial ciphertexts), then its slot sum (see the module doc)."""

    def __init__(self, public_ctx: ts.Context) -> None:
        self._ctx = public_ctx
        self._evaluator = sealapi.Evaluator(public_ctx.seal_context().data)
        self._total: Any = None

    def add(self, position: int, a: Any, b: Any | None) -> None:
        """Add ``a * b`` (``a * a`` when ``b`` is None) to the total."""
        product = sealapi.Ciphertext()
        try:
            if b is None:
                self._evaluator.square(a, product)
            else:
                self._evaluator.multiply(a, b, product)
            if self._total is None:
                self._total = product
            else:
                self._evaluator.add_inplace(self._total, product)  # three-polynomial products add as they are
        except TENSEAL_ERRORS as exc:
            raise CryptoError(f"encrypted product of chunk {position} failed: {exc}") from exc

    def slot_sum(self) -> bytes:
        """Relinearize and rescale the total once, then rotate-and-add: the inner product in every slot."""
        evaluator, total, ctx = self._evaluator, self._total, self._ctx
        if total is None:
            raise CryptoError("no chunk product to sum")
        try:
            evaluator.relinearize_inplace(total, ctx.relin_keys().data)
            evaluator.rescale_to_next_inplace(total)
            total.scale = ctx.global_scale  # as TenSEAL's auto-rescale: the dropped prime counts as the scale
            galois_keys = ctx.galois_keys().data
            step = 1
            slots = context_slot_count(ctx)
            while step < slots:  # rotate-and-add over all slots: <a, b> in every slot
                rotated = sealapi.Ciphertext()
                evaluator.rotate_vector(total, step, galois_keys, rotated)
                evaluator.add_inplace(total, rotated)
                step <<= 1
        except TENSEAL_ERRORS as exc:
            raise CryptoError(f"encrypted slot sum failed: {exc}") from exc
        return vector_frame(1, saved_bytes(total), ctx.global_scale)


def pack_scalars(public_ctx: ts.Context, dots: Sequence[bytes]) -> bytes:
    """Pack inner-product ciphertexts into one ciphertext, ``dots[j]`` in slot ``j``.

    Args:
        public_ctx: the SCORING public context.
        dots: ciphertexts from :func:`encrypted_dot`, at most ``N / 2`` of them.

    Returns:
        One serialized ciphertext of logical size ``len(dots)``, for :func:`decrypt_scalars`.

    Raises:
        CryptoError: when the context lacks evaluation keys, or ``dots`` is empty or too long.
        SerializationError: when an element is not an inner-product ciphertext of this context.

    Example:
        >>> import numpy as np
        >>> from fedchain.crypto import SCORING, create_secret_context, decrypt_scalars
        >>> from fedchain.crypto import encrypt_update, encrypted_dot, pack_scalars
        >>> ctx = create_secret_context(SCORING)
        >>> x, y = encrypt_update(ctx, np.ones(4)), encrypt_update(ctx, np.arange(4.0))
        >>> packed = pack_scalars(ctx, [encrypted_dot(ctx, x, x), encrypted_dot(ctx, x, y)])
        >>> [round(v, 3) for v in decrypt_scalars(ctx, packed, 2)]
        [4.0, 6.0]
    """
    _require_eval_keys(public_ctx)
    slots = context_slot_count(public_ctx)
    count = len(dots)
    if not 1 <= count <= slots:
        raise CryptoError(f"cannot pack {count} scalars: between 1 and {slots} fit in one ciphertext")
    # Each dot holds its value in every slot (encrypted_dot sums over all slots), so TenSEAL's
    # pack_vectors keeps slot j of dot j with one plaintext mask each, and adds: no rotation, and no
    # encryption (the coordinator's context holds no key that encrypts).
    vectors = [
        load_chunk(public_ctx, data, label=f"scalar {j}", size=1, multiplications=1) for j, data in enumerate(dots)
    ]
    try:
        packed = ts.CKKSVector.pack_vectors(vectors)
    except TENSEAL_ERRORS as exc:
        raise CryptoError(f"packing {count} scalars failed: {exc}") from exc
    return bytes(packed.serialize())


def decrypt_scalars(secret_ctx: ts.Context, data: bytes, count: int) -> list[float]:
    """Decrypt ``count`` scalars from :func:`pack_scalars` (or one from :func:`encrypted_dot`).

    Args:
        secret_ctx: a member's context holding the secret key (a decrypt-committee member).
        data: the packed ciphertext.
        count: how many scalars it holds; must equal its logical size.

    Returns:
        The scalars, in packing order.

    Raises:
        CryptoError: when the context holds no secret key or a value is out of the decodable range.
        SerializationError: when ``data`` is malformed, of another context, or holds another count.
        ConfigError: when ``count`` is not a positive int.

    Example:
        >>> import numpy as np
        >>> from fedchain.crypto import SCORING, create_secret_context, decrypt_scalars
        >>> from fedchain.crypto import encrypt_update, encrypted_dot
        >>> ctx = create_secret_context(SCORING)
        >>> x = encrypt_update(ctx, np.full(8, 0.5))
        >>> round(decrypt_scalars(ctx, encrypted_dot(ctx, x, x), 1)[0], 3)
        2.0
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError("count", "an int in [1, inf)", count)
    if not secret_ctx.has_secret_key():
        raise CryptoError("cannot decrypt: this context holds no CKKS secret key (a coordinator context?)")
    vector = load_chunk(secret_ctx, data, label="scalars", size=count, multiplications=(1, 2))
    try:
        values = [float(v) for v in vector.decrypt()]
    except TENSEAL_ERRORS as exc:
        raise CryptoError(f"decrypting scalars failed: {exc}") from exc
    bound = magnitude_bound(secret_ctx, 2)
    if any(not math.isfinite(v) or abs(v) > bound for v in values):
        raise CryptoError(
            f"decrypted scalars exceed the packed range {bound:.3g}: the inner products overflowed or the "
            "ciphertext was made under another key"
        )
    return values


def build_scalar_requests(
    public_ctx: Any,
    member_chunks: Mapping[str, Sequence[bytes]],
    sum_chunks: Sequence[bytes] | None,
    *,
    sq_norms: bool = True,
    squares: Mapping[str, bytes] | None = None,
) -> list[ScalarRequest]:
    """Compute and pack the encrypted inner products the committee will decrypt (coordinator side).

    Args:
        public_ctx: the coordinator's SCORING public context (relinearization and Galois keys).
        member_chunks: ``Enc(a_i)`` chunks per member address, in the round's member order.
        sum_chunks: ``Enc(S)`` chunks, the sum over exactly ``member_chunks``; None requests the
            squared norms only.
        sq_norms: include the ``sq_norms`` requests (False when asking again after exclusions).
        squares: each member's ``Enc(<a_i, a_i>)`` already computed (:meth:`EncryptedSum.add` with
            ``square_norms=True``), used for the ``sq_norms`` requests instead of ``member_chunks``;
            it must name every member of ``member_chunks``.

    Returns:
        Requests in the documented order: ``sq_norms`` packs, ``dots`` packs, ``agg_sq_norm``.
        About ``2 * n + 1`` encrypted inner products (0.15 s each at 100k values, measured).

    Raises:
        ConfigError: when nothing would be requested.
        CryptoError: when the context lacks evaluation keys or chunk counts differ.
        SerializationError: when a chunk is malformed.

    Example:
        >>> import numpy as np
        >>> from fedchain import crypto
        >>> from fedchain.crypto import answer_scalar_requests, build_scalar_requests
        >>> ctx = crypto.create_secret_context(crypto.SCORING)
        >>> a, b = crypto.encrypt_update(ctx, np.ones(3)), crypto.encrypt_update(ctx, np.full(3, 2.0))
        >>> total = crypto.sum_encrypted(ctx, [a, b], expected_chunks=1)
        >>> [(r.kind, r.count) for r in build_scalar_requests(ctx, {"a": a, "b": b}, total)]
        [('sq_norms', 2), ('dots', 2), ('agg_sq_norm', 1)]
    """
    addresses = list(member_chunks)
    if not addresses or (not sq_norms and sum_chunks is None):
        raise ConfigError("member_chunks", "at least one member and something to request", addresses)
    if squares is not None and sq_norms and any(a not in squares for a in addresses):
        raise ConfigError("squares", "a squared norm for every member", sorted(set(addresses) - set(squares)))
    slots = context_slot_count(public_ctx)
    requests: list[ScalarRequest] = []

    def dot(address: str, other: Sequence[bytes] | None) -> bytes:
        if other is None and squares is not None:
            return squares[address]
        return encrypted_dot(public_ctx, member_chunks[address], other or member_chunks[address])

    def packed(kind: str, other: Sequence[bytes] | None) -> None:
        for start in range(0, len(addresses), slots):
            group = addresses[start : start + slots]
            requests.append(ScalarRequest(kind, tuple(group), pack_scalars(public_ctx, [dot(a, other) for a in group])))

    if sq_norms:
        packed("sq_norms", None)
    if sum_chunks is not None:
        packed("dots", sum_chunks)
        requests.append(ScalarRequest("agg_sq_norm", (), encrypted_dot(public_ctx, sum_chunks, sum_chunks)))
    logger.debug("built %d scalar requests for %d members", len(requests), len(addresses))
    return requests


def answer_scalar_request(secret_ctx: Any, ciphertext: bytes, count: int) -> list[float]:
    """Decrypt one request (committee member side): the scalars, nothing else.

    Args:
        secret_ctx: the federation's secret SCORING context, held by members only.
        ciphertext: ``ScalarRequest.ciphertext``.
        count: ``ScalarRequest.count``.

    Raises:
        CryptoError: without a secret key, or when the scalars are out of the decodable range.
        SerializationError: when the ciphertext is malformed or holds another count.
    """
    return list(decrypt_scalars(secret_ctx, ciphertext, count))


def answer_scalar_requests(secret_ctx: Any, requests: Sequence[ScalarRequest]) -> list[list[float]]:
    """Decrypt every request of a round, in order (what a committee member replies).

    Example:
        >>> import numpy as np
        >>> from fedchain import crypto
        >>> from fedchain.crypto import answer_scalar_requests, build_scalar_requests
        >>> ctx = crypto.create_secret_context(crypto.SCORING)
        >>> a = crypto.encrypt_update(ctx, np.full(4, 0.5))
        >>> [[round(x, 3) for x in v] for v in answer_scalar_requests(ctx, build_scalar_requests(ctx, {"a": a}, a))]
        [[1.0], [1.0], [1.0]]
    """
    return [answer_scalar_request(secret_ctx, request.ciphertext, request.count) for request in requests]
