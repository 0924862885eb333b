"""``fedchain member status``: a member's privacy spent and left and its rewards, from its state and the chain."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fedchain.config import FedChainConfig
from fedchain.errors import ConfigError
from fedchain.member_status import member_status
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fedchain.runner import run_simulation

    out = tmp_path_factory.mktemp("member-status")
    run_simulation(FedChainConfig(members=2, rounds=2, dp=True, he=True, chain="embedded", out_dir=str(out)))
    return out


def _status_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedchain.cli", "member", "status", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


@pytest.mark.slow
@pytest.mark.integration
def test_status_agrees_with_the_run_and_its_chain(run_dir: Path) -> None:
    from fedchain.audit.source import open_run

    result: dict[str, Any] = json.loads((run_dir / "result.json").read_text())
    ledger = open_run(run_dir)
    for index in range(2):
        status = member_status(run_dir / "members" / f"member-{index}", ledger=ledger)
        recorded = [m for row in result["rounds"] for m in row["members"] if m["address"] == status.address]
        assert len(recorded) == 2 and status.rounds_trained == 2
        assert status.epsilon == pytest.approx(recorded[-1]["epsilon"])
        assert status.epsilon_budget == 8.0 and 0 < status.epsilon <= 8.0
        assert status.epsilon_remaining == pytest.approx(8.0 - status.epsilon)
        chain = status.chain
        assert chain is not None and chain.registered and chain.budget == (8.0, 1e-5)
        assert chain.rounds_recorded == [1, 2]
        assert chain.rewards_wei == sum(int(m["reward_wei"]) for m in recorded) > 0
        assert chain.balance_wei == int(result["balances_wei"][status.address])
        assert chain.recorded_epsilon == pytest.approx(status.epsilon, abs=1e-9)
        assert status.model_round == 2 and chain.model_matches_chain is True


@pytest.mark.slow
@pytest.mark.integration
def test_cli_prints_json_and_flags_a_model_that_differs_from_the_chain(run_dir: Path, tmp_path: Path) -> None:
    member = run_dir / "members" / "member-1"
    done = _status_cli("--state-dir", str(member), "--run", str(run_dir), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["chain"]["model_matches_chain"] is True

    copy = tmp_path / "member-1"
    copy.mkdir()
    for name in ("metrics.json", "privacy.json", "global.json"):
        (copy / name).write_bytes((member / name).read_bytes())
    state = json.loads((copy / "global.json").read_text())
    state["model_hash"] = "0x" + "ab" * 32
    (copy / "global.json").write_text(json.dumps(state))
    done = _status_cli("--state-dir", str(copy), "--run", str(run_dir))
    assert done.returncode == 1
    assert "NO: the model held differs" in done.stdout


def test_without_a_chain_only_the_node_files_are_read(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text(
        json.dumps({"version": 1, "member": "0xabc", "outcomes": {"trained": 3}, "epsilon": 2.5, "epsilon_budget": 8.0})
    )
    status = member_status(tmp_path)
    assert status.chain is None and status.address == "0xabc" and status.epsilon_remaining == 5.5


def test_bad_state_dirs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="state directory"):
        member_status(tmp_path / "missing")
    done = _status_cli("--state-dir", str(tmp_path / "missing"))
    assert done.returncode == 2 and "state-dir" in done.stderr
    (tmp_path / "metrics.json").write_text("{not json")
    done = _status_cli("--state-dir", str(tmp_path))
    assert done.returncode == 1 and "unreadable" in done.stderr
