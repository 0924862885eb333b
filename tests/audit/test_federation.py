"""A real DP federation (Flower simulation, Opacus, embedded EVM) records its budgets on chain at deployment."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedchain.audit import audit_run
from fedchain.config import FedChainConfig
from fedchain.ledger import ExportedLedger

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_a_dp_runs_audit_takes_the_budgets_from_the_chain(tmp_path: Path) -> None:
    from fedchain.runner import run_simulation

    config = FedChainConfig(members=2, rounds=1, dp=True, he=False, chain="embedded", out_dir=str(tmp_path))
    result = run_simulation(config)
    # The coordinator's own audit: the run config's budget cross-checked against the chain's.
    assert result["audit"]["ok"], result["audit"]
    assert result["audit"]["budget_source"] == "chain + run config (off-chain)"
    assert "privacy.budget" not in result["audit"]["warning_checks"]

    exported = ExportedLedger.load(tmp_path / "chain.json")
    members = {m["address"] for m in result["rounds"][0]["members"]}
    assert len(members) == 2
    assert {exported.privacy_budget(m) for m in members} == {(config.epsilon, config.delta)}

    # An auditor with nothing but the chain: the budgets come from it alone.
    (tmp_path / "result.json").unlink()
    report = audit_run(tmp_path)
    assert report.ok and report.budget_source == "chain"
    assert not [f for f in report.warnings if f.check == "privacy.budget"]
    assert {row.epsilon_budget for row in report.members} == {config.epsilon}
