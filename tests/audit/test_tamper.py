"""Tampered chains are detected: each failed check names the round, the member and the field.

The chains are built on the embedded EVM, either with the real ContributionLedger and crafted
records (privacy), or with TamperLedger (tests/audit/contracts), a test-only copy of the ledger
with the same ABI and one rule switched off, read through the real Web3Ledger.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fedchain.audit import AuditFinding, AuditReport, MemberBudget, audit_ledger, audit_run
from fedchain.ledger import Chain, Web3Ledger, export_ledger
from fedchain.rewards import proportional_rewards, score_to_fixed
from fedchain.serialization import save_model
from fedchain.types import ZERO_HASH, MemberRoundRecord, RoundRecord

from .helpers import (
    DELTA,
    FLAW_ANY_ROUND,
    FLAW_ANYONE_RECORDS,
    FLAW_EQUAL_SPLIT,
    FLAW_EXTRA_MINT,
    FLAW_NO_LINEAGE,
    FLAW_NO_REGISTRATION,
    POOL,
    Federation,
    deploy_tamper_ledger,
    h,
    member_dp,
)


def failures(report: AuditReport, check: str) -> list[AuditFinding]:
    return [f for f in report.failures if f.check == check]


def only_failing_checks(report: AuditReport) -> set[str]:
    return {f.check for f in report.failures}


def tamper(chain: Chain, members: list[str], flaws: int, *, register: bool = True) -> Federation:
    ledger = deploy_tamper_ledger(chain, flaws)
    if register:
        ledger.register_members(members)
    return Federation(ledger, members, sizes=[120, 150, 200])


def test_the_variant_ledger_is_honest_with_no_flaw(chain: Chain, members: list[str]) -> None:
    federation = tamper(chain, members, 0)
    federation.record()
    federation.record()
    assert audit_ledger(federation.ledger, default_budget=(10.0, DELTA)).ok


def test_reward_that_breaks_the_rule(chain: Chain, members: list[str]) -> None:
    federation = tamper(chain, members, FLAW_EQUAL_SPLIT)
    federation.record()
    report = audit_ledger(federation.ledger)
    assert not report.ok
    assert only_failing_checks(report) == {"rewards.rule"}
    expected, _ = proportional_rewards([score_to_fixed(s) for s in (120.0, 150.0, 200.0)], POOL)
    bad = failures(report, "rewards.rule")
    assert [(f.round, f.member, f.field) for f in bad] == [(1, m, "reward_wei") for m in members]
    assert [f.expected for f in bad] == expected
    assert [f.actual for f in bad] == [POOL // 3] * 3
    assert "pool * score // total_score" in str(bad[0])


def test_broken_lineage(chain: Chain, members: list[str]) -> None:
    federation = tamper(chain, members, FLAW_NO_LINEAGE)
    first = federation.record()
    federation.record(previous=h("a model nobody recorded"))
    federation.record()
    report = audit_ledger(federation.ledger)
    assert only_failing_checks(report) == {"lineage.previous"}
    (bad,) = failures(report, "lineage.previous")
    assert (bad.round, bad.member, bad.field) == (2, None, "previous_model_hash")
    assert bad.expected == first.model_hash and bad.actual == h("a model nobody recorded")
    assert "round 2" in str(bad) and "previous_model_hash" in str(bad)


def test_round_one_must_start_from_the_zero_hash(chain: Chain, members: list[str]) -> None:
    federation = tamper(chain, members, FLAW_NO_LINEAGE)
    federation.record(previous=h("smuggled start"))
    (bad,) = failures(audit_ledger(federation.ledger), "lineage.previous")
    assert (bad.round, bad.expected) == (1, ZERO_HASH)


def test_epsilon_over_budget(chain: Chain, members: list[str]) -> None:
    """Honest reports, but one member's DP parameters spend more than its budget of 8."""
    ledger = Web3Ledger.deploy(chain)
    ledger.register_members(members)
    federation = Federation(ledger, members, sizes=[120, 150, 200])  # member 0: q=0.25 -> eps 8.42 after 3
    for _ in range(3):
        federation.record()
    report = audit_ledger(ledger, default_budget=MemberBudget(8.0, DELTA))
    assert only_failing_checks(report) == {"privacy.budget"}
    (bad,) = failures(report, "privacy.budget")
    assert (bad.round, bad.member, bad.field) == (3, members[0], "epsilon")
    assert bad.expected == 8.0 and bad.actual == pytest.approx(8.4211, abs=1e-4)
    assert "exceeds the budget" in bad.message


