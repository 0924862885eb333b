"""Fixtures: an embedded chain per module and a clean three-member federation on it."""

from __future__ import annotations

import pytest

from fedchain.ledger import Chain, Web3Ledger, connect

from .helpers import Federation, addresses


@pytest.fixture(scope="module")
def chain() -> Chain:
    return connect("embedded")


@pytest.fixture(scope="module")
def members() -> list[str]:
    return addresses(3)


@pytest.fixture(scope="module")
def clean(chain: Chain, members: list[str]) -> Federation:
    """Three rounds recorded on the real ContributionLedger with real DP parameters."""
    ledger = Web3Ledger.deploy(chain, treasury=chain.test_accounts[2].address)
    ledger.register_members(members)
    federation = Federation(ledger, members, sizes=[120, 150, 200])
    for _ in range(3):
        federation.record()
    return federation
