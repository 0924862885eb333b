"""Integration: `fedchain audit --rpc URL --ledger ADDRESS` against a real anvil node, with no key."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import typer
from typer.testing import CliRunner

from fedchain.audit import audit_rpc
from fedchain.audit.cli import audit_app
from fedchain.ledger import Web3Ledger, connect
from fedchain.ledger.chain import KEY_ENV, KEYSTORE_ENV
from tests.anvil import ANVIL_KEY_0, running_anvil

from .helpers import DELTA, Federation

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def anvil_url() -> Iterator[str]:
    with running_anvil() as url:
        yield url


def test_audit_a_live_chain_without_a_key(anvil_url: str, members: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = Web3Ledger.deploy(connect(anvil_url, private_key=ANVIL_KEY_0), timeout_s=30)
    ledger.register_members(members)
    federation = Federation(ledger, members, sizes=[120, 150, 200])
    federation.record()
    federation.record()
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEYSTORE_ENV, raising=False)

    report = audit_rpc(anvil_url, ledger.address, default_budget=(10.0, DELTA))
    assert report.ok and report.chain_id == 31337
    assert report.summary()["rounds.recorder"] == {"pass": 2, "fail": 0, "warn": 0}  # tx senders checked

    app = typer.Typer()
    app.add_typer(audit_app, name="audit")
    result = CliRunner().invoke(app, ["audit", "--rpc", anvil_url, "--ledger", ledger.address, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ok"] is True
    result = CliRunner().invoke(app, ["audit", "--rpc", anvil_url, "--ledger", members[0]])
    assert result.exit_code == 2 and "no contract" in result.output
