"""Crash and resume: the coordinator is killed at each point of a round, restarted, and finishes the run
without losing or double-recording a round and without paying twice. The chain is a real anvil node
(it outlives the coordinator, as a real chain does)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedchain.faults import KILLED_EXIT_CODE
from fedchain.ledger import Web3Ledger, connect
from tests.anvil import ANVIL_KEY_0, ANVIL_KEY_1, running_anvil
from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture
def anvil_url(tmp_path: Path) -> Iterator[str]:
    with running_anvil(tmp_path / "anvil-state.json") as url:
        yield url


def _fedchain_run(out: Path, url: str, he: bool, *extra: str, dp: bool = True) -> subprocess.CompletedProcess[str]:
    args = ["run", "--out", str(out), "--members", "2", "--rounds", "2", "--chain", url, "--he" if he else "--no-he"]
    # A fixed noise multiplier leaves budget for the round a crash makes members train twice.
    args += ["--dp", "--set", "noise-multiplier=1.5"] if dp else ["--no-dp"]
    args += extra
    # The admin (anvil's second dev key) deploys; the coordinator's key holds only RECORDER_ROLE.
    env = dict(os.environ, FEDCHAIN_PRIVATE_KEY=ANVIL_KEY_0, FEDCHAIN_ADMIN_PRIVATE_KEY=ANVIL_KEY_1)
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "fedchain.cli", *args], capture_output=True, text=True, timeout=600, cwd=ROOT, env=env
    )


@pytest.mark.parametrize(
    ("point", "he"),
    [("replies", False), ("aggregated", False), ("sent", False), ("aggregated", True)],
)
def test_killed_coordinator_resumes_from_the_chain(tmp_path, anvil_url, point, he):
    out = tmp_path / "run"
    crashed = _fedchain_run(out, anvil_url, he, "--faults", f"kill:2:{point}")
    assert crashed.returncode == KILLED_EXIT_CODE, crashed.stderr[-2000:]
    assert not (out / "result.json").exists()

    resumed = _fedchain_run(out, anvil_url, he, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert [row["round"] for row in result["rounds"]] == [1, 2]
    assert all(row["status"] == "completed" for row in result["rounds"])

    ledger = Web3Ledger(connect(anvil_url, private_key=ANVIL_KEY_0), result["ledger_address"])
    assert ledger.last_round() == 2
    assert ledger.total_supply() == 2 * 10**20  # two pools of the default size, each paid once
    previous = "0x" + "00" * 32
    for row in result["rounds"]:
        recorded = ledger.get_round(row["round"])
        assert recorded.tx_hash == row["tx_hash"]
        assert recorded.previous_model_hash == previous  # lineage unbroken across the crash
        previous = recorded.model_hash
        assert recorded.rewards_wei == {m["address"]: int(m["reward_wei"]) for m in row["members"]}
    assert result["final_accuracy"] > 0.4
    # DP is on: every privacy spend is on chain, so the auditor's epsilon matches the members'.
    # Killed before round 2 was staged (after the replies or the aggregation), round 2 was trained
    # twice: each member's first training is recorded as a replayed spend. Killed after the
    # transaction was sent, the staged round is recorded as it was: nobody trained twice.
    assert result["audit"]["ok"], result["audit"]
    replayed = [(s.server_round, s.status) for s in ledger.spends()]
    assert replayed == ([(2, "replayed")] * 2 if point in ("replies", "aggregated") else [])


def test_resumed_fedadam_continues_its_moments(tmp_path, anvil_url):
    """Plaintext FedAdam keeps moments on the coordinator: a resumed run must end on the same model."""
    fedadam = ("--strategy", "fedadam", "--no-dp")
    straight = _fedchain_run(tmp_path / "straight", anvil_url, False, *fedadam)
    assert straight.returncode == 0, straight.stderr[-2000:]
    crashed = _fedchain_run(tmp_path / "run", anvil_url, False, *fedadam, "--faults", "kill:2:replies")
    assert crashed.returncode == KILLED_EXIT_CODE, crashed.stderr[-2000:]
    assert list((tmp_path / "run" / "coordinator").glob("strategy-1.safetensors"))
    resumed = _fedchain_run(tmp_path / "run", anvil_url, False, *fedadam, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = json.loads((tmp_path / "straight" / "result.json").read_text())["rounds"]
    got = json.loads((tmp_path / "run" / "result.json").read_text())["rounds"]
    assert [r["model_hash"] for r in got] == [r["model_hash"] for r in expected]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--members", "2"], "'--resume' option must be used with a persistent chain"),
        (["--chain", "none"], "'--resume' option must be used with an --out holding a checkpoint"),
    ],
)
def test_resume_refuses_the_embedded_chain_and_a_missing_checkpoint(tmp_path, extra, message):
    done = subprocess.run(
        [sys.executable, "-m", "fedchain.cli", "run", "--out", str(tmp_path), "--resume", *extra],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert done.returncode == 2
    assert message in done.stderr
