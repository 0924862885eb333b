from __future__ import annotations

import numpy as np
import pytest
import tenseal as ts

from fedchain import crypto
from fedchain.errors import IntegrityError, SerializationError


def test_digest_format_and_boundaries() -> None:
    digest = crypto.ciphertext_digest([b"ab", b"c"])
    assert digest.startswith("0x") and len(digest) == 66
    assert digest != crypto.ciphertext_digest([b"a", b"bc"])
    assert digest != crypto.ciphertext_digest([b"abc"])
    assert digest != crypto.ciphertext_digest([b"c", b"ab"])
    assert crypto.ciphertext_digest([b"abc", b""]) != crypto.ciphertext_digest([b"abc"])


def test_tampered_ciphertext_is_detected(agg_member: ts.Context) -> None:
    chunks = crypto.encrypt_update(agg_member, np.linspace(-1, 1, 5000))
    digest = crypto.ciphertext_digest(chunks)
    crypto.verify_digest(chunks, digest)
    crypto.verify_digest(chunks, digest.upper().replace("0X", "0x"))
    tampered = bytearray(chunks[1])
    tampered[len(tampered) // 2] ^= 0x01
    with pytest.raises(IntegrityError) as info:
        crypto.verify_digest([chunks[0], bytes(tampered)], digest, what="update of member 3")
    assert str(info.value).startswith("update of member 3: hash 0x")
    assert str(info.value).endswith(f"does not match the recorded {digest}")
    assert info.value.expected == digest


def test_non_bytes_chunk() -> None:
    with pytest.raises(SerializationError, match="chunk 1 is str, expected bytes"):
        crypto.ciphertext_digest([b"x", "y"])  # type: ignore[list-item]
