"""What an audit returns: one :class:`AuditFinding` per check made, gathered in an :class:`AuditReport`.

A finding is a verdict of one check on one subject (a round, a member-round, the token): it passed,
it failed (``severity="error"``: the federation broke a rule) or it is a warning
(``severity="warning"``: something could not be verified, e.g. no signed updates were committed).
Warnings are never counted as passes; they fail the audit only in strict mode.

Example:
    >>> finding = AuditFinding("lineage.previous", False, round=2, field="previous_model_hash",
    ...     expected="0xaa", actual="0xbb", message="not round 1's model hash")
    >>> finding.status
    'fail'
    >>> print(finding)
    FAIL lineage.previous round 2 field previous_model_hash: expected '0xaa', got '0xbb': not round 1's model hash
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fedchain.types import DPParams

__all__ = [
    "CHECKS",
    "AuditFinding",
    "AuditReport",
    "MemberRoundAudit",
    "RoundAudit",
    "Severity",
]

Severity = Literal["error", "warning"]

#: Every check the auditor makes, by name, with what it verifies (the spec of each verdict).
CHECKS: Mapping[str, str] = {
    "rounds.contiguous": "recorded round numbers are 1, 2, ..., last, each recorded once, in order",
    "rounds.recorder": "each round was recorded by an account holding RECORDER_ROLE at that block",
    "rounds.members": "each round's member count matches its events and no member appears twice",
    "rounds.disputes": (
        "no member disputed the scalars the decrypt committee revealed about it (every dispute on chain fails "
        "its round)"
    ),
    "members.registered": "every recorded (paid) member was registered when the round was recorded",
    "rewards.rule": "each reward equals pool * score // total_score (the published rule) to the wei",
    "rewards.total_score": "the stored total score equals the sum of the recorded scores",
    "rewards.pool": "rewards plus the treasury remainder equal the round's pool",
    "rewards.status": "only accepted member-rounds score or earn (rejected, late, skipped, replayed ones earn 0)",
    "rewards.withheld": (
        "a round disputed before it was recorded paid nobody, and its RoundRecorded event counts those disputes"
    ),
    "token.supply": "FedToken total supply equals the sum of every recorded pool (everything ever paid)",
    "export.snapshot": "the state snapshot in chain.json agrees with the exported logs",
    "lineage.previous": "each round's previous-model hash is the prior round's model hash (zero for round 1)",
    "lineage.model": "each round records a non-zero model hash",
    "privacy.record": "DP parameters and epsilon are recorded together, with one delta per member",
    "privacy.epsilon": (
        "cumulative epsilon recomputed from every recorded spend (all member-round statuses, and spends recorded "
        "after their round) matches the reported one"
    ),
    "privacy.budget": (
        "each member's recomputed cumulative epsilon never exceeds its budget (the on-chain one when set; "
        "a budget given off chain must agree with it)"
    ),
    "updates.merkle_root": "the signed-update Merkle root is committed (non-zero)",
    "updates.inclusion": "a member's update digest and proof verify against the round's Merkle root",
    "model.file": "a model file's canonical safetensors hash equals the model hash recorded for its round",
}


def _jsonable(value: Any) -> Any:
    """Ints (wei, blocks, rounds) as decimal strings so JSON never loses precision; floats stay numbers."""
    if isinstance(value, bool) or value is None or isinstance(value, float | str):
        return value
    if isinstance(value, int):
        return str(value)
    return str(value)


@dataclass(frozen=True)
class AuditFinding:
    """The verdict of one check on one subject.

    Attributes:
        check: the check's name, a key of :data:`CHECKS`.
        ok: whether the check holds.
        round: the round concerned (None for run-wide checks).
        member: the member address concerned (None for round-wide checks).
        field: the recorded field that was checked, e.g. ``"reward_wei"``.
        expected: the value the rule demands.
        actual: the value found on chain.
        message: one line for a person.
        severity: ``"error"`` (a broken rule when not ok) or ``"warning"`` (could not verify).
    """

    check: str
    ok: bool
    round: int | None = None
    member: str | None = None
    field: str | None = None
    expected: Any = None
    actual: Any = None
    message: str = ""
    severity: Severity = "error"

    @property
    def status(self) -> Literal["pass", "fail", "warn"]:
        """``"pass"``, ``"fail"`` (an error) or ``"warn"`` (a warning that did not pass)."""
        if self.ok:
            return "pass"
        return "warn" if self.severity == "warning" else "fail"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; ints in ``expected``/``actual`` are decimal strings (wei stays exact)."""
        return {
            "check": self.check,
            "status": self.status,
            "ok": self.ok,
            "severity": self.severity,
            "round": self.round,
            "member": self.member,
            "field": self.field,
            "expected": _jsonable(self.expected),
            "actual": _jsonable(self.actual),
            "message": self.message,
        }

    def __str__(self) -> str:
        parts = [self.status.upper(), self.check]
        if self.round is not None:
            parts.append(f"round {self.round}")
        if self.member is not None:
            parts.append(f"member {self.member}")
        if self.field is not None:
            parts.append(f"field {self.field}")
        text = " ".join(parts)
        if not self.ok and (self.expected is not None or self.actual is not None):
            text += f": expected {self.expected!r}, got {self.actual!r}"
        return f"{text}: {self.message}" if self.message else text


