"""End to end through the real CLI and Flower's simulation runtime."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

FEDCHAIN = [sys.executable, "-m", "fedchain.cli"]


def _run(*args, timeout=600):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([*FEDCHAIN, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rounds", "0"], "The '--rounds' option must be an int in [1, inf). Got 0."),
        (["--epsilon", "-1"], "The '--epsilon' option must be a float in (0, inf). Got -1.0."),
        (["--adversary", "thief"], "The '--adversary' option must be one of"),
        (["--strategy", "nope"], "The '--strategy' option must be one of 'fed"),
    ],
)
def test_invalid_options_exit_nonzero_with_one_line(tmp_path, args, message):
    done = _run("run", "--out", str(tmp_path), *args, timeout=120)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "result.json").exists()


@pytest.mark.slow
@pytest.mark.integration
def test_three_members_two_rounds_plaintext(tmp_path):
    out = tmp_path / "run"
    done = _run("run", "--out", str(out), "--members", "3", "--rounds", "2", "--no-dp", "--no-he", "--chain", "none")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "final accuracy" in done.stdout
    result = json.loads((out / "result.json").read_text())
    assert [r["round"] for r in result["rounds"]] == [1, 2]
    assert 0.5 < result["final_accuracy"] <= 1.0
    for row in result["rounds"]:
        assert row["status"] == "completed"
        assert len(row["members"]) == 3
        assert row["model_hash"].startswith("0x") and len(row["model_hash"]) == 66
        assert {m["kind"] for m in row["members"]} == {"honest"}
        assert sum(m["score"] for m in row["members"]) == pytest.approx(1.0)
        for field in ("tx_hash", "gas_used"):
            assert field in row
    assert result["rounds"][1]["previous_model_hash"] == result["rounds"][0]["model_hash"]
    assert "ledger_address" in result and "audit" in result
    from fedchain.serialization import load_model

    weights = load_model(out / "model.safetensors", expected_hash=result["model_hash"])
    assert weights["0.weight"].shape == (64, 64)


def test_provision_keys_writes_secret_0600_and_a_public_context_that_cannot_decrypt(tmp_path):
    import numpy as np

    from fedchain import crypto
    from fedchain.errors import CryptoError

    done = _run("provision", "keys", str(tmp_path / "keys"), timeout=120)
    assert done.returncode == 0, done.stderr
    member_file, public_file = tmp_path / "keys" / "member.ckks", tmp_path / "keys" / "coordinator.ckks"
    assert member_file.stat().st_mode & 0o777 == 0o600
    member = crypto.load_member_context(crypto.read_context(member_file))
    public = crypto.load_coordinator_context(crypto.read_context(public_file))
    with pytest.raises(CryptoError):
        crypto.load_coordinator_context(crypto.read_context(member_file))
    with pytest.raises(CryptoError):
        crypto.encrypt_update(public, np.ones(4))
    chunks = crypto.encrypt_update(member, np.ones(4))
    with pytest.raises(CryptoError):
        crypto.decrypt_update(public, chunks, 4)
    assert np.allclose(crypto.decrypt_update(member, chunks, 4), 1.0, atol=1e-4)


@pytest.mark.slow
@pytest.mark.integration
def test_signed_update_digests_are_committed_on_chain(tmp_path):
    from fedchain.identity.merkle import merkle_proof, update_leaf, verify_proof
    from fedchain.ledger import ExportedLedger

    out = tmp_path / "run"
    done = _run("run", "--out", str(out), "--members", "3", "--rounds", "1", "--no-dp", "--no-he")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    row = result["rounds"][0]
    leaves = [update_leaf(1, m["address"], m["update_digest"]) for m in row["members"]]
    assert result["audit"]["ok"] and result["audit"]["failed"] == 0, result["audit"]
    assert "audit PASSED" in done.stdout
    recorded = ExportedLedger.load(out / "chain.json").get_round(1)
    assert recorded.update_merkle_root != "0x" + "00" * 32
    for index, leaf in enumerate(leaves):
        assert verify_proof(recorded.update_merkle_root, leaf, merkle_proof(leaves, index))
