"""Budgets on chain: the auditor judges privacy spend from the chain alone, and the chain is the authority."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from fedchain.audit import AuditFinding, AuditReport, MemberBudget, audit_ledger, audit_run
from fedchain.audit.cli import audit_app
from fedchain.audit.source import read_snapshot
from fedchain.ledger import Chain, ExportedLedger, Web3Ledger, export_ledger

from .helpers import DELTA, FLAW_NO_LINEAGE, Federation, deploy_tamper_ledger

SIZES = [120, 150, 200]  # member 0 (q=0.25): epsilon 5.33 / 7.05 / 8.42 after rounds 1 / 2 / 3


def budget_findings(report: AuditReport, status: str | None = None) -> list[AuditFinding]:
    return [f for f in report.findings if f.check == "privacy.budget" and (status is None or f.status == status)]


def federation_with_budgets(chain: Chain, members: list[str], budgets: dict[str, tuple[float, float]]) -> Federation:
    """Three rounds on the real ContributionLedger, with the given members' budgets set on chain first."""
    ledger = Web3Ledger.deploy(chain)
    ledger.register_members(members)
    ledger.set_privacy_budgets(budgets)
    federation = Federation(ledger, members, sizes=SIZES)
    for _ in range(3):
        federation.record()
    return federation


@pytest.fixture(scope="module")
def budgeted(chain: Chain, members: list[str]) -> Federation:
    """Every member has an on-chain budget of (10, 1e-5): nobody overspends."""
    return federation_with_budgets(chain, members, dict.fromkeys(members, (10.0, DELTA)))


def test_on_chain_budgets_need_no_options(budgeted: Federation) -> None:
    report = audit_ledger(budgeted.ledger)
    assert report.ok and report.failures == []
    assert report.budget_source == "chain"
    assert budget_findings(report, "warn") == []
    assert report.summary()["privacy.budget"] == {"pass": 9, "fail": 0, "warn": 0}
    assert {row.epsilon_budget for row in report.members} == {10.0}


def test_snapshot_holds_the_chains_budgets(budgeted: Federation, members: list[str]) -> None:
    assert read_snapshot(budgeted.ledger).budgets == dict.fromkeys(members, (10.0, DELTA))


def test_a_member_over_its_on_chain_budget_fails(chain: Chain, members: list[str]) -> None:
    federation = federation_with_budgets(chain, members, dict.fromkeys(members, (8.0, DELTA)))
    report = audit_ledger(federation.ledger)
    assert not report.ok and report.budget_source == "chain"
    (bad,) = budget_findings(report, "fail")
    assert (bad.round, bad.member, bad.field, bad.expected) == (3, members[0], "epsilon", 8.0)
    assert bad.actual == pytest.approx(8.4211, abs=1e-4)
    assert "exceeds the budget 8" in bad.message
    assert {f.check for f in report.failures} == {"privacy.budget"}


def test_an_option_that_disagrees_with_the_chain_fails_and_the_chain_decides(
    budgeted: Federation, members: list[str]
) -> None:
    report = audit_ledger(budgeted.ledger, default_budget=MemberBudget(7.0, 1e-6), budget_source="--epsilon-budget")
    assert report.budget_source == "chain + --epsilon-budget"
    failed = budget_findings(report, "fail")
    # One epsilon and one delta disagreement per member; no overspend, because the chain's 10 is used
    # (with the option's 7, member 0 would have failed rounds 2 and 3).
    assert {(f.member, f.field) for f in failed} == {
        (m, k) for m in members for k in ("epsilon_budget", "delta_budget")
    }
    epsilon = next(f for f in failed if f.member == members[0] and f.field == "epsilon_budget")
    assert (epsilon.expected, epsilon.actual) == (10.0, 7.0)
    assert (
        epsilon.message == "the budget from --epsilon-budget (epsilon 7) differs from the on-chain budget (epsilon 10)"
    )
    delta = next(f for f in failed if f.member == members[0] and f.field == "delta_budget")
    assert (delta.expected, delta.actual) == (DELTA, 1e-6)
    assert "(delta 1e-06) differs from the on-chain budget (delta 1e-05)" in delta.message
    assert {row.epsilon_budget for row in report.members} == {10.0}


def test_an_option_that_agrees_with_the_chain_passes(budgeted: Federation, members: list[str]) -> None:
    report = audit_ledger(budgeted.ledger, budgets={members[1]: (10.0, DELTA)}, default_budget=(10.0, None))
    assert report.ok and report.budget_source == "chain + given"
    agreed = [f for f in budget_findings(report, "pass") if f.field == "budget"]
    assert [f.member for f in agreed] == members
    assert all(f.message == "the budget from given agrees with the on-chain budget" for f in agreed)


def test_members_without_an_on_chain_budget_keep_the_off_chain_rules(chain: Chain, members: list[str]) -> None:
    federation = federation_with_budgets(chain, members, {members[1]: (10.0, DELTA)})
    # No options: the members without a budget on chain warn, as before.
    report = audit_ledger(federation.ledger)
    assert report.ok and report.budget_source == "chain"
    assert {f.member for f in budget_findings(report, "warn")} == {members[0], members[2]}
    assert all("none on chain, none given" in f.message for f in budget_findings(report, "warn"))
    # Options cover them (member 0 overspends 8); member 1 is judged by the chain.
    given = {members[0]: (8.0, DELTA), members[2]: (8.0, DELTA)}
    report = audit_ledger(federation.ledger, budgets=given, budget_source="--budgets FILE")
    assert report.budget_source == "chain + --budgets FILE"
    failed = budget_findings(report, "fail")
    assert [(f.round, f.member, f.field) for f in failed] == [(3, members[0], "epsilon")]
    assert budget_findings(report, "warn") == []
    budgets = {row.address: row.epsilon_budget for row in report.members}
    assert budgets == {members[0]: 8.0, members[1]: 10.0, members[2]: 8.0}
    # A default budget is every member's, so it must also agree with member 1's on-chain budget.
    report = audit_ledger(federation.ledger, default_budget=MemberBudget(8.0, DELTA))
    failed = budget_findings(report, "fail")
    assert {(f.round, f.member, f.field) for f in failed} == {
        (None, members[1], "epsilon_budget"),
        (3, members[0], "epsilon"),
    }


