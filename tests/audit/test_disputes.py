"""Statuses, late spends and disputes as the auditor sees them (attacks written from the attacker's side).

* A member's privacy spent in a round it earned nothing from (late, replayed, rejected) is on chain
  and in the auditor's epsilon recomputation: leaving it out makes the member's report disagree.
* A coordinator that pays a member-round that was not accepted (TamperLedger) fails ``rewards.status``.
* Every dispute fails its round (``rounds.disputes``, naming round, member and field); a round disputed
  before recording pays nobody, and a ledger that pays it anyway (TamperLedger) is caught.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from fedchain.audit import AuditFinding, AuditReport, audit_ledger, audit_run
from fedchain.identity.signing import dispute_digest, sign_digest
from fedchain.ledger import Chain, Web3Ledger, export_ledger
from fedchain.privacy import epsilon_curve
from fedchain.types import Dispute, MemberRoundRecord, RoundRecord

from .helpers import (
    DELTA,
    FLAW_PAY_ANY_STATUS,
    FLAW_PAY_DISPUTED,
    Federation,
    addresses,
    deploy_tamper_ledger,
    h,
)

COMMITMENT = h("scalars shown to the member")


def member_keys(n: int = 3, *, seed: str = "audit") -> dict[str, bytes]:
    """The keys behind :func:`helpers.addresses` (same derivation): address -> key."""
    keys = [hashlib.sha256(f"{seed}-{i}".encode()).digest() for i in range(n)]
    return {Account.from_key(k).address: k for k in keys}


def failures(report: AuditReport, check: str) -> list[AuditFinding]:
    return [f for f in report.failures if f.check == check]


def fresh_federation(chain: Chain, members: list[str], *, flaws: int | None = None) -> Federation:
    ledger = (
        Web3Ledger.deploy(chain, treasury=chain.test_accounts[2].address)
        if flaws is None
        else deploy_tamper_ledger(chain, flaws)
    )
    ledger.register_members(members)
    return Federation(ledger, members, sizes=[120, 150, 200])


def dispute(ledger: Web3Ledger, member: str, server_round: int) -> Dispute:
    key = member_keys()[member]
    digest = dispute_digest(
        chain_id=ledger.chain_id,
        ledger_address=ledger.address,
        server_round=server_round,
        scalars_commitment=COMMITMENT,
    )
    return Dispute(server_round, member, COMMITMENT, sign_digest(key, digest))


def late_round(federation: Federation, late: str, *, record_spend: bool) -> None:
    """Round 2: ``late`` trains (its accountant charges it) but replies after the deadline; round 3: it is back."""
    federation.record()
    others = [m for m in federation.members if m != late]
    federation.record(members=others)
    federation.history[late].append(federation.dp[late])  # the member's accountant charged round 2
    if record_spend:
        epsilon = epsilon_curve(federation.history[late], delta=DELTA)[-1]
        spend = MemberRoundRecord(late, 0.0, dp=federation.dp[late], epsilon=epsilon, status="late")
        federation.ledger.record_spends(2, [spend])
    federation.record()  # round 3: the member reports its true cumulative epsilon (3 spends)


def test_a_late_spend_is_in_the_recomputation(chain: Chain, members: list[str]) -> None:
    federation = fresh_federation(chain, members)
    late = members[1]
    late_round(federation, late, record_spend=True)
    report = audit_ledger(federation.ledger, default_budget=(50.0, DELTA))
    assert report.ok, [str(f) for f in report.failures]
    rows = [r for r in report.members if r.address == late]
    assert [(r.server_round, r.source, r.member_status) for r in rows] == [
        (1, "round", "accepted"),
        (2, "spend", "late"),
        (3, "round", "accepted"),
    ]
    expected = epsilon_curve([federation.dp[late]] * 3, delta=DELTA)[-1]
    assert rows[-1].epsilon_recomputed == pytest.approx(expected, abs=1e-6)
    assert rows[1].epsilon_recomputed == pytest.approx(
        epsilon_curve([federation.dp[late]] * 2, delta=DELTA)[-1], abs=1e-6
    )


def test_a_spend_missing_from_the_chain_makes_the_member_disagree(chain: Chain, members: list[str]) -> None:
    """Today's failure mode (issue 14, point 7): the member spent privacy the chain does not show."""
    federation = fresh_federation(chain, members)
    late = members[1]
    late_round(federation, late, record_spend=False)
    report = audit_ledger(federation.ledger, default_budget=(50.0, DELTA))
    bad = failures(report, "privacy.epsilon")
    assert [(f.round, f.member, f.field) for f in bad] == [(3, late, "epsilon")]


def test_spend_ordering_replayed_before_the_round(chain: Chain, members: list[str]) -> None:
    """A round lost to a crash and replayed: the lost run's spend precedes the round's own entry."""
    federation = fresh_federation(chain, members)
    federation.record()
    member = members[0]
    federation.history[member].append(federation.dp[member])  # the lost run of round 2 charged it
    federation.record()  # round 2 replayed: its reported epsilon includes the lost run
    lost = epsilon_curve(federation.history[member][:2], delta=DELTA)[-1]
    replayed = MemberRoundRecord(member, 0.0, dp=federation.dp[member], epsilon=lost, status="replayed")
    federation.ledger.record_spends(2, [replayed])
    report = audit_ledger(federation.ledger, default_budget=(50.0, DELTA))
    assert report.ok, [str(f) for f in report.failures]


