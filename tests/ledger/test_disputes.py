"""Disputes: a member's signed dispute flags a round on chain; forged disputes are refused by name.

Written from the attacker's side (Wycheproof style): each forgery uses only what that party holds,
and the contract must refuse it with its exact custom error.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_tester.exceptions import TransactionFailed
from web3.exceptions import ContractCustomError

from fedchain.errors import ConfigError, TransactionError
from fedchain.identity.signing import dispute_digest, sign_digest
from fedchain.ledger import Chain, Web3Ledger
from fedchain.ledger._abi import ContractAbi
from fedchain.ledger.fixedpoint import hex_to_bytes32
from fedchain.types import Dispute

from .helpers import h, next_record

ABI = ContractAbi.fedchain()
REVERTS = (ContractCustomError, TransactionFailed)
COMMITMENT = h("revealed scalars")


def keys(n: int, seed: str = "disputer") -> list[bytes]:
    return [hashlib.sha256(f"{seed}-{i}".encode()).digest() for i in range(n)]


@pytest.fixture()
def fresh(chain: Chain) -> tuple[Web3Ledger, list[bytes], list[str]]:
    """A ledger of its own (disputes change what rounds pay) with three members who hold their keys."""
    ledger = Web3Ledger.deploy(chain, treasury=chain.test_accounts[2].address)
    member_keys = keys(3)
    members = [Account.from_key(k).address for k in member_keys]
    ledger.register_members(members)
    return ledger, member_keys, members


def sign(ledger: Web3Ledger, key: bytes, server_round: int, commitment: str = COMMITMENT, **domain: Any) -> str:
    digest = dispute_digest(
        chain_id=domain.get("chain_id", ledger.chain_id),
        ledger_address=domain.get("ledger_address", ledger.address),
        server_round=server_round,
        scalars_commitment=commitment,
    )
    return sign_digest(key, digest)


def file_raw(ledger: Web3Ledger, server_round: int, commitment: str, signature: str, sender: str) -> str:
    """Call fileDispute as ``sender``; return the revert reason (the call must revert)."""
    call = ledger.ledger_contract.functions.fileDispute(
        server_round, hex_to_bytes32(commitment), bytes.fromhex(signature[2:])
    )
    with pytest.raises(REVERTS) as info:
        call.call({"from": sender})
    return ABI.revert_reason(info.value)


def recovered(ledger: Web3Ledger, server_round: int, commitment: str, signature: str) -> str:
    """Who the contract will take as the signer of ``signature`` for (round, commitment) on this ledger."""
    digest = dispute_digest(
        chain_id=ledger.chain_id,
        ledger_address=ledger.address,
        server_round=server_round,
        scalars_commitment=commitment,
    )
    return str(
        Account.recover_message(
            encode_defunct(primitive=bytes.fromhex(digest[2:])), signature=bytes.fromhex(signature[2:])
        )
    )


def test_contract_digest_is_the_python_digest(fresh: tuple[Web3Ledger, list[bytes], list[str]]) -> None:
    ledger, _, _ = fresh
    on_chain = ledger.ledger_contract.functions.disputeDigest(7, hex_to_bytes32(COMMITMENT)).call()
    expected = dispute_digest(
        chain_id=ledger.chain_id, ledger_address=ledger.address, server_round=7, scalars_commitment=COMMITMENT
    )
    assert "0x" + bytes(on_chain).hex() == expected


def test_dispute_before_recording_withholds_the_pool(
    chain: Chain, fresh: tuple[Web3Ledger, list[bytes], list[str]]
) -> None:
    ledger, member_keys, members = fresh
    ledger.record_round(next_record(ledger, members, [1.0, 1.0, 1.0], pool_wei=900))
    # Round 2 is next: member 0 disputes it before the coordinator records it. A stranger relays it.
    dispute = Dispute(2, members[0], COMMITMENT, sign(ledger, member_keys[0], 2))
    relayer = Web3Ledger(chain, ledger.address)  # any account may submit; the signer is the member
    receipt = relayer.file_dispute(dispute)
    assert receipt.gas_used > 0
    assert ledger.dispute_count(2) == 1
    assert ledger.ledger_contract.functions.isDisputed(2, members[0]).call()
    (recorded_dispute,) = ledger.disputes(2)
    assert (recorded_dispute.member, recorded_dispute.round_recorded) == (members[0], False)
    assert recorded_dispute.scalars_commitment == COMMITMENT

    claimable = [ledger.claimable_of(m) for m in members]
    treasury = ledger.token_balance_of(ledger.treasury)
    record = next_record(ledger, members, [3.0, 2.0, 1.0], pool_wei=1000)
    paid = ledger.record_round(record)
    assert paid.rewards_wei == dict.fromkeys(members, 0)
    assert paid.treasury_wei == 1000
    assert [ledger.claimable_of(m) for m in members] == claimable
    assert ledger.token_balance_of(ledger.treasury) == treasury + 1000
    recorded = ledger.get_round(2)
    assert recorded.withheld and recorded.disputes_at_record == 1
    assert ledger.record_round(record) == paid  # the idempotent retry still works on a withheld round


def test_dispute_after_recording_is_kept_but_claws_nothing_back(
    fresh: tuple[Web3Ledger, list[bytes], list[str]],
) -> None:
    ledger, member_keys, members = fresh
    receipt = ledger.record_round(next_record(ledger, members, [1.0, 1.0, 2.0], pool_wei=1000))
    credited = [ledger.claimable_of(m) for m in members]
    ledger.file_dispute(Dispute(1, members[1], COMMITMENT, sign(ledger, member_keys[1], 1)))
    (dispute,) = ledger.disputes()
    assert dispute.round_recorded is True
    assert [ledger.claimable_of(m) for m in members] == credited  # the residual risk, stated in the docs
    assert ledger.get_round(1).tx_hash == receipt.tx_hash and not ledger.get_round(1).withheld


def test_one_dispute_per_round_and_member(chain: Chain, fresh: tuple[Web3Ledger, list[bytes], list[str]]) -> None:
    ledger, member_keys, members = fresh
    dispute = Dispute(1, members[2], COMMITMENT, sign(ledger, member_keys[2], 1))
    ledger.file_dispute(dispute)
    reason = file_raw(ledger, 1, COMMITMENT, dispute.signature, chain.address)
    assert reason == f"DisputeAlreadyFiled(round=1, member={members[2]})"
    other = h("another commitment")  # a second dispute of the same round by the same member: refused too
    reason = file_raw(ledger, 1, other, sign(ledger, member_keys[2], 1, other), chain.address)
    assert reason == f"DisputeAlreadyFiled(round=1, member={members[2]})"
    with pytest.raises(TransactionError) as info:
        ledger.file_dispute(dispute)
    assert info.value.reason == f"DisputeAlreadyFiled(round=1, member={members[2]})"


@pytest.mark.parametrize("server_round", [0, 2, 3])
def test_dispute_rounds_out_of_range(
    chain: Chain, fresh: tuple[Web3Ledger, list[bytes], list[str]], server_round: int
) -> None:
    ledger, member_keys, _ = fresh  # lastRound is 0: only round 1 may be disputed
    if server_round == 3:
        ledger.record_round(next_record(ledger, [Account.from_key(member_keys[0]).address], [1.0]))
        server_round = 3  # lastRound 1: rounds 1 and 2 may be disputed, 3 may not
    signature = sign(ledger, member_keys[0], server_round)
    reason = file_raw(ledger, server_round, COMMITMENT, signature, chain.address)
    assert reason == f"DisputeRoundOutOfRange(round={server_round}, lastRound={ledger.last_round()})"


def test_forged_disputes_are_refused(chain: Chain, fresh: tuple[Web3Ledger, list[bytes], list[str]]) -> None:
    """Each forgery recovers to an address that is not registered: UnregisteredDisputer(signer)."""
    ledger, member_keys, members = fresh
    sender = chain.test_accounts[5].address
    outsider_key = hashlib.sha256(b"outsider").digest()
    outsider = Account.from_key(outsider_key).address
    other_ledger = "0x" + "42" * 20
    forgeries = {
        # a key that was never registered signs a well-formed dispute
        "unregistered key": (1, COMMITMENT, sign(ledger, outsider_key, 1)),
        # member 1's genuine dispute of round 1, replayed against round 2 (the round to be recorded next)
        "other round": (1, COMMITMENT, sign(ledger, member_keys[1], 2)),
        # member 1's signature over another commitment, submitted with this one
        "other commitment": (1, COMMITMENT, sign(ledger, member_keys[1], 1, h("other"))),
        # a dispute member 1 signed for another ledger (another federation), replayed here
        "other ledger": (1, COMMITMENT, sign(ledger, member_keys[1], 1, ledger_address=other_ledger)),
        # a dispute member 1 signed on another chain
        "other chain": (1, COMMITMENT, sign(ledger, member_keys[1], 1, chain_id=ledger.chain_id + 1)),
    }
    for name, (server_round, commitment, signature) in forgeries.items():
        signer = recovered(ledger, server_round, commitment, signature)
        assert signer not in members, name
        reason = file_raw(ledger, server_round, commitment, signature, sender)
        assert reason == f"UnregisteredDisputer(signer={signer})", name
    assert recovered(ledger, *forgeries["unregistered key"]) == outsider
    assert ledger.dispute_count(1) == 0 and ledger.disputes() == []


def test_malformed_signature_reverts_with_the_ecdsa_error(
    chain: Chain, fresh: tuple[Web3Ledger, list[bytes], list[str]]
) -> None:
    ledger, member_keys, _ = fresh
    signature = sign(ledger, member_keys[0], 1)
    short = signature[:-2]  # 64 bytes
    assert file_raw(ledger, 1, COMMITMENT, short, chain.address) == "ECDSAInvalidSignatureLength(length=64)"


def test_file_dispute_checks_the_claimed_member_before_sending(
    fresh: tuple[Web3Ledger, list[bytes], list[str]],
) -> None:
    ledger, member_keys, members = fresh
    block = ledger.chain.w3.eth.block_number
    # member 0 claims to be member 1: the relayer refuses to send it (the chain would record member 0)
    with pytest.raises(ConfigError) as info:
        ledger.file_dispute(Dispute(1, members[1], COMMITMENT, sign(ledger, member_keys[0], 1)))
    assert info.value.parameter == "dispute.signature"
    assert members[0] in str(info.value)
    with pytest.raises(ConfigError, match=r"'dispute\.signature' parameter"):
        ledger.file_dispute(Dispute(1, members[1], COMMITMENT, "0x1234"))
    with pytest.raises(ConfigError, match=r"'dispute\.server_round' parameter"):
        ledger.file_dispute(Dispute(0, members[1], COMMITMENT, sign(ledger, member_keys[1], 0)))
    assert ledger.chain.w3.eth.block_number == block
