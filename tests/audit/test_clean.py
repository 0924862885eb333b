"""A clean federation passes every check, on a live ledger and through its export."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from fedchain.audit import CHECKS, EPSILON_TOLERANCE, AuditReport, MemberBudget, audit_ledger, audit_run, write_csv
from fedchain.ledger import export_ledger
from fedchain.privacy import epsilon_curve
from fedchain.rewards import proportional_rewards, score_to_fixed

from .helpers import DELTA, POOL, Federation


@pytest.fixture(scope="module")
def report(clean: Federation) -> AuditReport:
    return audit_ledger(clean.ledger, default_budget=MemberBudget(10.0, DELTA))


def test_clean_federation_passes_every_check(report: AuditReport) -> None:
    assert report.ok
    assert report.failures == []
    summary = report.summary()
    # Every rule of the issue was actually checked (passes counted), not skipped.
    for check, expected in {
        "rounds.contiguous": 1,
        "rounds.recorder": 3,
        "members.registered": 9,
        "rewards.rule": 9,
        "rewards.pool": 3,
        "token.supply": 1,
        "lineage.previous": 3,
        "privacy.epsilon": 9,
        "privacy.budget": 9,
    }.items():
        assert summary[check]["pass"] == expected, check
    assert set(summary) <= set(CHECKS)


def test_zero_merkle_root_is_a_warning_not_a_pass(report: AuditReport) -> None:
    roots = [f for f in report.findings if f.check == "updates.merkle_root"]
    assert [f.status for f in roots] == ["warn"] * 3
    assert all("no signed updates recorded" in f.message for f in roots)
    strict = AuditReport(findings=report.findings, strict=True)
    assert not strict.ok


def test_report_rows_hold_the_recomputed_values(report: AuditReport, clean: Federation) -> None:
    members = clean.members
    scores = [score_to_fixed(float(clean.sizes[m])) for m in members]
    expected, _ = proportional_rewards(scores, POOL)
    first = [row for row in report.members if row.server_round == 1]
    assert [row.address for row in first] == members
    assert [row.reward_wei for row in first] == expected
    for row in report.members:
        honest = epsilon_curve([clean.dp[row.address]] * row.server_round, delta=DELTA)[-1]
        assert row.epsilon_recorded == pytest.approx(honest, abs=1e-12)
        assert row.epsilon_recomputed is not None
        assert abs(row.epsilon_recomputed - honest) <= EPSILON_TOLERANCE
        assert row.registered is True and row.epsilon_budget == 10.0


def test_chain_rounding_of_dp_parameters_stays_far_inside_the_tolerance(report: AuditReport) -> None:
    # The chain keeps the noise multiplier to 1e-9; the members reported epsilon on the unrounded value.
    diffs = [abs(r.epsilon_recomputed - r.epsilon_recorded) for r in report.members]  # type: ignore[operator]
    assert max(diffs) > 0  # the rounding is real...
    assert max(diffs) < EPSILON_TOLERANCE / 100  # ...and 100x smaller than the tolerance


def test_budget_not_given_is_a_warning(clean: Federation) -> None:
    report = audit_ledger(clean.ledger)
    budget = [f for f in report.findings if f.check == "privacy.budget"]
    assert report.ok and report.budget_source == "none"
    assert {f.status for f in budget} == {"warn"} and len(budget) == 3


def test_audit_of_the_export_matches_the_live_audit(clean: Federation, report: AuditReport, tmp_path: Path) -> None:
    export_ledger(clean.ledger, tmp_path / "chain.json")
    (tmp_path / "result.json").write_text(json.dumps({"config": {"dp": True, "epsilon": 10.0, "delta": DELTA}}))
    exported = audit_run(tmp_path)
    assert exported.ok
    assert exported.budget_source == "result.json config (off-chain)"
    live = {(f.check, f.round, f.member, f.status) for f in report.findings}
    offline = {(f.check, f.round, f.member, f.status) for f in exported.findings if f.check != "export.snapshot"}
    assert offline == live
    assert [f.status for f in exported.findings if f.check == "export.snapshot"] == ["pass"]


def test_json_is_one_verdict_per_check_with_exact_wei(report: AuditReport) -> None:
    document = json.loads(json.dumps(report.to_dict()))
    assert document["ok"] is True
    assert len(document["findings"]) == len(report.findings)
    supply = next(f for f in document["findings"] if f["check"] == "token.supply")
    assert supply["expected"] == supply["actual"] == str(3 * POOL)
    assert {"check", "status", "round", "member", "field", "expected", "actual", "message"} <= set(supply)


def test_csv_export_of_member_histories(report: AuditReport, clean: Federation, tmp_path: Path) -> None:
    paths = write_csv(report, tmp_path)
    assert sorted(p.name for p in paths) == ["findings.csv", "member_history.csv", "rounds.csv"]
    with (tmp_path / "member_history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 9
    first = next(r for r in rows if r["round"] == "3" and r["member"] == clean.members[0])
    assert int(first["reward_wei"]) == int(first["expected_reward_wei"]) > 0
    assert float(first["epsilon_recomputed"]) == pytest.approx(float(first["epsilon_recorded"]), abs=1e-6)
    assert first["status"] == "pass" and float(first["noise_multiplier"]) == pytest.approx(1.098765432)
    with (tmp_path / "rounds.csv").open() as handle:
        rounds = list(csv.DictReader(handle))
    assert [r["status"] for r in rounds] == ["warn"] * 3  # the zero Merkle root
