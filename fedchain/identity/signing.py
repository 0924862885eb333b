"""Signed updates: each member signs the digest of its update with its chain key (EIP-191).

The digest binds the federation (:class:`SigningDomain`: chain id, ledger address, run id), the
round, the member's address, the hash of what it sent (ciphertext chunks or plaintext arrays), its
example count and its DP parameters, so a signature cannot be replayed in another federation, run
or round, moved to another payload or reused with another claimed weight. The coordinator
recomputes the digest from what it received and recovers the signer.

Disputes (:func:`dispute_digest`) are signed the same way under the chain id and ledger address;
the ledger contract recomputes that digest itself, so anyone may relay a member's dispute.

Example:
    >>> from fedchain.identity import address_of, simulated_member_key
    >>> key = simulated_member_key(seed=0, member_id=0)
    >>> domain = SigningDomain(chain_id=1, ledger_address="0x" + "22" * 20, run_id=7)
    >>> digest = update_digest(domain=domain, server_round=1, address=address_of(key),
    ...                        payload_hash="0x" + "11" * 32, num_examples=100, dp=None)
    >>> recover_signer(digest, sign_digest(key, digest)) == address_of(key)
    True
    >>> other_run = SigningDomain(chain_id=1, ledger_address="0x" + "22" * 20, run_id=8)
    >>> digest == update_digest(domain=other_run, server_round=1, address=address_of(key),
    ...                         payload_hash="0x" + "11" * 32, num_examples=100, dp=None)
    False
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak, to_checksum_address

from fedchain.errors import SerializationError
from fedchain.types import DPParams

__all__ = [
    "NO_LEDGER",
    "SigningDomain",
    "dispute_digest",
    "recover_signer",
    "scalars_digest",
    "sign_digest",
    "update_digest",
]

#: Fixed-point scale of the DP parameters inside the digest (same grid as the ledger).
_DP_SCALE = 10**18
#: The ledger address of a federation that records nothing (``chain = "none"``).
NO_LEDGER = "0x" + "00" * 20


@dataclass(frozen=True)
class SigningDomain:
    """Which federation and run a signature belongs to.

    Attributes:
        chain_id: the EVM chain id of the federation's ledger (0 when nothing is recorded).
        ledger_address: the ``ContributionLedger`` address (:data:`NO_LEDGER` when none).
        run_id: the Flower run the update was produced in.
    """

    chain_id: int
    ledger_address: str
    run_id: int


def _hash32(value: str) -> bytes:
    raw = bytes.fromhex(value[2:] if value.startswith("0x") else value)
    if len(raw) != 32:
        raise SerializationError(f"expected a 32-byte hash, got {len(raw)} bytes")
    return raw


def update_digest(
    *,
    domain: SigningDomain,
    server_round: int,
    address: str,
    payload_hash: str,
    num_examples: int,
    dp: DPParams | None,
) -> str:
    """keccak256 of the ABI-encoded update fields, as ``0x``-hex.

    Args:
        domain: the federation and run the update is for.
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
        ["string", "uint256", "address", "uint256", "uint256", "address", "bytes32", "uint256", "uint256[5]"],
        [
            "fedchain-update-v2",
            domain.chain_id,
            to_checksum_address(domain.ledger_address),
            domain.run_id,
            server_round,
            to_checksum_address(address),
            _hash32(payload_hash),
            num_examples,
            dp_words,
        ],
    )
    return "0x" + keccak(encoded).hex()


def dispute_digest(*, chain_id: int, ledger_address: str, server_round: int, scalars_commitment: str) -> str:
    """keccak256 of a dispute's fields, as ``0x``-hex: what a member signs to dispute a round.

    The contract computes the same value as
    ``keccak256(abi.encode("fedchain-dispute-v1", block.chainid, address(this), round, commitment))``.

    Example:
        >>> dispute_digest(chain_id=1, ledger_address="0x" + "22" * 20, server_round=3,
        ...                scalars_commitment="0x" + "33" * 32)[:10]
        '0x85ef120e'
    """
    encoded = encode(
        ["string", "uint256", "address", "uint256", "bytes32"],
        [
            "fedchain-dispute-v1",
            chain_id,
            to_checksum_address(ledger_address),
            server_round,
            _hash32(scalars_commitment),
        ],
    )
    return "0x" + keccak(encoded).hex()


def scalars_digest(
    *, domain: SigningDomain, server_round: int, exchange: int, request_hash: str, values: list[list[float]]
) -> str:
    """keccak256 of a decrypt-committee answer, as ``0x``-hex: what a committee member signs.

    Binds the domain of the round's train instruction, the round, the exchange, the request hash
    (:attr:`fedchain.contribution.committee.CommitteeRequest.request_hash`) and the values (keccak256
    of their canonical JSON: shortest round-trip floats, one list per ciphertext), so an answer
    cannot be moved to another request, round or federation, nor its values changed.

    Example:
        >>> domain = SigningDomain(chain_id=1, ledger_address="0x" + "22" * 20, run_id=7)
        >>> scalars_digest(domain=domain, server_round=2, exchange=1, request_hash="0x" + "33" * 32,
        ...                values=[[1.5, 2.0]])[:10]
        '0xd5b827e5'
    """
    values_hash = keccak(json.dumps(values, separators=(",", ":"), allow_nan=False).encode())
    encoded = encode(
        ["string", "uint256", "address", "uint256", "uint256", "uint256", "bytes32", "bytes32"],
        [
            "fedchain-scalars-v1",
            domain.chain_id,
            to_checksum_address(domain.ledger_address),
            domain.run_id,
            server_round,
            exchange,
            _hash32(request_hash),
            values_hash,
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
