"""Digests of ciphertext chunk lists, the values members sign and the chain records.

The digest is ``"0x" + sha256`` over the chunk count and each chunk's length, as 8-byte big-endian
integers, each length followed by the chunk's bytes. Moving bytes across a chunk boundary, splitting
or merging chunks, or reordering them all change the digest.

Example:
    >>> from fedchain.crypto.digest import ciphertext_digest, verify_digest
    >>> digest = ciphertext_digest([b"ab", b"c"])
    >>> digest == ciphertext_digest([b"a", b"bc"])
    False
    >>> verify_digest([b"ab", b"c"], digest)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from fedchain.errors import IntegrityError, SerializationError

__all__ = ["ciphertext_digest", "verify_digest"]


def ciphertext_digest(chunks: Sequence[bytes]) -> str:
    """Hash a list of ciphertext chunks so that chunk boundaries matter.

    Args:
        chunks: serialized chunks, in order.

    Returns:
        ``"0x"`` followed by 64 lowercase hex digits.

    Raises:
        SerializationError: when an element is not bytes.

    Example:
        >>> ciphertext_digest([])
        '0xaf5570f5a1810b7af78caf4bc70a660f0df51e42baf91d4de5b2328de0e83dfc'
    """
    h = hashlib.sha256()
    h.update(len(chunks).to_bytes(8, "big"))
    for index, chunk in enumerate(chunks):
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise SerializationError(f"chunk {index} is {type(chunk).__name__}, expected bytes")
        view = memoryview(chunk)
        h.update(view.nbytes.to_bytes(8, "big"))
        h.update(view)
    return "0x" + h.hexdigest()


def verify_digest(chunks: Sequence[bytes], expected: str, *, what: str = "ciphertext") -> None:
    """Check chunks against a recorded digest.

    Args:
        chunks: serialized chunks, in order.
        expected: the recorded digest (``"0x"`` + hex, case-insensitive).
        what: how the error message names the content, e.g. ``"update of member 3"``.

    Raises:
        IntegrityError: when the digest of ``chunks`` differs from ``expected``.

    Example:
        >>> verify_digest([b"x"], "0x00")
        Traceback (most recent call last):
        ...
        fedchain.errors.IntegrityError: ciphertext: hash 0x... does not match the recorded 0x00
    """
    actual = ciphertext_digest(chunks)
    if actual != expected.lower():
        raise IntegrityError(what, expected, actual)
