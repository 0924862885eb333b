"""The Python Ledger API against the embedded chain: records, idempotency, errors, reads, export."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from fedchain.errors import ConfigError, LedgerError, TransactionError
from fedchain.ledger import (
    Chain,
    ExportedLedger,
    RoundConflictError,
    Web3Ledger,
    connect,
    export_ledger,
)
from fedchain.rewards import proportional_rewards, score_to_fixed

from .helpers import DP, member_addresses, next_record


def test_fresh_ledger_reads(chain: Chain, ledger: Web3Ledger) -> None:
    assert ledger.last_round() == 0
    assert ledger.total_supply() == 0
    assert ledger.rounds() == []
    with pytest.raises(LedgerError, match="round 1 is not recorded"):
        ledger.get_round(1)


def test_record_pays_the_published_rule(ledger: Web3Ledger, members: list[str]) -> None:
    scores = [0.5, 0.3, 0.2, 0.0]
    record = next_record(ledger, members[:4], scores, pool_wei=10**18 + 7)
    supply_before = ledger.total_supply()
    receipt = ledger.record_round(record)
    expected, remainder = proportional_rewards([score_to_fixed(s) for s in scores], record.reward_pool_wei)
    assert receipt.rewards_wei == dict(zip(members[:4], expected, strict=True))
    assert receipt.treasury_wei == remainder
    assert sum(receipt.rewards_wei.values()) + receipt.treasury_wei == record.reward_pool_wei
    assert ledger.total_supply() - supply_before == record.reward_pool_wei
    assert receipt.gas_used > 0
    assert receipt.block_number == ledger.chain.w3.eth.block_number


def test_recorded_round_reads_back(ledger: Web3Ledger, members: list[str]) -> None:
    record = next_record(ledger, members[2:5], [1.0, 2.0, 3.0], epsilon=2.25)
    receipt = ledger.record_round(record)
    recorded = ledger.get_round(record.server_round)
    assert recorded.tx_hash == receipt.tx_hash
    assert recorded.model_hash == record.model_hash
    assert recorded.previous_model_hash == record.previous_model_hash
    assert recorded.aggregate_hash == record.aggregate_hash
    assert recorded.update_merkle_root == record.update_merkle_root
    assert recorded.reward_pool_wei == record.reward_pool_wei
    assert recorded.member_count == 3
    assert recorded.rewards_wei == receipt.rewards_wei
    assert [m.address for m in recorded.members] == sorted(members[2:5], key=lambda a: int(a, 16))
    for entry in recorded.members:
        assert entry.dp == DP
        assert entry.epsilon == 2.25
    assert {m.address: m.score for m in recorded.members} == {m.address: m.score for m in record.members}
    history = ledger.member_history(members[3])
    assert history[-1].server_round == record.server_round
    assert [h.server_round for h in history] == sorted(h.server_round for h in history)


def test_idempotent_retry_returns_the_same_receipt(ledger: Web3Ledger, members: list[str]) -> None:
    record = next_record(ledger, members[:3], [1.0, 1.0, 2.0], pool_wei=999)
    first = ledger.record_round(record)
    supply = ledger.total_supply()
    balances = [ledger.balance_of(m) for m in members[:3]]
    block = ledger.chain.w3.eth.block_number
    again = ledger.record_round(record)
    assert again == first
    assert ledger.total_supply() == supply
    assert [ledger.balance_of(m) for m in members[:3]] == balances
    assert ledger.chain.w3.eth.block_number == block  # nothing was sent
    # The member order of the record does not matter: the chain stores them sorted.
    reordered = dataclasses.replace(record, members=tuple(reversed(record.members)))
    assert ledger.record_round(reordered) == first


def test_different_payload_for_a_recorded_round_is_refused(ledger: Web3Ledger, members: list[str]) -> None:
    record = next_record(ledger, members[:2], [1.0, 1.0])
    ledger.record_round(record)
    supply = ledger.total_supply()
    changed = dataclasses.replace(record, reward_pool_wei=record.reward_pool_wei + 1)
    with pytest.raises(RoundConflictError) as info:
        ledger.record_round(changed)
    assert info.value.server_round == record.server_round
    assert f"round {record.server_round} is already recorded with a different payload" in str(info.value)
    assert ledger.total_supply() == supply


def test_chain_refusals_raise_transaction_error_with_the_error_name(ledger: Web3Ledger, members: list[str]) -> None:
    record = next_record(ledger, members[:2], [1.0, 1.0])
    with pytest.raises(TransactionError) as info:
        ledger.record_round(dataclasses.replace(record, server_round=record.server_round + 1))
    assert info.value.reason == f"WrongRound(expected={record.server_round}, got={record.server_round + 1})"
    assert "recordRound" in str(info.value)

    outsider = member_addresses(1, seed="outsider")[0]
    bad = next_record(ledger, [members[0], outsider], [1.0, 1.0])
    with pytest.raises(TransactionError) as info:
        ledger.record_round(bad)
    assert info.value.reason == f"UnregisteredMember(member={outsider})"

    dup = next_record(ledger, [members[0], members[0]], [1.0, 1.0])
    with pytest.raises(TransactionError, match="DuplicateMember"):
        ledger.record_round(dup)

    broken = dataclasses.replace(record, previous_model_hash="0x" + "ee" * 32)
    with pytest.raises(TransactionError, match="BrokenLineage"):
        ledger.record_round(broken)

    with pytest.raises(TransactionError, match="AlreadyRegistered"):
        ledger.register_members([members[0]])


@pytest.mark.parametrize(
    ("change", "parameter"),
    [
        ({"server_round": 0}, "server_round"),
        ({"reward_pool_wei": -1}, "reward_pool_wei"),
        ({"model_hash": "0x1234"}, "model_hash"),
    ],
)
def test_invalid_records_fail_before_sending(
    ledger: Web3Ledger, members: list[str], change: dict[str, object], parameter: str
) -> None:
    record = dataclasses.replace(next_record(ledger, members[:1], [1.0]), **change)  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as info:
        ledger.record_round(record)
    assert info.value.parameter == parameter


def test_invalid_member_values_fail_before_sending(ledger: Web3Ledger, members: list[str]) -> None:
    with pytest.raises(ConfigError, match="'score' parameter"):
        ledger.record_round(next_record(ledger, members[:1], [-1.0]))
    with pytest.raises(ConfigError, match="'epsilon' parameter"):
        ledger.record_round(next_record(ledger, members[:1], [1.0], epsilon=float("inf")))
    bad_dp = dataclasses.replace(DP, delta=0.0)
    with pytest.raises(ConfigError, match=r"'dp.delta' parameter must be a float in \(0, 1\)"):
        ledger.record_round(next_record(ledger, members[:1], [1.0], dp=bad_dp))


def test_no_dp_and_zero_scores(ledger: Web3Ledger, members: list[str]) -> None:
    record = next_record(ledger, members[:2], [0.0, 0.0], pool_wei=500, dp=None, epsilon=None)
    receipt = ledger.record_round(record)
    assert receipt.rewards_wei == {members[0]: 0, members[1]: 0}
    assert receipt.treasury_wei == 500
    entry = ledger.get_round(record.server_round).members[0]
    assert entry.dp is None and entry.epsilon is None


def test_registration_history(chain: Chain, members: list[str]) -> None:
    ledger = Web3Ledger.deploy(chain)
    newcomer = member_addresses(1, seed="newcomer")[0]
    ledger.register_members([newcomer])
    registered_at = chain.w3.eth.block_number
    ledger.deregister_members([newcomer])
    deregistered_at = chain.w3.eth.block_number
    assert not ledger.is_registered(newcomer)
    assert [(e.address, e.registered) for e in ledger.registrations()] == [(newcomer, True), (newcomer, False)]
    assert ledger.was_registered(newcomer, block_number=registered_at)
    assert not ledger.was_registered(newcomer, block_number=registered_at - 1)
    assert not ledger.was_registered(newcomer, block_number=deregistered_at)
    with pytest.raises(TransactionError, match="NotRegistered"):
        ledger.deregister_members([newcomer])


def test_export_round_trip(tmp_path: Path, ledger: Web3Ledger, members: list[str]) -> None:
    ledger.record_round(next_record(ledger, members[:5], [1.0, 2.0, 3.0, 4.0, 5.0], pool_wei=12345))
    ledger.claim_for(members[:1])
    path = export_ledger(ledger, tmp_path / "run" / "chain.json")
    exported = ExportedLedger.load(path)
    assert exported.address == ledger.address
    assert exported.token_address == ledger.token_address
    assert exported.chain_id == ledger.chain.chain_id
    assert exported.last_round() == ledger.last_round()
    assert exported.rounds() == ledger.rounds()
    assert exported.registrations() == ledger.registrations()
    assert exported.total_supply() == ledger.total_supply() == exported.snapshot["totalSupply"]
    for member in [*members, ledger.treasury]:
        assert exported.balance_of(member) == ledger.balance_of(member)
        assert exported.member_history(member) == ledger.member_history(member)
    document = json.loads(path.read_text())
    assert document["format"] == "fedchain-ledger-export/1"
    assert {"RoundRecorded", "MemberRecorded", "Transfer"} <= set(document["events"].values())


def test_export_rejects_other_files(tmp_path: Path) -> None:
    from fedchain.errors import SerializationError

    path = tmp_path / "x.json"
    path.write_text('{"format": "something else"}')
    with pytest.raises(SerializationError, match="not a fedchain ledger export"):
        ExportedLedger.load(path)


def test_attach_to_existing_ledger(chain: Chain, ledger: Web3Ledger) -> None:
    attached = Web3Ledger(chain, ledger.address)
    assert attached.token_address == ledger.token_address
    assert attached.deploy_block == ledger.deploy_block
    with pytest.raises(LedgerError, match="no contract at"):
        Web3Ledger(chain, "0x" + "12" * 20)


def test_connect_validates_target_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="'chain' parameter"):
        connect("ftp://example")
    monkeypatch.delenv("FEDCHAIN_PRIVATE_KEY", raising=False)
    monkeypatch.delenv("FEDCHAIN_KEYSTORE", raising=False)
    with pytest.raises(ConfigError, match="private key"):
        connect("http://127.0.0.1:9")
    secret = "0x" + "ab" * 31  # too short: the message must not echo it
    with pytest.raises(ConfigError) as info:
        connect("http://127.0.0.1:9", private_key=secret)
    assert "ab" * 31 not in str(info.value)
    with pytest.raises(LedgerError, match="no JSON-RPC node answers"):
        connect("http://127.0.0.1:9", private_key="0x" + "ab" * 32)


def test_keystore_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from eth_account import Account

    key = "0x" + "cd" * 32
    keystore = tmp_path / "key.json"
    keystore.write_text(json.dumps(Account.encrypt(key, "pw", iterations=2)))
    monkeypatch.setenv("FEDCHAIN_KEYSTORE_PASSWORD", "wrong")
    with pytest.raises(ConfigError, match="'password' parameter"):
        connect("http://127.0.0.1:9", keystore=keystore)
    with pytest.raises(LedgerError, match="no JSON-RPC node"):  # key opened; no node there
        connect("http://127.0.0.1:9", keystore=keystore, password="pw")


def test_chain_repr_hides_the_key(chain: Chain) -> None:
    key_hex = chain.account.key.hex()
    assert key_hex not in repr(chain)
    assert chain.address in repr(chain)