def test_paying_a_member_round_that_was_not_accepted(chain: Chain, members: list[str]) -> None:
    federation = fresh_federation(chain, members, flaws=FLAW_PAY_ANY_STATUS)
    federation.record()
    ledger = federation.ledger
    record = RoundRecord(
        server_round=2,
        aggregate_hash=h("aggregate-2"),
        model_hash=h("model-2"),
        previous_model_hash=federation.model_hash,
        members=tuple(MemberRoundRecord(m, 1.0, federation.dp[m], 1.0) for m in members),
        reward_pool_wei=10**18,
    )
    args: list[Any] = list(Web3Ledger.encode_round(record))
    rejected = args[1][2]
    args[5] = [0, 0, 1]  # the third member's update was rejected, yet it keeps its score
    tx = ledger.ledger_contract.functions.recordRound(*args).transact({"from": chain.address})
    assert chain.w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    report = audit_ledger(ledger)
    bad = failures(report, "rewards.status")
    assert {(f.round, f.member, f.field) for f in bad} == {(2, rejected, "score"), (2, rejected, "reward_wei")}
    (row,) = [r for r in report.rounds if r.server_round == 2]
    assert row.member_statuses == "accepted=2 rejected=1"


def test_a_dispute_before_recording_fails_the_round_and_withholds(chain: Chain, members: list[str]) -> None:
    federation = fresh_federation(chain, members)
    federation.record()
    ledger = federation.ledger
    ledger.file_dispute(dispute(ledger, members[2], 2))
    federation.record()
    federation.record()
    report = audit_ledger(ledger, default_budget=(50.0, DELTA))
    bad = failures(report, "rounds.disputes")
    assert [(f.round, f.member, f.field, f.actual) for f in bad] == [(2, members[2], "scalars_commitment", COMMITMENT)]
    assert "rewards withheld" in bad[0].message
    assert str(bad[0]).startswith(f"FAIL rounds.disputes round 2 member {members[2]} field scalars_commitment")
    assert {f.check for f in report.failures} == {"rounds.disputes"}  # the rest holds: nobody was paid
    withheld = [f for f in report.findings if f.check == "rewards.withheld"]
    assert [(f.round, f.ok) for f in withheld] == [(2, True)]
    (row,) = [r for r in report.rounds if r.server_round == 2]
    assert (row.disputes, row.withheld, row.paid_wei, row.treasury_wei) == (1, True, 0, row.reward_pool_wei)
    assert row.to_dict()["withheld"] is True


def test_a_dispute_after_recording_fails_the_round(chain: Chain, members: list[str], tmp_path: Path) -> None:
    federation = fresh_federation(chain, members)
    federation.record()
    ledger = federation.ledger
    ledger.file_dispute(dispute(ledger, members[0], 1))
    report = audit_ledger(ledger, default_budget=(50.0, DELTA))
    (bad,) = failures(report, "rounds.disputes")
    assert (bad.round, bad.member, bad.field) == (1, members[0], "scalars_commitment")
    assert "could not be withheld" in bad.message
    # the same verdict from the export, which carries the disputes; a tampered dispute count is caught
    path = export_ledger(ledger, tmp_path / "chain.json")
    assert [str(f) for f in audit_run(tmp_path, default_budget=(50.0, DELTA)).failures] == [str(bad)]
    document = json.loads(path.read_text())
    assert document["snapshot"]["disputeCounts"] == {"1": 1}
    document["snapshot"]["disputeCounts"] = {"1": 0}
    path.write_text(json.dumps(document))
    tampered = audit_run(tmp_path, default_budget=(50.0, DELTA))
    assert [(f.round, f.field) for f in failures(tampered, "export.snapshot")] == [(1, "disputeCount")]


def test_a_ledger_that_pays_a_disputed_round_is_caught(chain: Chain, members: list[str]) -> None:
    federation = fresh_federation(chain, members, flaws=FLAW_PAY_DISPUTED)
    federation.record()
    ledger = federation.ledger
    ledger.file_dispute(dispute(ledger, members[1], 2))
    federation.record()
    report = audit_ledger(ledger, default_budget=(50.0, DELTA))
    assert {(f.round, f.member) for f in failures(report, "rewards.rule")} == {(2, m) for m in members}
    assert all(f.expected == 0 for f in failures(report, "rewards.rule"))
    (withheld,) = failures(report, "rewards.withheld")
    assert (withheld.round, withheld.field, withheld.expected, withheld.actual) == (2, "disputes", 1, 0)
    assert [(f.round, f.member) for f in failures(report, "rounds.disputes")] == [(2, members[1])]


def test_no_disputes_is_one_pass(clean: Federation) -> None:
    report = audit_ledger(clean.ledger, default_budget=(50.0, DELTA))
    assert [(f.check, f.ok) for f in report.findings if f.check == "rounds.disputes"] == [("rounds.disputes", True)]
    assert all(r.member_statuses == "accepted=3" and not r.withheld for r in report.rounds)
    assert addresses(3) == clean.members and dataclasses.asdict(report.rounds[0])["disputes"] == 0


def test_an_export_from_before_statuses_and_disputes_still_audits() -> None:
    """tests/audit/data/legacy_chain.json: two rounds on the ContributionLedger of commit cd7c265, exported."""
    from fedchain.ledger import ExportedLedger

    legacy = ExportedLedger.load(Path(__file__).parent / "data" / "legacy_chain.json")
    report = audit_ledger(legacy, default_budget=(50.0, DELTA))
    assert report.ok, [str(f) for f in report.failures]
    assert [r.member_statuses for r in report.rounds] == ["accepted=2", "accepted=2"]
    assert legacy.spends() == [] and legacy.disputes() == []
    assert all(r.scalars_commitment == "0x" + "00" * 32 and not r.withheld for r in legacy.rounds())