@dataclass(frozen=True)
class MemberRoundAudit:
    """One member's entry in one round, with what the auditor recomputed (a row of the CSV export).

    Attributes:
        server_round: the round.
        address: the member.
        score: the recorded score.
        reward_wei: the reward the chain credited.
        expected_reward_wei: the reward the published rule gives.
        registered: whether the member was registered when the round was recorded.
        dp: the recorded DP parameters (None without DP).
        epsilon_recorded: the cumulative epsilon the member reported (None without DP).
        epsilon_recomputed: the auditor's recomputation (None without DP or when it failed).
        epsilon_budget: the member's budget (None when unknown).
        block_number: block of the recording transaction.
        member_status: the member-round's recorded status (``"accepted"``, ``"rejected"``, ``"late"``,
            ``"skipped"``, ``"replayed"``).
        source: ``"round"`` (an entry of the round's record) or ``"spend"`` (recorded after the
            round with ``recordSpends``; never paid).
    """

    server_round: int
    address: str
    score: float
    reward_wei: int
    expected_reward_wei: int | None
    registered: bool | None
    dp: DPParams | None
    epsilon_recorded: float | None
    epsilon_recomputed: float | None
    epsilon_budget: float | None
    block_number: int
    member_status: str = "accepted"
    source: str = "round"

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON/CSV-ready dict (wei as decimal strings)."""
        dp = self.dp
        return {
            "round": self.server_round,
            "member": self.address,
            "score": self.score,
            "reward_wei": str(self.reward_wei),
            "expected_reward_wei": None if self.expected_reward_wei is None else str(self.expected_reward_wei),
            "registered": self.registered,
            "epsilon_recorded": self.epsilon_recorded,
            "epsilon_recomputed": self.epsilon_recomputed,
            "epsilon_budget": self.epsilon_budget,
            "noise_multiplier": None if dp is None else dp.noise_multiplier,
            "sample_rate": None if dp is None else dp.sample_rate,
            "steps": None if dp is None else dp.steps,
            "max_grad_norm": None if dp is None else dp.max_grad_norm,
            "delta": None if dp is None else dp.delta,
            "block_number": self.block_number,
            "member_status": self.member_status,
            "source": self.source,
        }


@dataclass(frozen=True)
class RoundAudit:
    """One recorded round as the auditor read it (a row of the per-round table).

    Attributes:
        server_round: the round.
        block_number: block of the recording transaction.
        tx_hash: the recording transaction.
        recorder: the account that recorded it.
        member_count: members recorded.
        reward_pool_wei: the pool.
        paid_wei: sum of the members' rewards.
        treasury_wei: the remainder paid to the treasury.
        model_hash: the round's model hash.
        previous_model_hash: the previous model hash it names.
        update_merkle_root: the signed-update Merkle root.
        scalars_commitment: the committed decrypt-committee scalars (zero hash when none).
        member_statuses: count of member-rounds per status, e.g. ``"accepted=3 rejected=1"``.
        disputes: disputes filed against the round (before or after it was recorded).
        withheld: whether the round was disputed before it was recorded (its rewards withheld).
    """

    server_round: int
    block_number: int
    tx_hash: str
    recorder: str
    member_count: int
    reward_pool_wei: int
    paid_wei: int
    treasury_wei: int
    model_hash: str
    previous_model_hash: str
    update_merkle_root: str
    scalars_commitment: str = "0x" + "00" * 32
    member_statuses: str = ""
    disputes: int = 0
    withheld: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON/CSV-ready dict (wei as decimal strings)."""
        return {
            "round": self.server_round,
            "block_number": self.block_number,
            "tx_hash": self.tx_hash,
            "recorder": self.recorder,
            "member_count": self.member_count,
            "reward_pool_wei": str(self.reward_pool_wei),
            "paid_wei": str(self.paid_wei),
            "treasury_wei": str(self.treasury_wei),
            "model_hash": self.model_hash,
            "previous_model_hash": self.previous_model_hash,
            "update_merkle_root": self.update_merkle_root,
            "scalars_commitment": self.scalars_commitment,
            "member_statuses": self.member_statuses,
            "disputes": self.disputes,
            "withheld": self.withheld,
        }