def test_under_reported_epsilon_is_caught_and_judged_on_the_recomputation(chain: Chain, members: list[str]) -> None:
    """A member reports a small epsilon for parameters that spend far more: both checks fail."""
    ledger = Web3Ledger.deploy(chain)
    ledger.register_members(members)
    federation = Federation(ledger, members, sizes=[120, 150, 200])
    federation.record()
    greedy = {members[1]: member_dp(150, sigma=0.55)}
    federation.record(dp=greedy, reported={members[1]: 3.0})
    report = audit_ledger(ledger, default_budget=MemberBudget(8.0, DELTA))
    assert only_failing_checks(report) == {"privacy.epsilon", "privacy.budget"}
    (lie,) = failures(report, "privacy.epsilon")
    assert (lie.round, lie.member, lie.field, lie.actual) == (2, members[1], "epsilon", 3.0)
    assert lie.expected > 8.0
    (over,) = failures(report, "privacy.budget")
    assert (over.round, over.member, over.actual) == (2, members[1], lie.expected)


def test_delta_larger_than_the_budget_delta(chain: Chain, members: list[str]) -> None:
    ledger = Web3Ledger.deploy(chain)
    ledger.register_members(members)
    federation = Federation(ledger, members, sizes=[120, 150, 200])
    federation.record()
    report = audit_ledger(ledger, default_budget=MemberBudget(50.0, 1e-6))
    bad = failures(report, "privacy.budget")
    assert {(f.round, f.field) for f in bad} == {(1, "delta")} and len(bad) == 3


def test_unregistered_payee(chain: Chain, members: list[str]) -> None:
    federation = tamper(chain, members, FLAW_NO_REGISTRATION, register=False)
    ledger = federation.ledger
    ledger.register_members(members[:2])
    federation.record()  # members[2] is paid while unregistered
    ledger.register_members(members[2:])
    federation.record()  # now all are registered
    ledger.deregister_members(members[:1])  # leaving later does not taint the past
    report = audit_ledger(ledger)
    assert only_failing_checks(report) == {"members.registered"}
    (bad,) = failures(report, "members.registered")
    assert (bad.round, bad.member, bad.field, bad.expected, bad.actual) == (1, members[2], "registered", True, False)
    assert "not registered" in bad.message


def test_gap_in_round_numbers(chain: Chain, members: list[str]) -> None:
    federation = tamper(chain, members, FLAW_ANY_ROUND)
    federation.record()
    federation.record(server_round=3)
    report = audit_ledger(federation.ledger)
    bad = failures(report, "rounds.contiguous")
    assert {(f.round, f.field) for f in bad} == {(2, "round"), (3, "round")}
    skipped = next(f for f in bad if f.round == 3)
    assert (skipped.expected, skipped.actual) == (2, 3)
    # Round 3's lineage names round 2, which does not exist.
    assert [f.round for f in failures(report, "lineage.previous")] == [3]


def test_round_recorded_by_an_account_without_the_recorder_role(chain: Chain, members: list[str]) -> None:
    federation = tamper(chain, members, FLAW_ANYONE_RECORDS)
    federation.record()
    outsider = chain.test_accounts[5]
    federation.ledger = Web3Ledger(chain.with_account(outsider), federation.ledger.address)
    federation.record()
    report = audit_ledger(federation.ledger)
    assert only_failing_checks(report) == {"rounds.recorder"}
    (bad,) = failures(report, "rounds.recorder")
    assert (bad.round, bad.field, bad.actual) == (2, "recorder", outsider.address)


