"""Encrypt, sum and decrypt flat updates as packed ``ckks_vector`` chunks.

A flat update of ``length`` values is cut into ``ceil(length / slots)`` chunks of ``slots = N / 2``
values; the last chunk is zero-padded, so every chunk on the wire has the same size and the same
checks apply to all. Members encrypt ``n_i * delta_i`` as *seeded* symmetric ciphertexts
(:mod:`fedchain.crypto._seeded`; 3.79 bytes per float32 byte with ``AGGREGATION``, half of
TenSEAL's own serialization). The coordinator adds them with its public context, which regrows each
seeded ciphertext on loading: :class:`EncryptedSum` adds one member's update at a time as replies
arrive (:func:`sum_encrypted`, or :func:`sum_encrypted_valid` to leave bad members out and go on,
are thin wrappers over it). Its result is an ordinary ciphertext, which members decrypt with the
secret context (:func:`decrypt_update`) and divide by the total weight. Under parameters with
more primes than the sum's range needs (``SCORING``: four data primes, kept for the committee's
products), :func:`compact_sum` drops the spare ones before the sum goes to members: about half the
bytes and half the decryption time.

Numerical error against plaintext FedAvg (``AGGREGATION``, see :mod:`fedchain.crypto.params`):
measured at most ``1e-6`` per value on a fresh ciphertext and ``3e-6`` on a sum of 10, whatever the
values' magnitude; the bound documented and tested is ``1e-5`` per value and per member summed, i.e.
``1e-5 * k / W`` on the average of ``k`` members of total weight ``W``.

Cores: SEAL's encoder, encryptor and decryptor as TenSEAL binds them hold Python's GIL (two threads
over chunks ran no faster than one, measured), so from ``PARALLEL_MIN_CHUNKS`` (64) chunks on a
member encrypts and decrypts in forked worker processes, one per usable core
(:mod:`fedchain.crypto._parallel`: the children inherit the context in memory, nothing secret is
serialized, ciphertexts come back as raw bytes through pipes). ``workers=`` or
``FEDCHAIN_HE_WORKERS`` (0 or 1: serial) chooses; simulations (``FEDCHAIN_SIMULATION=1``) stay
serial. The output is the same as serial (format, sizes, checks, errors; decrypted values equal).
Measured on 2 cores shared with other jobs, 1M values: x1.41 encrypt, x1.37 decrypt while the second
core was free, x0.85 / x0.82 while another job kept it busy (then set ``FEDCHAIN_HE_WORKERS=1``); see
``bench/bench_he_scale.py`` and docs/architecture.md for the figures per million values.

Example:
    >>> import numpy as np
    >>> from fedchain.crypto import AGGREGATION, create_secret_context, decrypt_update
    >>> from fedchain.crypto import encrypt_update, export_public_context, load_coordinator_context
    >>> from fedchain.crypto import sum_encrypted
    >>> member = create_secret_context(AGGREGATION)
    >>> coordinator = load_coordinator_context(export_public_context(member))
    >>> a, b = encrypt_update(member, np.ones(10)), encrypt_update(member, np.arange(10.0))
    >>> total = sum_encrypted(coordinator, [a, b], expected_chunks=1)
    >>> np.round(decrypt_update(member, total, 10), 3)[:3]
    array([1., 2., 3.])
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import tenseal as ts
import tenseal.sealapi as sealapi

from fedchain.crypto._chunks import (
    TENSEAL_ERRORS,
    chunk_level,
    data_levels,
    level_data,
    load_chunk,
    magnitude_bound,
)
from fedchain.crypto._parallel import PARALLEL_MIN_CHUNKS, map_forked, resolve_workers
from fedchain.crypto._seeded import SeededEncryptor, saved_bytes
from fedchain.crypto._wire import vector_frame
from fedchain.crypto.keys import can_encrypt, can_score, context_slot_count
from fedchain.crypto.scoring import encrypted_square
from fedchain.errors import ConfigError, CryptoError, FedChainError, UpdateRejectedError

__all__ = [
    "EncryptedSum",
    "UpdateRejectedError",
    "chunk_count",
    "compact_sum",
    "decrypt_update",
    "encrypt_update",
    "sum_encrypted",
    "sum_encrypted_valid",
]

logger = logging.getLogger(__name__)

#: Padding slots of a decrypted sum must decode below this; a ciphertext made under another key
#: fills them with values around the full modulus range (millions), honest noise is about 1e-7.
PADDING_TOLERANCE = 1e-3


def chunk_count(length: int, slots: int) -> int:
    """Chunks needed for ``length`` values at ``slots`` values per chunk.

    Example:
        >>> chunk_count(100_000, 4096)
        25
    """
    return -(-length // slots)


def _validated_flat(flat: np.ndarray, bound: float) -> np.ndarray:
    if not isinstance(flat, np.ndarray):
        raise ConfigError("flat", "a 1-D numpy array", type(flat).__name__)
    if flat.ndim != 1 or flat.size == 0:
        raise ConfigError("flat", "a non-empty 1-D numpy array", f"array of shape {flat.shape}")
    if not (np.issubdtype(flat.dtype, np.floating) or np.issubdtype(flat.dtype, np.integer)):
        raise ConfigError("flat", "a real numeric array", f"dtype {flat.dtype}")
    values = flat.astype(np.float64, copy=False)
    finite = np.isfinite(values)
    if not finite.all():
        first = int(np.flatnonzero(~finite)[0])
        raise ConfigError("flat", "finite values", f"{values[first]} at index {first}")
    peak = float(np.max(np.abs(values)))
    if peak > bound:
        raise ConfigError(
            "flat",
            f"values of magnitude at most {bound:.3g} (the CKKS parameters' range)",
            f"max |x| = {peak:.3g}",
            hint="Scale the update down or use parameters with a larger first prime.",
        )
    return values


def encrypt_update(
    ctx: ts.Context,
    flat: np.ndarray,
    *,
    workers: int | None = None,
    min_parallel_chunks: int = PARALLEL_MIN_CHUNKS,
) -> list[bytes]:
    """Encrypt a flat update as packed, zero-padded, seeded ``CKKSVector`` chunks.

    With the secret key (every member's context) each chunk is a *seeded* symmetric ciphertext
    (:mod:`fedchain.crypto._seeded`): about half the bytes of TenSEAL's own serialization, 3.79
    bytes per float32 byte with ``AGGREGATION``. Readers load it as an ordinary ``CKKSVector``. A
    public-key context without the secret key (older provisioning) falls back to TenSEAL's
    unseeded ciphertexts.

    Args:
        ctx: a member's context (it encrypts with the secret key; the coordinator's cannot encrypt).
        flat: 1-D finite real values, e.g. ``n_i * delta_i``; each must stay within the parameters'
            ``max_magnitude``, and so must their sum over members.
        workers: processes to encrypt seeded chunks with (see :mod:`fedchain.crypto._parallel`);
            None: ``FEDCHAIN_HE_WORKERS``, else 1 in a simulation, else the usable cores; 0 or 1:
            serial. The chunks are the same either way (format, sizes, checks).
        min_parallel_chunks: fewer chunks are encrypted serially (forking does not pay).

    Returns:
        ``ceil(len(flat) / slots)`` serialized chunks of ``slots`` values each.

    Raises:
        ConfigError: when ``flat`` is not a non-empty 1-D finite array within range, or ``workers``
            is invalid.
        CryptoError: when TenSEAL or SEAL fails to encrypt, or a worker process fails.

    Example:
        >>> import numpy as np
        >>> from fedchain.crypto import AGGREGATION, create_secret_context, encrypt_update
        >>> chunks = encrypt_update(create_secret_context(AGGREGATION), np.zeros(5000, dtype=np.float32))
        >>> len(chunks), sum(map(len, chunks)) <= 4 * 4 * 2 * 4096  # at most 4x the padded float32 bytes
        (2, True)
    """
    if not can_encrypt(ctx):
        raise CryptoError("cannot encrypt: this context holds no encryption key (the coordinator's context?)")
    slots = context_slot_count(ctx)
    values = _validated_flat(flat, magnitude_bound(ctx))
    padded = np.zeros(chunk_count(values.size, slots) * slots)
    padded[: values.size] = values
    if ctx.has_secret_key():
        encryptor = SeededEncryptor(ctx)
        count = padded.size // slots
        processes = resolve_workers(workers, count, min_parallel_chunks)
        if processes > 1:
            return map_forked(lambda i: encryptor.encrypt(padded[i * slots : (i + 1) * slots]), count, processes)
        return [encryptor.encrypt(padded[start : start + slots]) for start in range(0, padded.size, slots)]
    try:
        # TenSEAL's C++ vector directly: ts.ckks_vector would first copy each chunk into a
        # PlainTensor (about 10% of the encryption time at 100k values); the bytes are the same.
        return [
            bytes(ts._ts_cpp.CKKSVector(ctx.data, padded[start : start + slots].tolist()).serialize())
            for start in range(0, padded.size, slots)
        ]
    except TENSEAL_ERRORS as exc:
        raise CryptoError(f"CKKS encryption failed: {exc}") from exc


def _load_update(
    ctx: ts.Context, index: int, chunks: Sequence[bytes], expected_chunks: int, slots: int
) -> list[ts.CKKSVector]:
    if isinstance(chunks, bytes | bytearray | str) or not isinstance(chunks, Sequence):
        raise UpdateRejectedError(index, f"expected a sequence of chunks, got {type(chunks).__name__}")
    if len(chunks) != expected_chunks:
        raise UpdateRejectedError(index, f"{len(chunks)} chunks, expected {expected_chunks}")
    vectors = []
    for position, data in enumerate(chunks):
        try:
            vectors.append(load_chunk(ctx, data, label=f"chunk {position}", size=slots))
        except FedChainError as exc:
            raise UpdateRejectedError(index, str(exc)) from exc
    return vectors


def _check_expected(expected_chunks: int, expected_length: int | None, slots: int) -> None:
    if isinstance(expected_chunks, bool) or not isinstance(expected_chunks, int) or expected_chunks < 1:
        raise ConfigError("expected_chunks", "an int in [1, inf)", expected_chunks)
    if expected_length is not None:
        if isinstance(expected_length, bool) or not isinstance(expected_length, int) or expected_length < 1:
            raise ConfigError("expected_length", "an int in [1, inf)", expected_length)
        needed = chunk_count(expected_length, slots)
        if needed != expected_chunks:
            raise ConfigError(
                "expected_chunks",
                f"ceil(expected_length / {slots}) = {needed} for expected_length={expected_length}",
                expected_chunks,
            )


def _serialize(total: list[ts.CKKSVector]) -> list[bytes]:
    return [bytes(v.serialize()) for v in total]


class EncryptedSum:
    """A running encrypted sum that members' updates join one at a time (coordinator side).

    Each :meth:`add` checks one member's chunks under the context (chunk count, wire format, size,
    level, scale, parameters: see :mod:`fedchain.crypto._chunks`) before any of them is added, so an
    invalid update raises :class:`UpdateRejectedError` and leaves the sum as it was. Memory: the
    running sum plus the one update being added, so a coordinator can sum replies as they arrive.

    Args:
        ctx: the coordinator's context (no secret key needed).
        expected_chunks: chunks every update must have.
        expected_length: the plaintext length, when known: checked against ``expected_chunks``.
        square_norms: also compute each added update's encrypted squared norm from the chunks
            loaded for the sum (SCORING contexts only; :meth:`add` returns it), so a norm check
            does not load every chunk a second time.

    Raises:
        ConfigError: when ``expected_chunks``/``expected_length`` are invalid or disagree.
        CryptoError: with ``square_norms`` and a context without evaluation keys.

    Example:
        >>> import numpy as np
        >>> from fedchain.crypto import AGGREGATION, EncryptedSum, create_secret_context
        >>> from fedchain.crypto import decrypt_update, encrypt_update
        >>> ctx = create_secret_context(AGGREGATION)
        >>> running = EncryptedSum(ctx, expected_chunks=1, expected_length=3)
        >>> running.add(encrypt_update(ctx, np.ones(3)))
        >>> running.add([b"junk"])
        Traceback (most recent call last):
        ...
        fedchain.errors.UpdateRejectedError: update 1 rejected: chunk 0: ...
        >>> running.add(encrypt_update(ctx, np.full(3, 2.0)))
        >>> running.count, np.round(decrypt_update(ctx, running.result(), 3), 3)
        (2, array([3., 3., 3.]))
    """

    def __init__(
        self,
        ctx: ts.Context,
        *,
        expected_chunks: int,
        expected_length: int | None = None,
        square_norms: bool = False,
    ) -> None:
        self._ctx = ctx
        self._slots = context_slot_count(ctx)
        _check_expected(expected_chunks, expected_length, self._slots)
        if square_norms and not can_score(ctx):
            raise CryptoError("squared norms need relinearization and Galois keys: a SCORING context")
        self._square_norms = square_norms
        self._expected_chunks = expected_chunks
        self._total: list[ts.CKKSVector] | None = None
        self._count = 0
        self._offered = 0
        self._broken = ""

    @property
    def count(self) -> int:
        """Updates added so far (rejected ones do not count)."""
        return self._count

    @property
    def expected_chunks(self) -> int:
        """Chunks every update must have."""
        return self._expected_chunks

    def add(self, chunks: Sequence[bytes], *, index: int | None = None) -> bytes | None:
        """Check one member's update and add it to the sum.

        Args:
            chunks: the member's serialized chunks, from :func:`encrypt_update`.
            index: how the rejection names the update; default: its position among the updates
                offered to this sum so far, rejected ones included (0 for the first).

        Returns:
            With ``square_norms``: ``Enc(||update||^2)`` (as :func:`encrypted_dot` of the update with
            itself); otherwise None.

        Raises:
            UpdateRejectedError: the update is invalid; the sum is unchanged.
            CryptoError: a homomorphic operation failed after every check passed (not the member's
                fault); the sum is then unusable and every later call raises.
        """
        if self._broken:
            raise CryptoError(f"this encrypted sum is unusable: {self._broken}")
        position = self._offered if index is None else index
        self._offered += 1
        vectors = _load_update(self._ctx, position, chunks, self._expected_chunks, self._slots)
        square = None
        if self._square_norms:  # before the vectors join (or become) the running total
            try:
                square = encrypted_square(self._ctx, vectors)
            except CryptoError as exc:
                self._broken = f"squared norm failed: {exc}"
                raise
        if self._total is None:
            self._total = vectors
        else:
            try:
                for acc, vector in zip(self._total, vectors, strict=True):
                    acc.add_(vector)
            except TENSEAL_ERRORS as exc:  # all checks passed, so this is not the member's fault
                self._broken = f"homomorphic addition failed: {exc}"
                raise CryptoError(self._broken) from exc
        self._count += 1
        return square

    def result(self) -> list[bytes]:
        """The serialized chunks of the sum so far (more updates may be added afterwards).

        Raises:
            CryptoError: when no update has been added, or the sum is unusable.
        """
        if self._broken:
            raise CryptoError(f"this encrypted sum is unusable: {self._broken}")
        if self._total is None:
            raise CryptoError("no encrypted update to sum")
        return _serialize(self._total)


def sum_encrypted(
    public_ctx: ts.Context,
    updates: Sequence[Sequence[bytes]],
    expected_chunks: int,
    expected_length: int | None = None,
) -> list[bytes]:
    """Add members' encrypted updates; any invalid update aborts the sum and is named.

    Each member's chunks are all deserialized and checked under ``public_ctx`` before any of them
    is added: chunk count, wire format, size, level, scale and parameters (see
    :mod:`fedchain.crypto._chunks` for what can and cannot be detected). A thin wrapper over
    :class:`EncryptedSum`.

    Args:
        public_ctx: the coordinator's context (no secret key needed).
        updates: one list of chunks per member, each from :func:`encrypt_update` of ``n_i * delta_i``.
        expected_chunks: chunks every update must have.
        expected_length: the plaintext length, when known: checked against ``expected_chunks``.

    Returns:
        Serialized chunks of the encrypted sum.

    Raises:
        UpdateRejectedError: (a :class:`CryptoError`) naming the first invalid update's index; use
            :func:`sum_encrypted_valid` to leave it out and go on.
        ConfigError: when ``expected_chunks``/``expected_length`` are invalid or disagree.
        CryptoError: when there is no update to sum.

    Example:
        >>> import numpy as np
        >>> from fedchain.crypto import AGGREGATION, create_secret_context, encrypt_update
        >>> from fedchain.crypto import sum_encrypted
        >>> ctx = create_secret_context(AGGREGATION)
        >>> sum_encrypted(ctx, [encrypt_update(ctx, np.ones(3)), [b"junk"]], expected_chunks=1)
        Traceback (most recent call last):
        ...
        fedchain.errors.UpdateRejectedError: update 1 rejected: chunk 0: ...
    """
    running = EncryptedSum(public_ctx, expected_chunks=expected_chunks, expected_length=expected_length)
    if not updates:
        raise CryptoError("no encrypted update to sum")
    for chunks in updates:
        running.add(chunks)
    return running.result()


def sum_encrypted_valid(
    public_ctx: ts.Context,
    updates: Sequence[Sequence[bytes]],
    expected_chunks: int,
    expected_length: int | None = None,
) -> tuple[list[bytes], dict[int, str]]:
    """Add the valid updates and report the others, so that the round continues without them.

    A thin wrapper over :class:`EncryptedSum` that records each rejection and goes on.

    Args:
        public_ctx: the coordinator's context.
        updates: one list of chunks per member.
        expected_chunks: chunks every update must have.
        expected_length: the plaintext length, when known.

    Returns:
        ``(sum_chunks, rejected)``: the encrypted sum of the valid updates, and for each rejected
        update its index mapped to the reason. The caller must subtract the rejected members'
        weights from the total weight.

    Raises:
        CryptoError: when no update is valid (the message lists the reasons).
        ConfigError: when ``expected_chunks``/``expected_length`` are invalid or disagree.

    Example:
        >>> import numpy as np
        >>> from fedchain.crypto import AGGREGATION, create_secret_context, encrypt_update
        >>> from fedchain.crypto import sum_encrypted_valid
        >>> ctx = create_secret_context(AGGREGATION)
        >>> total, rejected = sum_encrypted_valid(ctx, [encrypt_update(ctx, np.ones(3)), []], 1)
        >>> rejected
        {1: '0 chunks, expected 1'}
    """
    running = EncryptedSum(public_ctx, expected_chunks=expected_chunks, expected_length=expected_length)
    rejected: dict[int, str] = {}
    for chunks in updates:
        try:
            running.add(chunks)
        except UpdateRejectedError as exc:
            logger.warning("leaving update %d out of the encrypted sum: %s", exc.index, exc.reason)
            rejected[exc.index] = exc.reason
    if running.count == 0:
        reasons = "; ".join(f"{i}: {r}" for i, r in rejected.items()) or "no updates given"
        raise CryptoError(f"no valid encrypted update to sum ({reasons})")
    return running.result(), rejected


def compact_sum(ctx: ts.Context, chunks: Sequence[bytes], *, max_abs: float) -> list[bytes]:
    """Drop the primes that values up to ``max_abs`` do not need from a sum's chunks.

    A modulus switch to the deepest level whose range (:func:`fedchain.crypto._chunks.magnitude_bound`)
    still holds ``max_abs``: the values are unchanged (the scale stays), the ciphertext is smaller
    and decrypts faster. ``SCORING`` keeps four data primes for the committee's products; the sum
    members decrypt needs two of them for ``SCORING.max_magnitude``: 393 -> 213 KB per chunk,
    4.2 -> 2.1 ms to decrypt (measured). Parameters with nothing to spare (``AGGREGATION``) return
    the chunks unchanged. Run it after every homomorphic product with the sum, on the coordinator
    (public context).

    Args:
        ctx: the coordinator's (or any) context of the sum.
        chunks: the sum's serialized chunks, fresh level (from :class:`EncryptedSum`).
        max_abs: the largest magnitude the sum's values may have (the parameters' ``max_magnitude``).

    Returns:
        The chunks at the chosen level, for :func:`decrypt_update`.

    Raises:
        SerializationError: when a chunk is malformed or not at the fresh level of ``ctx``.
        CryptoError: when SEAL fails to switch or save.

    Example:
        >>> import numpy as np
        >>> from fedchain.crypto import SCORING, create_secret_context, decrypt_update, encrypt_update
        >>> ctx = create_secret_context(SCORING)
        >>> a, b = encrypt_update(ctx, np.array([1.5, -2.0])), encrypt_update(ctx, np.array([1.0, 1.0]))
        >>> total = sum_encrypted(ctx, [a, b], expected_chunks=1)
        >>> small = compact_sum(ctx, total, max_abs=SCORING.max_magnitude)
        >>> round(len(small[0]) / len(total[0]), 1)
        0.5
        >>> np.round(decrypt_update(ctx, small, 2), 3)
        array([ 2.5, -1. ])
    """
    level = 0
    while level + 1 < data_levels(ctx) and magnitude_bound(ctx, level + 1) >= max_abs:
        level += 1
    if level == 0:
        return list(chunks)
    slots = context_slot_count(ctx)
    evaluator = sealapi.Evaluator(ctx.seal_context().data)
    target = level_data(ctx, level)
    compacted = []
    for position, data in enumerate(chunks):
        ciphertext = load_chunk(ctx, data, label=f"sum chunk {position}", size=slots).ciphertext()[0]
        try:
            evaluator.mod_switch_to_inplace(ciphertext, target.parms_id())
        except TENSEAL_ERRORS as exc:
            raise CryptoError(f"sum chunk {position}: modulus switch failed: {exc}") from exc
        compacted.append(vector_frame(slots, saved_bytes(ciphertext), ctx.global_scale))
    return compacted


def decrypt_update(
    secret_ctx: ts.Context,
    chunks: Sequence[bytes],
    length: int,
    *,
    max_abs: float | None = None,
    workers: int | None = None,
    min_parallel_chunks: int = PARALLEL_MIN_CHUNKS,
) -> np.ndarray:
    """Decrypt chunks (an update or a sum) back to ``length`` float64 values.

    Besides decrypting, this detects a sum poisoned by a ciphertext made under another key: such a
    ciphertext decodes to values spread over the whole modulus range. Decoded values above
    ``max_abs`` (default: the parameters' range) or padding slots above ``PADDING_TOLERANCE`` raise.

    Args:
        secret_ctx: a member's context holding the secret key.
        chunks: serialized chunks, as from :func:`sum_encrypted`.
        length: number of plaintext values (the update's parameter count).
        max_abs: refuse results with a larger magnitude; None uses the parameters' range.
        workers: processes to decrypt with, as for :func:`encrypt_update`; the values are identical
            to a serial decryption's, and so are the checks and errors.
        min_parallel_chunks: fewer chunks are decrypted serially.

    Returns:
        A 1-D float64 array of ``length`` values.

    Raises:
        CryptoError: when the context holds no secret key, the result is out of range, or a worker
            process fails.
        SerializationError: when a chunk is malformed or of another context's parameters.
        ConfigError: when ``length`` does not match the number of chunks, or ``workers`` is invalid.

    Example:
        >>> import numpy as np
        >>> from fedchain.crypto import AGGREGATION, create_secret_context, decrypt_update
        >>> from fedchain.crypto import encrypt_update
        >>> ctx = create_secret_context(AGGREGATION)
        >>> np.round(decrypt_update(ctx, encrypt_update(ctx, np.array([1.5, -2.0])), 2), 3)
        array([ 1.5, -2. ])
    """
    if not secret_ctx.has_secret_key():
        raise CryptoError("cannot decrypt: this context holds no CKKS secret key (a coordinator context?)")
    slots = context_slot_count(secret_ctx)
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ConfigError("length", "an int in [1, inf)", length)
    if len(chunks) != chunk_count(length, slots):
        raise ConfigError(
            "length",
            f"a length that fits {len(chunks)} chunks of {slots} values",
            length,
            hint=f"{len(chunks)} chunks hold {(len(chunks) - 1) * slots + 1}..{len(chunks) * slots} values.",
        )
    # A sum may come compacted (compact_sum): every chunk at the level of the first, whose range
    # bounds the values.
    first = load_chunk(
        secret_ctx, chunks[0], label="chunk 0", size=slots, multiplications=tuple(range(data_levels(secret_ctx)))
    )
    level = chunk_level(secret_ctx, first)
    level_bound = magnitude_bound(secret_ctx, level)
    bound = level_bound if max_abs is None else min(max_abs, level_bound)

    def decrypt_chunk(position: int) -> np.ndarray:
        vector = load_chunk(secret_ctx, chunks[position], label=f"chunk {position}", size=slots, multiplications=level)
        try:
            return np.asarray(vector.decrypt(), dtype=np.float64)
        except TENSEAL_ERRORS as exc:
            raise CryptoError(f"chunk {position}: decryption failed: {exc}") from exc

    processes = resolve_workers(workers, len(chunks), min_parallel_chunks)
    if processes > 1:
        raw = map_forked(lambda i: decrypt_chunk(i).tobytes(), len(chunks), processes)
        values = np.frombuffer(b"".join(raw), dtype=np.float64)
    else:
        values = np.concatenate([decrypt_chunk(position) for position in range(len(chunks))])
    padding = values[length:]
    if padding.size and float(np.max(np.abs(padding))) > PADDING_TOLERANCE:
        raise CryptoError(
            f"decrypted padding slots are not zero (max |x| = {float(np.max(np.abs(padding))):.3g}): a "
            "summed ciphertext was encrypted under another key, or the sum is corrupt"
        )
    result = values[:length]
    peak = float(np.max(np.abs(result)))
    if not math.isfinite(peak) or peak > bound:
        raise CryptoError(
            f"decrypted values reach {peak:.3g}, beyond {bound:.3g}: a summed ciphertext was encrypted "
            "under another key, or the sum overflowed the CKKS range"
        )
    return result