@dataclass(frozen=True)
class AuditReport:
    """Every finding of one audit, and the per-round and per-member data the checks ran on.

    Attributes:
        findings: one verdict per check made, in check order.
        target: what was audited (``"run DIR"`` or the JSON-RPC URL).
        ledger_address: the ``ContributionLedger`` audited.
        chain_id: the chain's id, when known.
        accountant: the privacy accountant used to recompute epsilon.
        budget_source: where the privacy budgets came from: ``"chain"``, ``"chain + OPTION"`` (on-chain
            budgets, cross-checked with off-chain ones), an option or a run's config, or ``"none"``.
        strict: whether warnings fail the audit.
        rounds: the recorded rounds that could be read.
        members: every member-round, with the recomputed values.

    Example:
        >>> report = AuditReport(findings=(AuditFinding("token.supply", True),), target="demo")
        >>> report.ok, report.summary()["token.supply"]
        (True, {'pass': 1, 'fail': 0, 'warn': 0})
    """

    findings: tuple[AuditFinding, ...]
    target: str = ""
    ledger_address: str = ""
    chain_id: int | None = None
    accountant: str = "rdp"
    budget_source: str = "none"
    strict: bool = False
    rounds: tuple[RoundAudit, ...] = ()
    members: tuple[MemberRoundAudit, ...] = field(default=())

    @property
    def failures(self) -> list[AuditFinding]:
        """Findings with status ``"fail"``."""
        return [f for f in self.findings if f.status == "fail"]

    @property
    def warnings(self) -> list[AuditFinding]:
        """Findings with status ``"warn"``."""
        return [f for f in self.findings if f.status == "warn"]

    @property
    def ok(self) -> bool:
        """True when no check failed (and, in strict mode, none warned)."""
        return not self.failures and not (self.strict and self.warnings)

    def summary(self) -> dict[str, dict[str, int]]:
        """Counts of pass / fail / warn per check, in :data:`CHECKS` order."""
        counts: dict[str, Counter[str]] = {}
        for finding in self.findings:
            counts.setdefault(finding.check, Counter())[finding.status] += 1
        order = [name for name in CHECKS if name in counts] + sorted(set(counts) - set(CHECKS))
        return {name: {s: counts[name][s] for s in ("pass", "fail", "warn")} for name in order}

    def verdict(self) -> dict[str, Any]:
        """The short verdict a run stores in ``result.json["audit"]``: ok, counts and failures."""
        return {
            "ok": self.ok,
            "checks": len(self.findings),
            "passed": sum(1 for f in self.findings if f.ok),
            "failed": len(self.failures),
            "warnings": len(self.warnings),
            "budget_source": self.budget_source,
            "failures": [f.to_dict() for f in self.failures],
            "warning_checks": sorted({f.check for f in self.warnings}),
        }

    def to_dict(self) -> dict[str, Any]:
        """The whole report, JSON-ready (what ``fedchain audit --json`` prints)."""
        return {
            "ok": self.ok,
            "target": self.target,
            "ledger_address": self.ledger_address,
            "chain_id": self.chain_id,
            "accountant": self.accountant,
            "budget_source": self.budget_source,
            "strict": self.strict,
            "summary": self.summary(),
            "findings": [f.to_dict() for f in self.findings],
            "rounds": [r.to_dict() for r in self.rounds],
            "members": [m.to_dict() for m in self.members],
        }
