"""The contracts themselves, called through raw web3 (every revert path by its custom error name)."""

from __future__ import annotations

from typing import Any

import pytest
from eth_tester.exceptions import TransactionFailed
from web3.exceptions import ContractCustomError

from fedchain.ledger import Chain, Web3Ledger
from fedchain.ledger._abi import ContractAbi
from fedchain.ledger.fixedpoint import hex_to_bytes32

from .helpers import h, member_addresses, next_record

ABI = ContractAbi.fedchain()
REVERTS = (ContractCustomError, TransactionFailed)


def revert_name(call: Any, sender: str) -> str:
    with pytest.raises(REVERTS) as info:
        call.call({"from": sender})
    return ABI.revert_reason(info.value)


def record_args(
    ledger: Web3Ledger, members: list[str], scores: list[int], statuses: list[int] | None = None, **header: Any
) -> list[Any]:
    n = ledger.last_round() + 1
    previous = ledger.get_round(n - 1).model_hash if n > 1 else "0x" + "00" * 32
    values = {
        "round": n,
        "aggregate": h("a"),
        "model": h(f"m{n}"),
        "previous": previous,
        "root": h("r"),
        "commitment": h("c"),
        "pool": 1000,
    }
    values.update(header)
    head = (
        values["round"],
        hex_to_bytes32(values["aggregate"]),
        hex_to_bytes32(values["model"]),
        hex_to_bytes32(values["previous"]),
        hex_to_bytes32(values["root"]),
        hex_to_bytes32(values["commitment"]),
        values["pool"],
    )
    k = len(members)
    return [head, members, scores, [0] * k, [0] * k, statuses if statuses is not None else [0] * k]


def sorted_members(members: list[str], k: int) -> list[str]:
    return sorted(members, key=lambda a: int(a, 16))[:k]


def test_roles_are_wired(chain: Chain, ledger: Web3Ledger) -> None:
    contract = ledger.ledger_contract
    recorder_role = contract.functions.RECORDER_ROLE().call()
    admin_role = contract.functions.DEFAULT_ADMIN_ROLE().call()
    assert contract.functions.hasRole(recorder_role, chain.address).call()
    assert contract.functions.hasRole(admin_role, chain.address).call()
    assert ledger.token_contract.functions.minter().call() == ledger.address
    assert ledger.treasury == chain.test_accounts[2].address


def test_only_the_ledger_mints(chain: Chain, ledger: Web3Ledger) -> None:
    call = ledger.token_contract.functions.mint(chain.address, 1)
    assert revert_name(call, chain.address) == f"NotMinter(caller={chain.address})"


def test_only_the_recorder_records(chain: Chain, ledger: Web3Ledger, members: list[str]) -> None:
    stranger = chain.test_accounts[5].address
    args = record_args(ledger, sorted_members(members, 2), [1, 1])
    reason = revert_name(ledger.ledger_contract.functions.recordRound(*args), stranger)
    assert reason.startswith(f"AccessControlUnauthorizedAccount(account={stranger}")


def test_only_the_admin_registers(chain: Chain, ledger: Web3Ledger) -> None:
    stranger = chain.test_accounts[5].address
    call = ledger.ledger_contract.functions.registerMembers(member_addresses(1, seed="x"))
    assert revert_name(call, stranger).startswith("AccessControlUnauthorizedAccount")
    call = ledger.ledger_contract.functions.setTreasury(stranger)
    assert revert_name(call, stranger).startswith("AccessControlUnauthorizedAccount")


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("length", "LengthMismatch()"),
        ("duplicate", "DuplicateMember"),
        ("unsorted", "MembersNotSorted(index=1)"),
        ("unregistered", "UnregisteredMember"),
        ("future_round", "WrongRound"),
        ("past_round", "RoundAlreadyRecorded"),
        ("lineage", "BrokenLineage"),
        ("pool", "PoolTooLarge"),
    ],
)
def test_record_reverts(chain: Chain, ledger: Web3Ledger, members: list[str], case: str, expected: str) -> None:
    if ledger.last_round() == 0:  # make "past_round" and "lineage" meaningful
        ledger.record_round(next_record(ledger, members[:2], [1.0, 1.0]))
    ms = sorted_members(members, 3)
    last = ledger.last_round()
    args = {
        "length": lambda: record_args(ledger, ms, [1, 2]),
        "duplicate": lambda: record_args(ledger, [ms[0], ms[1], ms[1]], [1, 1, 1]),
        "unsorted": lambda: record_args(ledger, [ms[1], ms[0], ms[2]], [1, 1, 1]),
        "unregistered": lambda: record_args(ledger, sorted_members(member_addresses(1, seed="u"), 1), [1]),
        "future_round": lambda: record_args(ledger, ms, [1, 1, 1], round=last + 2),
        "past_round": lambda: record_args(ledger, ms, [1, 1, 1], round=last),
        "lineage": lambda: record_args(ledger, ms, [1, 1, 1], previous=h("not the last model")),
        "pool": lambda: record_args(ledger, ms, [1, 1, 1], pool=2**128),
    }[case]()
    reason = revert_name(ledger.ledger_contract.functions.recordRound(*args), chain.address)
    assert reason.startswith(expected), reason
    if case == "future_round":
        assert reason == f"WrongRound(expected={last + 1}, got={last + 2})"
    if case == "unregistered":
        assert args[1][0] in reason


