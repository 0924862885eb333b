"""Integration: the JSON-RPC path against a real anvil node (npm @foundry-rs/anvil) on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedchain.errors import TransactionError
from fedchain.ledger import Web3Ledger, connect
from fedchain.rewards import proportional_rewards, score_to_fixed
from tests.anvil import ANVIL_KEY_0, ANVIL_KEY_1, running_anvil

from .helpers import member_addresses, next_record

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def anvil_url() -> Iterator[str]:
    with running_anvil() as url:
        yield url


def test_deploy_register_record_read_on_anvil(anvil_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDCHAIN_PRIVATE_KEY", ANVIL_KEY_0)
    chain = connect(anvil_url)
    assert chain.chain_id == 31337
    assert os.environ["FEDCHAIN_PRIVATE_KEY"][2:] not in repr(chain)
    ledger = Web3Ledger.deploy(chain, timeout_s=30)
    members = member_addresses(5, seed="anvil")
    ledger.register_members(members)
    scores = [0.4, 0.3, 0.2, 0.1, 0.0]
    record = next_record(ledger, members, scores, pool_wei=10**18 + 3)
    receipt = ledger.record_round(record)
    expected, remainder = proportional_rewards([score_to_fixed(s) for s in scores], record.reward_pool_wei)
    assert receipt.rewards_wei == dict(zip(members, expected, strict=True))
    assert receipt.treasury_wei == remainder
    assert ledger.total_supply() == record.reward_pool_wei
    assert ledger.record_round(record) == receipt  # idempotent on a real node too
    recorded = ledger.get_round(1)
    assert recorded.tx_hash == receipt.tx_hash
    assert recorded.model_hash == record.model_hash
    assert ledger.member_history(members[0])[0].reward_wei == expected[0]
    assert [e.address for e in ledger.registrations()] == members
    with pytest.raises(TransactionError) as info:
        ledger.record_round(next_record(ledger, [members[0], members[0]], [1.0, 1.0]))
    assert info.value.reason == f"DuplicateMember(member={members[0]})"
    # Second round: lineage continues; members already hold credit (steady state).
    receipt2 = ledger.record_round(next_record(ledger, members, scores))
    assert ledger.last_round() == 2
    assert receipt2.gas_used < receipt.gas_used + 50_000


@pytest.mark.slow
@pytest.mark.integration
def test_fedchain_run_records_every_round_on_anvil(anvil_url: str, tmp_path: Path) -> None:
    """The whole flow: a simulated federation through `fedchain run --chain URL` records on anvil."""
    import json

    env = dict(os.environ, FEDCHAIN_PRIVATE_KEY=ANVIL_KEY_0, FEDCHAIN_ADMIN_PRIVATE_KEY=ANVIL_KEY_1)
    out = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fedchain.cli",
            "run",
            "--out",
            str(out),
            "--members",
            "3",
            "--rounds",
            "2",
            "--no-dp",
            "--no-he",
            "--chain",
            anvil_url,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert ANVIL_KEY_0[2:] not in done.stdout + done.stderr
    result = json.loads((out / "result.json").read_text())
    reader = Web3Ledger(connect(anvil_url, private_key=ANVIL_KEY_0), result["ledger_address"])
    assert reader.last_round() == 2
    for row in result["rounds"]:
        recorded = reader.get_round(row["round"])
        assert recorded.tx_hash == row["tx_hash"]
        paid = {m["address"]: int(m["reward_wei"]) for m in row["members"]}
        assert recorded.rewards_wei == paid
    assert reader.total_supply() == 2 * int(result["config"]["reward_pool_wei"])


def test_statuses_spends_and_disputes_on_anvil(anvil_url: str) -> None:
    """The JSON-RPC path names the new custom errors too; a dispute before recording withholds the pool."""
    import dataclasses
    import hashlib

    from eth_account import Account

    from fedchain.identity.signing import dispute_digest, sign_digest
    from fedchain.types import Dispute, MemberRoundRecord
    from tests.anvil import ANVIL_KEY_0

    ledger = Web3Ledger.deploy(connect(anvil_url, private_key=ANVIL_KEY_0), timeout_s=30)
    key = hashlib.sha256(b"anvil-disputer").digest()
    members = [Account.from_key(key).address, *member_addresses(2, seed="anvil-status")]
    ledger.register_members(members)
    ledger.record_round(next_record(ledger, members, [1.0, 1.0, 1.0], pool_wei=300))
    late = MemberRoundRecord(members[1], 0.0, dp=None, epsilon=None, status="late")
    receipt = ledger.record_spends(1, [late])
    assert ledger.record_spends(1, [late]) == receipt
    with pytest.raises(TransactionError) as info:
        ledger.record_spends(2, [late])
    assert info.value.reason == "UnknownRound(round=2)"
    commitment = "0x" + "ab" * 32
    digest = dispute_digest(
        chain_id=ledger.chain_id, ledger_address=ledger.address, server_round=2, scalars_commitment=commitment
    )
    ledger.file_dispute(Dispute(2, members[0], commitment, sign_digest(key, digest)))
    with pytest.raises(TransactionError) as info:
        ledger.file_dispute(Dispute(2, members[0], commitment, sign_digest(key, digest)))
    assert info.value.reason == f"DisputeAlreadyFiled(round=2, member={members[0]})"
    record = next_record(ledger, members, [1.0, 1.0, 0.0], pool_wei=300)
    rejected = dataclasses.replace(record.members[2], status="rejected")
    paid = ledger.record_round(dataclasses.replace(record, members=(*record.members[:2], rejected)))
    assert paid.treasury_wei == 300 and set(paid.rewards_wei.values()) == {0}
    assert [m.status for m in ledger.get_round(2).members if m.address == members[2]] == ["rejected"]
