"""Member-round statuses and privacy spends recorded after their round: every spend on chain, none paid."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from eth_tester.exceptions import TransactionFailed
from web3.exceptions import ContractCustomError

from fedchain.errors import ConfigError, TransactionError
from fedchain.ledger import Chain, ExportedLedger, RoundConflictError, Web3Ledger, export_ledger
from fedchain.ledger._abi import ContractAbi
from fedchain.ledger.fixedpoint import epsilon_to_fixed, hex_to_bytes32, pack_dp
from fedchain.types import MEMBER_STATUSES, MemberRoundRecord, RoundRecord

from .helpers import DP, h, member_addresses, next_record

ABI = ContractAbi.fedchain()
REVERTS = (ContractCustomError, TransactionFailed)


def revert_name(call: Any, sender: str) -> str:
    with pytest.raises(REVERTS) as info:
        call.call({"from": sender})
    return ABI.revert_reason(info.value)


def with_statuses(record: RoundRecord, statuses: list[str]) -> RoundRecord:
    members = tuple(dataclasses.replace(m, status=s) for m, s in zip(record.members, statuses, strict=True))
    return dataclasses.replace(record, members=members)


def raw_round(ledger: Web3Ledger, members: list[str], scores: list[int], statuses: list[int]) -> list[Any]:
    """``recordRound`` arguments for the next round, members sorted, any status codes."""
    record = next_record(ledger, members, [0.0] * len(members))
    args = list(Web3Ledger.encode_round(record))
    order = sorted(range(len(members)), key=lambda i: int(members[i], 16))
    args[1] = [members[i] for i in order]
    args[2] = [scores[i] for i in order]
    args[5] = [statuses[i] for i in order]
    return args


def test_statuses_and_commitment_are_recorded(ledger: Web3Ledger, members: list[str]) -> None:
    record = with_statuses(next_record(ledger, members[:5], [2.0, 0.0, 0.0, 0.0, 0.0]), list(MEMBER_STATUSES))
    record = dataclasses.replace(record, scalars_commitment=h("scalars"))
    receipt = ledger.record_round(record)
    recorded = ledger.get_round(record.server_round)
    assert {m.address: m.status for m in recorded.members} == dict(zip(members[:5], MEMBER_STATUSES, strict=True))
    assert recorded.scalars_commitment == h("scalars")
    assert {a for a, r in receipt.rewards_wei.items() if r} == {members[0]}
    for entry in recorded.members:  # every member-round keeps its DP parameters, whatever its status
        assert entry.dp == DP


def test_a_score_without_acceptance_is_refused(chain: Chain, ledger: Web3Ledger, members: list[str]) -> None:
    fn = ledger.ledger_contract.functions
    ms = sorted(members[:2], key=lambda a: int(a, 16))
    for code in range(1, len(MEMBER_STATUSES)):
        reason = revert_name(fn.recordRound(*raw_round(ledger, ms, [1, 5], [0, code])), chain.address)
        assert reason == f"ScoreWithoutAcceptance(member={ms[1]}, status={code})"
    reason = revert_name(fn.recordRound(*raw_round(ledger, ms, [1, 0], [0, 5])), chain.address)
    assert reason == f"InvalidStatus(member={ms[1]}, status=5)"
    args = raw_round(ledger, ms, [1, 0], [0, 1])
    args[5] = [0]
    assert revert_name(fn.recordRound(*args), chain.address) == "LengthMismatch()"
    # the Python side refuses the same before sending
    bad = with_statuses(next_record(ledger, ms, [1.0, 1.0]), ["accepted", "rejected"])
    with pytest.raises(ConfigError, match=r"'members\[.*\]\.score' parameter must be 0"):
        ledger.record_round(bad)
    with pytest.raises(ConfigError, match=r"'members\[.*\]\.status' parameter must be one of"):
        ledger.record_round(with_statuses(next_record(ledger, ms, [1.0, 0.0]), ["accepted", "declined"]))


def test_a_skipped_round_lists_its_members(ledger: Web3Ledger, members: list[str]) -> None:
    record = with_statuses(next_record(ledger, members[:3], [0.0, 0.0, 0.0], pool_wei=0), ["skipped"] * 3)
    receipt = ledger.record_round(record)
    assert receipt.rewards_wei == dict.fromkeys(members[:3], 0) and receipt.treasury_wei == 0
    assert [m.status for m in ledger.get_round(record.server_round).members] == ["skipped"] * 3


def test_retry_is_idempotent_and_statuses_are_part_of_the_payload(ledger: Web3Ledger, members: list[str]) -> None:
    record = with_statuses(next_record(ledger, members[:3], [1.0, 0.0, 2.0]), ["accepted", "rejected", "accepted"])
    record = dataclasses.replace(record, scalars_commitment=h("c"))
    first = ledger.record_round(record)
    block = ledger.chain.w3.eth.block_number
    assert ledger.record_round(record) == first
    assert ledger.chain.w3.eth.block_number == block
    for changed in (
        with_statuses(record, ["accepted", "late", "accepted"]),
        dataclasses.replace(record, scalars_commitment=h("other")),
    ):
        with pytest.raises(RoundConflictError):
            ledger.record_round(changed)


def spend(address: str, status: str = "late", epsilon: float | None = 2.0) -> MemberRoundRecord:
    return MemberRoundRecord(address, 0.0, dp=DP, epsilon=epsilon, status=status)


def test_spends_are_recorded_once_and_pay_nothing(ledger: Web3Ledger, members: list[str]) -> None:
    if ledger.last_round() == 0:
        ledger.record_round(next_record(ledger, members[:2], [1.0, 1.0]))
    last = ledger.last_round()
    supply, balances = ledger.total_supply(), [ledger.balance_of(m) for m in members]
    before = len(ledger.spends())
    batch = [spend(members[6], "late"), spend(members[7], "replayed", None), spend(members[5], "rejected")]
    receipt = ledger.record_spends(last, batch)
    assert receipt.rewards_wei == {} and receipt.treasury_wei == 0
    block = ledger.chain.w3.eth.block_number
    assert ledger.record_spends(last, list(reversed(batch))) == receipt  # a retry (any order) sends nothing
    assert ledger.chain.w3.eth.block_number == block
    assert ledger.total_supply() == supply and [ledger.balance_of(m) for m in members] == balances
    recorded = ledger.spends()[before:]
    assert {(s.address, s.status, s.epsilon, s.dp) for s in recorded} == {
        (members[6], "late", 2.0, DP),
        (members[7], "replayed", None, DP),
        (members[5], "rejected", 2.0, DP),
    }
    assert {s.server_round for s in recorded} == {last}
    assert [s.status for s in ledger.spends(address=members[7])][-1] == "replayed"
    assert all(s.server_round == last for s in ledger.spends(last))
    # the same spends again under another batch id are recorded again (a second, distinct spend)
    ledger.record_spends(last, batch[:1], spend_id="late-again")
    assert len(ledger.spends(address=members[6])) == len([s for s in recorded if s.address == members[6]]) + 1
    spend_txs = {s.tx_hash for s in ledger.spends()}  # spends are not round entries (member_history)
    assert not spend_txs & {m.tx_hash for m in ledger.member_history(members[6])}


def test_spend_reverts_by_name(chain: Chain, ledger: Web3Ledger, members: list[str]) -> None:
    if ledger.last_round() == 0:
        ledger.record_round(next_record(ledger, members[:2], [1.0, 1.0]))
    fn = ledger.ledger_contract.functions
    last = ledger.last_round()
    word, eps = pack_dp(DP), epsilon_to_fixed(1.0)

    def call(server_round: int, who: list[str], statuses: list[int], batch: str = "x") -> str:
        n = len(who)
        return revert_name(
            fn.recordSpends(server_round, hex_to_bytes32(h(batch)), who, [word] * n, [eps] * n, statuses),
            chain.address,
        )

    assert call(0, members[:1], [2]) == "UnknownRound(round=0)"
    assert call(last + 1, members[:1], [2]) == f"UnknownRound(round={last + 1})"
    for code in (0, 3):  # accepted and skipped are not spends found after the round
        assert call(last, members[:1], [code]) == f"InvalidSpendStatus(member={members[0]}, status={code})"
    assert call(last, members[:1], [9]) == f"InvalidStatus(member={members[0]}, status=9)"
    outsider = member_addresses(1, seed="spend-outsider")[0]
    assert call(last, [outsider], [2]) == f"UnregisteredMember(member={outsider})"
    n = 1
    assert (
        revert_name(
            fn.recordSpends(last, hex_to_bytes32(h("y")), members[:1], [word], [eps] * 2, [2] * n), chain.address
        )
        == "LengthMismatch()"
    )
    stranger = chain.test_accounts[5].address
    reason = revert_name(fn.recordSpends(last, hex_to_bytes32(h("z")), members[:1], [word], [eps], [2]), stranger)
    assert reason.startswith(f"AccessControlUnauthorizedAccount(account={stranger}")
    receipt = ledger.record_spends(last, [spend(members[0])], spend_id=h("taken"))
    assert receipt.gas_used > 0
    assert call(last, members[:1], [2], batch="taken") == f"SpendsAlreadyRecorded(spendId={h('taken')})"


def test_invalid_spends_fail_before_sending(ledger: Web3Ledger, members: list[str]) -> None:
    with pytest.raises(ConfigError, match="'members' parameter must be a non-empty sequence"):
        ledger.record_spends(1, [])
    with pytest.raises(ConfigError, match=r"'members\[.*\]\.status' parameter must be one of 'rejected'"):
        ledger.record_spends(1, [spend(members[0], "accepted")])
    with pytest.raises(ConfigError, match=r"'members\[.*\]\.score' parameter must be 0"):
        ledger.record_spends(1, [dataclasses.replace(spend(members[0]), score=1.0)])
    with pytest.raises(ConfigError, match="'server_round' parameter"):
        ledger.record_spends(0, [spend(members[0])])
    if ledger.last_round() < 1:
        ledger.record_round(next_record(ledger, members[:1], [1.0]))
    with pytest.raises(TransactionError) as info:
        ledger.record_spends(ledger.last_round() + 5, [spend(members[0])])
    assert info.value.reason == f"UnknownRound(round={ledger.last_round() + 5})"


def test_export_carries_statuses_spends_disputes(tmp_path: Path, ledger: Web3Ledger, members: list[str]) -> None:
    if ledger.last_round() == 0:
        ledger.record_round(next_record(ledger, members[:2], [1.0, 1.0]))
    ledger.record_spends(ledger.last_round(), [spend(members[3], "late")], spend_id="export-test")
    exported = ExportedLedger.load(export_ledger(ledger, tmp_path / "chain.json"))
    assert exported.rounds() == ledger.rounds()
    assert exported.spends() == ledger.spends()
    assert exported.spends(address=members[3]) == ledger.spends(address=members[3])
    assert exported.disputes() == ledger.disputes() == []
    assert exported.snapshot["disputeCounts"] == {}