def test_a_ledger_without_budgets_audits_as_before(chain: Chain, members: list[str]) -> None:
    """TamperLedger has no privacyBudget: calls revert, which reads as "no budget on chain"."""
    ledger = deploy_tamper_ledger(chain, FLAW_NO_LINEAGE)
    ledger.register_members(members)
    federation = Federation(ledger, members, sizes=SIZES)
    for _ in range(3):
        federation.record()
    assert ledger.privacy_budget(members[0]) is None
    assert ledger.privacy_budget_fixed(members[0]) is None
    report = audit_ledger(ledger)
    assert report.ok and report.budget_source == "none"
    assert len(budget_findings(report, "warn")) == 3
    report = audit_ledger(ledger, default_budget=MemberBudget(8.0, DELTA))
    assert report.budget_source == "given"
    assert [(f.round, f.member) for f in budget_findings(report, "fail")] == [(3, members[0])]


def test_an_export_of_a_ledger_without_budgets_audits_as_before(
    chain: Chain, members: list[str], tmp_path: Path
) -> None:
    ledger = deploy_tamper_ledger(chain, 0)
    ledger.register_members(members)
    Federation(ledger, members, sizes=SIZES).record()
    exported = ExportedLedger.load(export_ledger(ledger, tmp_path / "chain.json"))
    assert "privacyBudgets" not in exported.snapshot  # the contract has no privacyBudget to read
    assert exported.privacy_budget(members[0]) is None
    report = audit_run(tmp_path, default_budget=(10.0, DELTA))
    assert report.ok and report.budget_source == "given"
    assert report.summary()["export.snapshot"] == {"pass": 1, "fail": 0, "warn": 0}


# ---- runs: the export and the CLI ----------------------------------------------------------------


@pytest.fixture(scope="module")
def budgeted_run(budgeted: Federation, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("budgeted-run")
    export_ledger(budgeted.ledger, directory / "chain.json")
    return directory


def test_export_audit_reads_budgets_from_the_chain_alone(budgeted_run: Path) -> None:
    report = audit_run(budgeted_run)  # no result.json, no options
    assert report.ok and report.budget_source == "chain"
    assert budget_findings(report, "warn") == []
    assert report.summary()["export.snapshot"] == {"pass": 1, "fail": 0, "warn": 0}


def test_run_config_is_checked_against_the_chain(budgeted_run: Path, tmp_path: Path, members: list[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "chain.json").write_bytes((budgeted_run / "chain.json").read_bytes())
    (run / "result.json").write_text(json.dumps({"config": {"dp": True, "epsilon": 10.0, "delta": DELTA}}))
    report = audit_run(run)
    assert report.ok and report.budget_source == "chain + result.json config (off-chain)"
    (run / "result.json").write_text(json.dumps({"config": {"dp": True, "epsilon": 12.0, "delta": DELTA}}))
    report = audit_run(run)
    failed = budget_findings(report, "fail")
    assert {(f.member, f.field, f.expected, f.actual) for f in failed} == {
        (m, "epsilon_budget", 10.0, 12.0) for m in members
    }
    assert "result.json config (off-chain) (epsilon 12)" in failed[0].message


def test_a_tampered_budget_in_the_export_snapshot_is_caught(
    budgeted_run: Path, tmp_path: Path, members: list[str]
) -> None:
    document = json.loads((budgeted_run / "chain.json").read_text())
    document["snapshot"]["privacyBudgets"][members[2]]["epsilon"] = 100 * 10**18
    (tmp_path / "chain.json").write_text(json.dumps(document))
    report = audit_run(tmp_path)
    (bad,) = [f for f in report.failures if f.check == "export.snapshot"]
    assert (bad.member, bad.field) == (members[2], "privacyBudget")
    assert "disagrees with its PrivacyBudgetSet logs" in bad.message


def test_cli_audit_without_budget_options(budgeted_run: Path) -> None:
    app = typer.Typer()
    app.add_typer(audit_app, name="audit")
    result = CliRunner().invoke(app, ["audit", "--run", str(budgeted_run)])
    assert result.exit_code == 0, result.output
    assert "AUDIT PASSED" in result.output and "budgets from chain" in result.output
    assert "privacy.budget" not in result.output  # no budget warning printed
    result = CliRunner().invoke(app, ["audit", "--run", str(budgeted_run), "--json"])
    document = json.loads(result.output)
    assert document["budget_source"] == "chain"
    assert document["summary"]["privacy.budget"] == {"pass": 9, "fail": 0, "warn": 0}
    result = CliRunner().invoke(app, ["audit", "--run", str(budgeted_run), "--epsilon-budget", "9", "--json"])
    document = json.loads(result.output)
    assert result.exit_code == 1 and document["budget_source"] == "chain + --epsilon-budget"
    assert {f["field"] for f in document["findings"] if f["status"] == "fail"} == {"epsilon_budget"}
