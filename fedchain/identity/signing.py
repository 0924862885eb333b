"""Signed updates: each member signs the digest of its update with its chain key (EIP-191).

The digest binds the round, the member's address, the hash of what it sent (ciphertext chunks
or plaintext arrays), its example count and its DP parameters, so a signature cannot be replayed
in another round, moved to another payload or reused with another claimed weight. The
coordinator recomputes the digest from what it received and recovers the signer.

Example:
    >>> from fedchain.identity import address_of, simulated_member_key
    >>> key = simulated_member_key(seed=0, member_id=0)
    >>> digest = update_digest(server_round=1, address=address_of(key), payload_hash="0x" + "11" * 32,
    ...                        num_examples=100, dp=None)
    >>> recover_signer(digest, sign_digest(key, digest)) == address_of(key)
    True
"""

from __future__ import annotations

from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak, to_checksum_address

from fedchain.errors import SerializationError
from fedchain.types import DPParams

__all__ = ["recover_signer", "sign_digest", "update_digest"]

#: Fixed-point scale of the DP parameters inside the digest (same grid as the ledger).
_DP_SCALE = 10**18


def _hash32(value: str) -> bytes:
    raw = bytes.fromhex(value[2:] if value.startswith("0x") else value)
    if len(raw) != 32:
        raise SerializationError(f"expected a 32-byte hash, got {len(raw)} bytes")
    return raw


def update_digest(*, server_round: int, address: str, payload_hash: str, num_examples: int, dp: DPParams | None) -> str:
    """keccak256 of the ABI-encoded update fields, as ``0x``-hex.

    Args:
        server_round: the round the update is for.
        address: the member's address.
        payload_hash: ``0x`` sha256 of the update as sent (ciphertext digest or model hash).
        num_examples: the example count the member claims.
        dp: the member's DP parameters for the round, or None without DP.
    """
    dp_words = (
        [0, 0, 0, 0, 0]
        if dp is None
        else [
            round(dp.noise_multiplier * _DP_SCALE),
            round(dp.sample_rate * _DP_SCALE),
            int(dp.steps),
            round(dp.max_grad_norm * _DP_SCALE),
            round(dp.delta * _DP_SCALE),
        ]
    )
    encoded = encode(
        ["string", "uint256", "address", "bytes32", "uint256", "uint256[5]"],
        [
            "fedchain-update-v1",
            server_round,
            to_checksum_address(address),
            _hash32(payload_hash),
            num_examples,
            dp_words,
        ],
    )
    return "0x" + keccak(encoded).hex()


def sign_digest(private_key: bytes, digest: str) -> str:
    """EIP-191 (``personal_sign``) signature of ``digest`` as ``0x``-hex."""
    signed = Account.sign_message(encode_defunct(primitive=_hash32(digest)), private_key=private_key)
    return "0x" + bytes(signed.signature).hex()


def recover_signer(digest: str, signature: str) -> str:
    """The checksummed address that signed ``digest``.

    Raises:
        SerializationError: the signature is malformed.
    """
    try:
        raw = bytes.fromhex(signature[2:] if signature.startswith("0x") else signature)
        return str(Account.recover_message(encode_defunct(primitive=_hash32(digest)), signature=raw))
    except (ValueError, TypeError) as exc:
        raise SerializationError(f"malformed signature: {exc}") from exc
    except Exception as exc:  # eth_keys raises BadSignature and friends
        raise SerializationError(f"invalid signature: {exc}") from exc
