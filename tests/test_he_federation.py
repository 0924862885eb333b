"""Encrypted aggregation end to end, with real TenSEAL ciphertexts and Flower's simulation runtime."""

import numpy as np
import pytest

from fedchain import crypto
from fedchain.config import FedChainConfig
from fedchain.pipeline import AcceptedUpdate, EncryptedAggregation
from fedchain.serialization import load_model
from fedchain.types import MemberRound


@pytest.mark.slow
@pytest.mark.integration
def test_encrypted_fedavg_matches_plaintext_fedavg(tmp_path):
    from fedchain.runner import run_simulation

    base = FedChainConfig(members=3, rounds=3, dp=False, chain="none", partitioner="iid", seed=1)
    plain = run_simulation(base.replace(he=False, out_dir=str(tmp_path / "plain")))
    encrypted = run_simulation(base.replace(he=True, out_dir=str(tmp_path / "he")))
    plain_weights = load_model(tmp_path / "plain" / "model.safetensors", expected_hash=plain["model_hash"])
    he_weights = load_model(tmp_path / "he" / "model.safetensors", expected_hash=encrypted["model_hash"])
    worst = max(float(np.max(np.abs(plain_weights[k] - he_weights[k]))) for k in plain_weights)
    assert worst < 1e-4
    assert encrypted["final_accuracy"] == pytest.approx(plain["final_accuracy"], abs=0.01)
    for row in encrypted["rounds"]:
        assert row["aggregate_hash"].startswith("0x") and row["aggregate_hash"] != row["model_hash"]
    # The coordinator's context holds no secret key; the members' file is private.
    assert (tmp_path / "he" / "keys" / "member.ckks").stat().st_mode & 0o777 == 0o600


def _member(member_id: int, n: int) -> MemberRound:
    return MemberRound(
        member_id=member_id, address=f"0x{member_id:040x}", kind="honest", num_examples=n, status="accepted"
    )


def test_malformed_ciphertexts_are_dropped_and_the_round_continues():
    secret = crypto.create_secret_context(crypto.AGGREGATION)
    public = crypto.load_coordinator_context(crypto.export_public_context(secret))
    weights = {"w": np.zeros(10, np.float32)}
    # addition-only keys (AGGREGATION): no norm bound, so no decrypt committee and no SCORING keys
    config = FedChainConfig(members=4, he=True, chain="none", min_members=2, norm_bound=0)
    aggregation = EncryptedAggregation(config, public, vector_size=weights["w"].size)
    good = [crypto.encrypt_update(secret, np.full(10, 2.0 * n)) for n in (1, 3)]
    truncated = [good[0][0][: len(good[0][0]) // 2]]
    garbage = [b"\x00" * 64]
    accepted = [
        AcceptedUpdate(node_id=i, member=_member(i, n), chunks=chunks)
        for i, (n, chunks) in enumerate([(1, good[0]), (5, truncated), (3, good[1]), (7, garbage)])
    ]
    result = aggregation.aggregate(1, accepted)
    aggregate = result.aggregate
    assert aggregate is not None
    assert [u.member.member_id for u in result.kept] == [0, 2]
    assert result.rejections == {"invalid": 2}
    assert aggregate.total_weight == 4
    total = crypto.decrypt_update(secret, list(aggregate.ciphertext or ()), 10)
    assert np.allclose(total, 8.0, atol=1e-3)


@pytest.mark.slow
@pytest.mark.integration
def test_members_killed_during_training_are_excluded_and_unpaid(tmp_path):
    from fedchain.runner import run_simulation

    config = FedChainConfig(
        members=10, rounds=2, dp=False, he=True, chain="embedded", faults="crash:7,8,9", out_dir=str(tmp_path)
    )
    result = run_simulation(config)
    for row in result["rounds"]:
        assert row["status"] == "completed"
        assert row["rejections"] == {"failed": 3}
        assert sorted(m["member_id"] for m in row["members"]) == list(range(7))
        assert all(int(m["reward_wei"]) > 0 for m in row["members"])
    crashed = {m["address"] for row in result["rounds"] for m in row["members"] if m["member_id"] >= 7}
    assert not crashed
    paid = sum(int(wei) for wei in result["balances_wei"].values())
    assert 0 < paid <= 2 * config.reward_pool_wei
    assert len(result["balances_wei"]) == 7


@pytest.mark.slow
@pytest.mark.integration
def test_round_with_too_few_members_is_skipped_and_recorded_as_skipped(tmp_path):
    from fedchain.ledger import ExportedLedger
    from fedchain.runner import run_simulation

    config = FedChainConfig(
        members=3, rounds=2, dp=True, he=False, min_members=2, faults="crash:1,2", out_dir=str(tmp_path)
    )
    result = run_simulation(config)
    chain = ExportedLedger.load(tmp_path / "chain.json")
    assert chain.last_round() == 2
    for row in result["rounds"]:
        # member 0 trained (and spent privacy): it is recorded as skipped, unpaid, with its DP parameters
        assert row["status"] == "skipped"
        assert [(m["member_id"], m["status"], m["score"]) for m in row["members"]] == [(0, "skipped", 0.0)]
        assert row["rejections"] == {"failed": 2}
        recorded = chain.get_round(row["round"])
        assert [(m.status, m.reward_wei, m.dp is not None) for m in recorded.members] == [("skipped", 0, True)]
        assert recorded.model_hash == recorded.previous_model_hash == "0x" + "00" * 32
    assert chain.total_supply() == 0  # nobody is paid for a skipped round
    assert result["audit"]["ok"], result["audit"]  # the auditor's epsilon includes the skipped rounds' spend
