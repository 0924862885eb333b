"""``fedchain run --chain URL``: admin, recorder and treasury are separate accounts (real anvil).

The admin's key deploys the ledger and registers the members; the coordinator's key (the one the
ServerApp signs with) holds RECORDER_ROLE and nothing else; the treasury is a third address.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account

from fedchain.ledger import connect
from fedchain.ledger.admin import ChainAdmin
from tests.anvil import ANVIL_KEY_0, ANVIL_KEY_1, ANVIL_KEY_2, running_anvil
from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _run(out: Path, url: str, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    args = ["run", "--out", str(out), "--members", "2", "--rounds", "1", "--no-dp", "--no-he", "--chain", url]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FEDCHAIN_")}
    return subprocess.run(
        [sys.executable, "-m", "fedchain.cli", *args, *extra],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**clean, "PYTHONUNBUFFERED": "1", **env},
    )


def test_run_on_a_url_chain_separates_admin_recorder_and_treasury(tmp_path):
    admin = Account.from_key(ANVIL_KEY_0).address
    coordinator = Account.from_key(ANVIL_KEY_1).address
    treasury = Account.from_key(ANVIL_KEY_2).address
    with running_anvil() as url:
        # The coordinator's key as admin too is refused before anything is sent.
        same = _run(
            tmp_path / "same", url, {"FEDCHAIN_PRIVATE_KEY": ANVIL_KEY_1, "FEDCHAIN_ADMIN_PRIVATE_KEY": ANVIL_KEY_1}
        )
        assert same.returncode == 2 and "the coordinator holds only RECORDER_ROLE" in same.stderr
        missing = _run(tmp_path / "missing", url, {"FEDCHAIN_PRIVATE_KEY": ANVIL_KEY_1})
        assert missing.returncode == 2 and "$FEDCHAIN_ADMIN_PRIVATE_KEY" in missing.stderr

        env = {"FEDCHAIN_PRIVATE_KEY": ANVIL_KEY_1, "FEDCHAIN_ADMIN_PRIVATE_KEY": ANVIL_KEY_0}
        done = _run(tmp_path / "run", url, env, "--treasury", treasury)
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads((tmp_path / "run" / "result.json").read_text())

        chain = connect(url, private_key=ANVIL_KEY_0)
        ledger_admin = ChainAdmin.attach(chain, result["ledger_address"])
        assert ledger_admin.role_holders() == {"DEFAULT_ADMIN_ROLE": [admin], "RECORDER_ROLE": [coordinator]}
        assert ledger_admin.ledger.treasury == treasury
        recorded = ledger_admin.ledger.get_round(1)
        assert ledger_admin.ledger.round_header(1)["recorder"] == coordinator
        assert recorded.rewards_wei and all(ledger_admin.ledger.is_registered(m) for m in recorded.rewards_wei)
