"""Integration: on a real anvil node the auditor reads budgets from the chain, with no key and no options."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fedchain.audit import audit_rpc
from fedchain.ledger import Web3Ledger, connect
from tests.anvil import ANVIL_KEY_0, running_anvil

from .helpers import DELTA, Federation, deploy_tamper_ledger

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def anvil_url() -> Iterator[str]:
    with running_anvil() as url:
        yield url


def test_audit_rpc_judges_spend_by_the_on_chain_budgets(anvil_url: str, members: list[str]) -> None:
    ledger = Web3Ledger.deploy(connect(anvil_url, private_key=ANVIL_KEY_0), timeout_s=30)
    ledger.register_members(members)
    ledger.set_privacy_budgets({members[0]: (6.0, DELTA), members[1]: (10.0, DELTA), members[2]: (10.0, DELTA)})
    federation = Federation(ledger, members, sizes=[120, 150, 200])
    federation.record()
    federation.record()  # member 0 reaches epsilon 7.05 > 6

    report = audit_rpc(anvil_url, ledger.address)
    assert report.budget_source == "chain"
    assert [f.status for f in report.findings if f.check == "privacy.budget" and f.status != "pass"] == ["fail"]
    (bad,) = report.failures
    assert (bad.check, bad.round, bad.member, bad.expected) == ("privacy.budget", 2, members[0], 6.0)


def test_a_ledger_without_budgets_reads_none_over_json_rpc(anvil_url: str, members: list[str]) -> None:
    ledger = deploy_tamper_ledger(connect(anvil_url, private_key=ANVIL_KEY_0), 0)
    ledger.register_members(members)
    Federation(ledger, members, sizes=[120, 150, 200]).record()
    assert ledger.privacy_budget(members[0]) is None
    report = audit_rpc(anvil_url, ledger.address, default_budget=(10.0, DELTA))
    assert report.ok and report.budget_source == "given"
