"""Integration: privacy budgets over JSON-RPC on a real anvil node, and the deployment path that sets them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from fedchain.deployment import setup_ledger
from fedchain.errors import ConfigError, TransactionError
from fedchain.ledger import Web3Ledger, connect
from tests.anvil import ANVIL_KEY_0, running_anvil

from .helpers import member_addresses

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def anvil_url() -> Iterator[str]:
    with running_anvil() as url:
        yield url


@dataclass(frozen=True)
class Wallet:
    address: str


@dataclass(frozen=True)
class Federation:
    """What setup_ledger reads of a ProvisionedFederation: the coordinator's and members' addresses."""

    coordinator_address: str
    members: tuple[Wallet, ...]


def test_budgets_on_anvil(anvil_url: str) -> None:
    ledger = Web3Ledger.deploy(connect(anvil_url, private_key=ANVIL_KEY_0), timeout_s=30)
    alice, bob = member_addresses(2, seed="anvil-budget")
    ledger.register_members([alice, bob])
    ledger.set_privacy_budgets({alice: (8.0, 1e-5), bob: (2.0, 1e-6)})
    assert ledger.privacy_budget(alice) == (8.0, 1e-5)
    assert ledger.privacy_budget(bob) == (2.0, 1e-6)
    # A node reverts with ContractCustomError (eth-tester with TransactionFailed): the same reason.
    with pytest.raises(TransactionError) as info:
        ledger.set_privacy_budgets({bob: (3.0, 1e-6)})
    assert info.value.reason == f"BudgetAlreadySet(member={bob})"
    stranger = member_addresses(1, seed="anvil-stranger")[0]
    with pytest.raises(TransactionError) as info:
        ledger.set_privacy_budgets({stranger: (3.0, 1e-6)})
    assert info.value.reason == f"NotRegistered(member={stranger})"


def test_setup_ledger_records_every_members_budget_with_dp(anvil_url: str) -> None:
    members = member_addresses(3, seed="anvil-setup")
    federation = Federation(member_addresses(1, seed="anvil-coordinator")[0], tuple(Wallet(m) for m in members))
    setup = setup_ledger(anvil_url, federation, admin_key=ANVIL_KEY_0, privacy_budget=(4.0, 1e-5))
    ledger = Web3Ledger(connect(anvil_url, private_key=ANVIL_KEY_0), setup.ledger_address)
    assert [ledger.privacy_budget(m) for m in members] == [(4.0, 1e-5)] * 3

    without = setup_ledger(anvil_url, federation, admin_key=ANVIL_KEY_0)  # DP off: no budgets
    ledger = Web3Ledger(connect(anvil_url, private_key=ANVIL_KEY_0), without.ledger_address)
    assert [ledger.privacy_budget(m) for m in members] == [None] * 3


def test_setup_ledger_checks_the_budget_before_sending_anything(anvil_url: str) -> None:
    chain = connect(anvil_url, private_key=ANVIL_KEY_0)
    federation = Federation(member_addresses(1, seed="anvil-c2")[0], (Wallet(member_addresses(1)[0]),))
    block = chain.w3.eth.block_number
    with pytest.raises(ConfigError) as info:
        setup_ledger(anvil_url, federation, admin_key=ANVIL_KEY_0, privacy_budget=(8.0, 0.0))
    assert str(info.value) == "The 'privacy_budget.delta' parameter must be a float in (0, 1). Got 0.0."
    assert chain.w3.eth.block_number == block
