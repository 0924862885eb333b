"""Integration: `fedchain audit --rpc URL --ledger ADDRESS` against a real anvil node, with no key."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from fedchain.audit import audit_rpc
from fedchain.audit.cli import audit_app
from fedchain.ledger import Web3Ledger, connect
from fedchain.ledger.chain import KEY_ENV, KEYSTORE_ENV

from .helpers import DELTA, Federation

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
# anvil's first default account: a public, well-known development key (never holds real funds).
ANVIL_KEY_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


@pytest.fixture(scope="module")
def anvil_url() -> Iterator[str]:
    found = sorted((ROOT / "contracts" / "node_modules" / "@foundry-rs").glob("anvil-*/bin/anvil"))
    if not found:
        pytest.skip("anvil is not installed: run `cd contracts && npm ci` (installs @foundry-rs/anvil)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    process = subprocess.Popen(
        [str(found[0]), "--host", "127.0.0.1", "--port", str(port), "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"anvil did not start on 127.0.0.1:{port}")
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()  # by PID: only the process this fixture started
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


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