def test_registration_reverts(chain: Chain, ledger: Web3Ledger, members: list[str]) -> None:
    fn = ledger.ledger_contract.functions
    assert revert_name(fn.registerMembers([members[0]]), chain.address) == f"AlreadyRegistered(member={members[0]})"
    stranger = member_addresses(1, seed="never")[0]
    assert revert_name(fn.deregisterMembers([stranger]), chain.address) == f"NotRegistered(member={stranger})"
    assert revert_name(fn.registerMembers(["0x" + "00" * 20]), chain.address) == "ZeroAddress()"
    assert revert_name(fn.getRound(10**6), chain.address) == f"UnknownRound(round={10**6})"


def test_round_events_and_header(chain: Chain, ledger: Web3Ledger, members: list[str]) -> None:
    record = next_record(ledger, members[:3], [3.0, 1.0, 0.0], pool_wei=1001)
    receipt = ledger.record_round(record)
    tx = chain.w3.eth.get_transaction_receipt(receipt.tx_hash)
    events = [e for e in (ABI.decode_log(_norm(log)) for log in tx["logs"]) if e is not None]
    names = [e.name for e in events]
    assert names.count("MemberRecorded") == 3
    assert names.count("RoundRecorded") == 1
    by_member = {e.args["member"]: e.args for e in events if e.name == "MemberRecorded"}
    scores = {m.address: m.score for m in record.members}
    for address, args in by_member.items():
        assert args["round"] == record.server_round
        assert args["score"] == int(scores[address] * 10**18)
        assert args["epsilon"] == 15 * 10**17
        assert args["dpParams"] != 0
    assert sorted(a["reward"] for a in by_member.values()) == [0, 250, 750]
    (round_event,) = [e.args for e in events if e.name == "RoundRecorded"]
    assert round_event["treasuryAmount"] == 1
    assert round_event["memberCount"] == 3
    assert round_event["modelHash"] == record.model_hash
    # Mints: the members' total to the ledger (pull payments) and the remainder to the treasury.
    mints = {e.args["to"]: e.args["value"] for e in events if e.name == "Transfer"}
    assert mints == {ledger.address: 1000, ledger.treasury: 1}
    header = ledger.round_header(record.server_round)
    assert header["recorder"] == chain.address
    assert header["blockNumber"] == receipt.block_number
    assert header["memberCount"] == 3
    assert header["totalScore"] == 4 * 10**18
    assert header["recordHash"] == ledger.record_hash(record)
    assert ledger.ledger_contract.functions.lastModelHash().call() == hex_to_bytes32(record.model_hash)


def test_claims_move_credit_to_erc20(chain: Chain, ledger: Web3Ledger, members: list[str]) -> None:
    receipt = ledger.record_round(next_record(ledger, members[:2], [1.0, 1.0], pool_wei=10**18))
    member = members[0]
    before_total = ledger.balance_of(member)
    credit = ledger.claimable_of(member)
    assert credit >= receipt.rewards_wei[member] > 0
    ledger.claim_for([member])
    assert ledger.claimable_of(member) == 0
    assert ledger.token_balance_of(member) >= credit
    assert ledger.balance_of(member) == before_total
    held = ledger.token_contract.functions.balanceOf(ledger.address).call()
    assert held == sum(ledger.claimable_of(m) for m in members)


def _norm(log: Any) -> dict[str, Any]:
    from fedchain.ledger._abi import normalize_log

    return normalize_log(log)
