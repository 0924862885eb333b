"""Fixtures: embedded chain -> deployed ledger -> registered members (shared per module)."""

from __future__ import annotations

import pytest

from fedchain.ledger import Chain, Web3Ledger, connect

from .helpers import member_addresses


@pytest.fixture(scope="module")
def chain() -> Chain:
    return connect("embedded")


@pytest.fixture(scope="module")
def members() -> list[str]:
    return member_addresses(8)


@pytest.fixture(scope="module")
def ledger(chain: Chain, members: list[str]) -> Web3Ledger:
    treasury = chain.test_accounts[2].address
    deployed = Web3Ledger.deploy(chain, treasury=treasury)
    deployed.register_members(members)
    return deployed