def test_token_supply_beyond_everything_paid(chain: Chain, members: list[str]) -> None:
    federation = tamper(chain, members, FLAW_EXTRA_MINT)
    federation.record()
    federation.record()
    report = audit_ledger(federation.ledger)
    assert only_failing_checks(report) == {"token.supply"}
    (bad,) = failures(report, "token.supply")
    assert (bad.field, bad.expected, bad.actual) == ("totalSupply", 2 * POOL, 2 * POOL + 2)


def test_model_file_one_byte_different(chain: Chain, members: list[str], tmp_path: Path) -> None:
    weights = {"fc.bias": np.arange(4, dtype=np.float32), "fc.weight": np.ones((4, 3), np.float32)}
    recorded_hash = save_model(tmp_path / "model.safetensors", weights)
    ledger = Web3Ledger.deploy(chain)
    ledger.register_members(members)
    federation = Federation(ledger, members, sizes=[120, 150, 200])
    federation.record(model_hash=recorded_hash)
    federation.record()
    good = audit_ledger(ledger, model_file=tmp_path / "model.safetensors", model_round=1)
    assert [f.status for f in good.findings if f.check == "model.file"] == ["pass"]
    data = bytearray((tmp_path / "model.safetensors").read_bytes())
    data[-1] ^= 0x01  # one bit of the last float
    (tmp_path / "tampered.safetensors").write_bytes(bytes(data))
    report = audit_ledger(ledger, model_file=tmp_path / "tampered.safetensors", model_round=1)
    (bad,) = failures(report, "model.file")
    assert (bad.round, bad.field, bad.expected) == (1, "model_hash", recorded_hash)
    assert bad.actual != recorded_hash
    # The right file named for the wrong round fails too.
    wrong_round = audit_ledger(ledger, model_file=tmp_path / "model.safetensors", model_round=2)
    assert [f.round for f in failures(wrong_round, "model.file")] == [2]


def test_tampered_export_snapshot(clean: Federation, tmp_path: Path) -> None:
    path = export_ledger(clean.ledger, tmp_path / "chain.json")
    document = json.loads(path.read_text())
    document["snapshot"]["totalSupply"] += 1
    path.write_text(json.dumps(document))
    report = audit_run(tmp_path, default_budget=(10.0, DELTA))
    assert only_failing_checks(report) == {"export.snapshot"}


def test_member_that_drops_dp_in_a_later_round(chain: Chain, members: list[str]) -> None:
    ledger = Web3Ledger.deploy(chain)
    ledger.register_members(members)
    federation = Federation(ledger, members, sizes=[120, 150, 200])
    federation.record()
    plain = MemberRoundRecord(members[0], 1.0)  # trained without DP, recorded anyway
    ledger.record_round(RoundRecord(2, h("agg-2"), h("model-2"), federation.model_hash, (plain,), POOL))
    report = audit_ledger(ledger, default_budget=(10.0, DELTA))
    assert only_failing_checks(report) == {"privacy.record"}
    (bad,) = failures(report, "privacy.record")
    assert (bad.round, bad.member, bad.field) == (2, members[0], "dp")


def test_a_completed_round_must_record_a_model_hash(chain: Chain, members: list[str]) -> None:
    """Accepted updates make a model: a zero model hash is a failure (a skipped start keeps none: see
    tests/test_he_federation.py::test_round_with_too_few_members_is_skipped_and_recorded_as_skipped)."""
    ledger = Web3Ledger.deploy(chain)
    ledger.register_members(members)
    federation = Federation(ledger, members, sizes=[120, 150, 200])
    federation.record(model_hash=ZERO_HASH)
    (bad,) = failures(audit_ledger(ledger), "lineage.model")
    assert (bad.round, bad.field, bad.actual) == (1, "model_hash", ZERO_HASH)
