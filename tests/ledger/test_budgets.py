"""Members' lifetime privacy budgets on chain: set once by the admin, read back, exported, refused clearly."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from fedchain.errors import ConfigError, TransactionError
from fedchain.ledger import Chain, ExportedLedger, Web3Ledger, export_ledger
from fedchain.ledger._abi import ContractAbi, revert_data
from fedchain.ledger.fixedpoint import (
    BUDGET_FIELD_LIMIT,
    budget_to_fixed,
    delta_to_fixed,
    fixed_to_budget,
    fixed_to_delta,
)

from .helpers import member_addresses, next_record

ABI = ContractAbi.fedchain()


@pytest.fixture
def fresh(chain: Chain) -> Web3Ledger:
    """A new ledger per test: a budget can be set only once."""
    return Web3Ledger.deploy(chain)


def budget_events(ledger: Web3Ledger) -> list[dict[str, Any]]:
    events = (ABI.decode_log(log) for log in ledger.raw_logs())
    return [e.args for e in events if e is not None and e.name == "PrivacyBudgetSet"]


def revert_reason(call: Any, sender: str) -> str:
    """The decoded custom error of a call the contract refuses."""
    with pytest.raises(Exception) as info:
        call.call({"from": sender})
    assert revert_data(info.value) is not None, info.value
    return ABI.revert_reason(info.value)


# ---- fixed point -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("epsilon", "delta"), [(8.0, 1e-5), (0.1, 1e-6), (3.0, 0.5), (1e-9, 1e-18), (12345.678901, 0.999999)]
)
def test_budget_encoding_round_trips_exactly(epsilon: float, delta: float) -> None:
    words = budget_to_fixed(epsilon, delta)
    assert fixed_to_budget(*words) == (epsilon, delta)
    assert fixed_to_delta(delta_to_fixed(delta)) == delta


def test_budget_encoding_golden_words() -> None:
    assert budget_to_fixed(8.0, 1e-5) == (8 * 10**18, 10**13)
    assert fixed_to_budget(0, 0) is None and fixed_to_delta(0) is None


@pytest.mark.parametrize(
    ("epsilon", "delta", "message"),
    [
        (0.0, 1e-5, "The 'b.epsilon' parameter must be a float in (0, inf). Got 0.0."),
        (-1.0, 1e-5, "The 'b.epsilon' parameter must be a float in (0, inf). Got -1.0."),
        (math.inf, 1e-5, "The 'b.epsilon' parameter must be a float in (0, inf). Got inf."),
        (True, 1e-5, "The 'b.epsilon' parameter must be a float in (0, inf). Got True."),
        (1e-19, 1e-5, "The 'b.epsilon' parameter must be a float in (0, 3.40282e+20) at resolution 1e-18. Got 1e-19."),
        (4e20, 1e-5, "The 'b.epsilon' parameter must be a float in (0, 3.40282e+20) at resolution 1e-18. Got 4e+20."),
        (8.0, 0.0, "The 'b.delta' parameter must be a float in (0, 1). Got 0.0."),
        (8.0, 1.0, "The 'b.delta' parameter must be a float in (0, 1). Got 1.0."),
        (8.0, math.nan, "The 'b.delta' parameter must be a float in (0, 1). Got nan."),
        (8.0, 1e-19, "The 'b.delta' parameter must be a float in (0, 1) at resolution 1e-18. Got 1e-19."),
    ],
)
def test_budget_encoding_refuses_out_of_range_values(epsilon: float, delta: float, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        budget_to_fixed(epsilon, delta, name="b")
    assert str(info.value) == message


def test_largest_encodable_epsilon_fits_the_contract_field() -> None:
    epsilon_fixed, _ = budget_to_fixed(3.4e20, 1e-5)
    assert epsilon_fixed < BUDGET_FIELD_LIMIT


# ---- the contract through Web3Ledger -------------------------------------------------------------


def test_set_once_and_read_back(fresh: Web3Ledger) -> None:
    alice, bob, carol = member_addresses(3, seed="budget")
    fresh.register_members([alice, bob, carol])
    fresh.set_privacy_budgets({alice: (8.0, 1e-5), bob.lower(): (3.5, 1e-6)})

    assert fresh.privacy_budget(alice) == (8.0, 1e-5)
    assert fresh.privacy_budget(bob) == (3.5, 1e-6)
    assert fresh.privacy_budget(carol) is None  # registered, no budget set
    view = fresh.ledger_contract.functions.privacyBudget
    assert view(alice).call() == [8 * 10**18, 10**13]
    assert view(carol).call() == [0, 0]  # zeros when unset
    assert budget_events(fresh) == [
        {"member": alice, "epsilon": 8 * 10**18, "delta": 10**13},
        {"member": bob, "epsilon": 35 * 10**17, "delta": 10**12},
    ]


def test_a_budget_cannot_be_changed(fresh: Web3Ledger) -> None:
    alice, bob = member_addresses(2, seed="once")
    fresh.register_members([alice, bob])
    fresh.set_privacy_budgets({alice: (8.0, 1e-5)})
    with pytest.raises(TransactionError) as info:
        fresh.set_privacy_budgets({bob: (8.0, 1e-5), alice: (80.0, 1e-5)})
    assert info.value.reason == f"BudgetAlreadySet(member={alice})"
    assert "setPrivacyBudgets(2 members) would revert (reason: BudgetAlreadySet(member=0x" in str(info.value)
    assert fresh.privacy_budget(alice) == (8.0, 1e-5)
    assert fresh.privacy_budget(bob) is None  # the whole call reverted


def test_the_same_member_twice_in_one_call_is_refused(fresh: Web3Ledger) -> None:
    (alice,) = member_addresses(1, seed="twice")
    fresh.register_members([alice])
    with pytest.raises(TransactionError) as info:  # two spellings of one address: two mapping keys
        fresh.set_privacy_budgets({alice: (8.0, 1e-5), alice.lower(): (8.0, 1e-5)})
    assert info.value.reason == f"BudgetAlreadySet(member={alice})"
    assert fresh.privacy_budget(alice) is None


def test_only_a_registered_member_gets_a_budget(fresh: Web3Ledger) -> None:
    alice, stranger = member_addresses(2, seed="unregistered")
    fresh.register_members([alice])
    with pytest.raises(TransactionError) as info:
        fresh.set_privacy_budgets({alice: (8.0, 1e-5), stranger: (8.0, 1e-5)})
    assert info.value.reason == f"NotRegistered(member={stranger})"
    assert fresh.privacy_budget(alice) is None


def test_a_budget_outlives_deregistration_and_a_deregistered_member_gets_none(fresh: Web3Ledger) -> None:
    alice, bob = member_addresses(2, seed="deregistered")
    fresh.register_members([alice, bob])
    fresh.set_privacy_budgets({alice: (8.0, 1e-5)})
    fresh.deregister_members([alice, bob])
    assert fresh.privacy_budget(alice) == (8.0, 1e-5)
    with pytest.raises(TransactionError) as info:
        fresh.set_privacy_budgets({bob: (8.0, 1e-5)})
    assert info.value.reason == f"NotRegistered(member={bob})"


def test_only_the_admin_sets_budgets(fresh: Web3Ledger, chain: Chain) -> None:
    (alice,) = member_addresses(1, seed="admin")
    fresh.register_members([alice])
    outsider = chain.test_accounts[3]
    with pytest.raises(TransactionError) as info:
        Web3Ledger(chain.with_account(outsider), fresh.address).set_privacy_budgets({alice: (8.0, 1e-5)})
    assert info.value.reason is not None
    assert info.value.reason.startswith(f"AccessControlUnauthorizedAccount(account={outsider.address}, neededRole=")
    assert fresh.privacy_budget(alice) is None


@pytest.mark.parametrize(
    ("epsilon", "delta"),
    [(0, 10**13), (8 * 10**18, 0), (8 * 10**18, 10**18), (8 * 10**18, 2 * 10**18), (2**128, 10**13)],
)
def test_the_contract_refuses_invalid_budgets_itself(fresh: Web3Ledger, chain: Chain, epsilon: int, delta: int) -> None:
    """Python validates first; the contract still refuses what would bypass it."""
    (alice,) = member_addresses(1, seed="invalid")
    fresh.register_members([alice])
    call = fresh.ledger_contract.functions.setPrivacyBudgets([alice], [epsilon], [delta])
    assert revert_reason(call, chain.address) == f"InvalidBudget(member={alice})"


def test_the_contract_refuses_mismatched_lengths(fresh: Web3Ledger, chain: Chain) -> None:
    alice, bob = member_addresses(2, seed="lengths")
    fresh.register_members([alice, bob])
    functions = fresh.ledger_contract.functions
    assert revert_reason(functions.setPrivacyBudgets([alice, bob], [1, 1], [1]), chain.address) == "LengthMismatch()"
    assert revert_reason(functions.setPrivacyBudgets([alice], [1, 1], [1]), chain.address) == "LengthMismatch()"


@pytest.mark.parametrize(
    ("budgets", "message"),
    [
        ({"0x12": (8.0, 1e-5)}, "The 'budgets' parameter must be a 20-byte hex address. Got '0x12'."),
        ({"ALICE": (0.0, 1e-5)}, "The 'budgets[ALICE].epsilon' parameter must be a float in (0, inf). Got 0.0."),
        ({"ALICE": (8.0, 1.5)}, "The 'budgets[ALICE].delta' parameter must be a float in (0, 1). Got 1.5."),
        ({"ALICE": 8.0}, "The 'budgets[ALICE]' parameter must be an (epsilon, delta) pair. Got 8.0."),
        (
            {"BOB": (8.0, 1e-5), "ALICE": (-2.0, 1e-5)},
            "The 'budgets[ALICE].epsilon' parameter must be a float in (0, inf). Got -2.0.",
        ),
    ],
)
def test_bad_budgets_name_the_member_and_send_nothing(
    fresh: Web3Ledger, chain: Chain, budgets: dict[str, Any], message: str
) -> None:
    alice, bob = member_addresses(2, seed="bad")
    fresh.register_members([alice, bob])
    names = {"ALICE": alice, "BOB": bob}
    block = chain.w3.eth.block_number
    with pytest.raises(ConfigError) as info:
        fresh.set_privacy_budgets({names.get(k, k): v for k, v in budgets.items()})
    assert str(info.value) == message.replace("ALICE", alice)
    assert chain.w3.eth.block_number == block  # validated before anything was sent
    assert fresh.privacy_budget(bob) is None


def test_no_budgets_sends_nothing(fresh: Web3Ledger, chain: Chain) -> None:
    block = chain.w3.eth.block_number
    fresh.set_privacy_budgets({})
    assert chain.w3.eth.block_number == block


def test_budgets_leave_rounds_and_their_gas_alone(fresh: Web3Ledger, chain: Chain) -> None:
    """Recording reads no budget: a round costs the same gas with or without budgets set."""
    members = member_addresses(4, seed="gas")
    other = Web3Ledger.deploy(chain)
    for ledger in (fresh, other):
        ledger.register_members(members)
    fresh.set_privacy_budgets(dict.fromkeys(members, (8.0, 1e-5)))
    gas = []
    for ledger in (fresh, other):
        ledger.record_round(next_record(ledger, members, [0.4, 0.3, 0.2, 0.1]))
        gas.append(ledger.record_round(next_record(ledger, members, [0.4, 0.3, 0.2, 0.1])).gas_used)
    assert gas[0] == gas[1]


# ---- export ------------------------------------------------------------------------------------


def test_export_carries_the_budgets(fresh: Web3Ledger, tmp_path: Path) -> None:
    alice, bob = member_addresses(2, seed="export")
    fresh.register_members([alice, bob])
    fresh.set_privacy_budgets({alice: (8.0, 1e-5)})
    fresh.record_round(next_record(fresh, [alice, bob], [1.0, 1.0]))
    exported = ExportedLedger.load(export_ledger(fresh, tmp_path / "chain.json"))
    assert exported.privacy_budget(alice) == (8.0, 1e-5) == fresh.privacy_budget(alice)
    assert exported.privacy_budget(alice.lower()) == (8.0, 1e-5)
    assert exported.privacy_budget(bob) is None
    assert exported.snapshot["privacyBudgets"] == {alice: {"epsilon": 8 * 10**18, "delta": 10**13}}
    assert exported.privacy_budget_words() == exported.snapshot["privacyBudgets"]


def test_an_export_written_before_budgets_existed_still_loads(fresh: Web3Ledger, tmp_path: Path) -> None:
    """The pre-budget format: no PrivacyBudgetSet logs, no snapshot entry."""
    (alice,) = member_addresses(1, seed="old")
    fresh.register_members([alice])
    fresh.record_round(next_record(fresh, [alice], [1.0]))
    document = json.loads(export_ledger(fresh, tmp_path / "chain.json").read_text())
    del document["snapshot"]["privacyBudgets"]
    document["events"] = {t: n for t, n in document["events"].items() if n != "PrivacyBudgetSet"}
    old = ExportedLedger(document)
    assert old.privacy_budget(alice) is None
    assert old.privacy_budget_words() == {}
    assert old.get_round(1).members[0].address == alice
