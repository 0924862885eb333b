"""The auditor's checks: pure functions of a :class:`~fedchain.audit.source.LedgerSnapshot`.

Each ``check_*`` function verifies one rule of :data:`~fedchain.audit.findings.CHECKS` and returns
one :class:`~fedchain.audit.findings.AuditFinding` per subject checked (a round, a member-round or
the whole ledger), passes included, so a report shows what was verified and not only what broke.
Nothing here reads the chain or a file: the reading is in :mod:`fedchain.audit.source`.

The rules are the ones the contract publishes and the privacy accountant defines:

* rewards: :func:`fedchain.rewards.proportional_rewards` (the contract's integer rule, to the wei);
  only ``"accepted"`` member-rounds may score or earn; a round disputed before it was recorded pays
  nobody;
* disputes: every member's dispute of a round's revealed scalars fails that round (a dispute filed
  after the round was recorded cannot claw back what was credited: the finding says how much);
* privacy: :func:`fedchain.privacy.epsilon.epsilon_curve` (Opacus's RDP or PRV accountant) over each member's
  recorded DP parameters in round order (every member-round whatever its status, plus the spends
  recorded after their round), compared with the reported cumulative epsilon within
  :data:`EPSILON_TOLERANCE`, and against the member's budget with no tolerance. The budget is the
  one set on chain (``setPrivacyBudgets``) when there is one; a budget given off chain (options,
  a run's config) is the fallback for members without one, and must agree with the chain's.

Example:
    >>> from fedchain.ledger import Web3Ledger, connect
    >>> from fedchain.audit.source import read_snapshot
    >>> snapshot = read_snapshot(Web3Ledger.deploy(connect("embedded")))
    >>> [f.status for f in check_token_supply(snapshot)]
    ['pass']
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fedchain.audit.findings import AuditFinding, MemberRoundAudit, RoundAudit
from fedchain.audit.source import LedgerSnapshot, RoleChange
from fedchain.errors import ConfigError, PrivacyError
from fedchain.identity.merkle import update_leaf, verify_proof
from fedchain.ledger import RecordedDispute, RecordedRound, RegistrationEvent
from fedchain.privacy.epsilon import ACCOUNTANT_NAMES, epsilon_curve
from fedchain.rewards import proportional_rewards
from fedchain.types import MEMBER_STATUSES, ZERO_HASH, DPParams

__all__ = [
    "EPSILON_TOLERANCE",
    "MemberBudget",
    "PrivacyEntry",
    "check_disputes",
    "check_export_snapshot",
    "check_inclusion",
    "check_lineage",
    "check_member_statuses",
    "check_model_bytes",
    "check_privacy_budget",
    "check_privacy_epsilon",
    "check_privacy_records",
    "check_recorders",
    "check_registration",
    "check_rewards",
    "check_round_members",
    "check_round_sequence",
    "check_token_supply",
    "check_update_roots",
    "check_withheld",
    "member_rows",
    "privacy_history",
    "round_rows",
]

#: Largest accepted |recomputed - reported| cumulative epsilon (absolute).
EPSILON_TOLERANCE = 1e-6


@dataclass(frozen=True)
class MemberBudget:
    """A member's privacy budget as the auditor knows it.

    Read from the chain (``ContributionLedger.privacyBudget``) where the admin set one, else given
    off chain (options, a run's config).

    Attributes:
        epsilon: the most cumulative epsilon the member may spend, in (0, inf).
        delta: the delta the member promised; None when unknown (the recorded delta is used and
            not checked).

    Example:
        >>> MemberBudget(8.0, 1e-5).epsilon
        8.0
        >>> MemberBudget(0.0)
        Traceback (most recent call last):
        ...
        fedchain.errors.ConfigError: The 'epsilon_budget' parameter must be a float in (0, inf). Got 0.0.
    """

    epsilon: float
    delta: float | None = None

    def __post_init__(self) -> None:
        eps = self.epsilon
        if isinstance(eps, bool) or not isinstance(eps, int | float) or not (0 < eps < math.inf):
            raise ConfigError("epsilon_budget", "a float in (0, inf)", eps)
        object.__setattr__(self, "epsilon", float(eps))
        delta = self.delta
        if delta is not None:
            if isinstance(delta, bool) or not isinstance(delta, int | float) or not 0 < delta < 1:
                raise ConfigError("delta_budget", "a float in (0, 1)", delta)
            object.__setattr__(self, "delta", float(delta))


@dataclass(frozen=True)
class PrivacyEntry:
    """One member-round of a member's privacy history, with the auditor's recomputation.

    Attributes:
        server_round: the round.
        dp: the recorded DP parameters (None without DP).
        epsilon_recorded: the reported cumulative epsilon (None without DP).
        epsilon_recomputed: cumulative epsilon recomputed up to this round (None when not computable).
        error: why it could not be recomputed, if so.
        status: the member-round's recorded status (``"accepted"``, ``"rejected"``, ``"late"``, ...).
        source: ``"round"`` (an entry of the round's record) or ``"spend"`` (``recordSpends``).
    """

    server_round: int
    dp: DPParams | None
    epsilon_recorded: float | None
    epsilon_recomputed: float | None
    error: str = ""
    status: str = "accepted"
    source: str = "round"


def _finding(check: str, ok: bool, **kwargs: object) -> AuditFinding:
    return AuditFinding(check, ok, **kwargs)  # type: ignore[arg-type]


# ---- rounds ------------------------------------------------------------------------------------


def check_round_sequence(snapshot: LedgerSnapshot) -> list[AuditFinding]:
    """Round numbers are 1..last, each recorded once, in increasing chain order.

    Uses the ``RoundRecorded`` logs (when the reader exposes them) and the stored headers: a round
    in ``1..lastRound`` whose header or events cannot be read is a gap.
    """
    findings: list[AuditFinding] = []
    check = "rounds.contiguous"
    for server_round, reason in sorted(snapshot.unreadable_rounds.items()):
        findings.append(
            _finding(
                check,
                False,
                round=server_round,
                field="round",
                expected=server_round,
                actual=None,
                message=f"round {server_round} is within 1..lastRound={snapshot.last_round} but not recorded: {reason}",
            )
        )
    if snapshot.round_events is not None:
        numbers = [r for r, _, _ in snapshot.round_events]
        counts = Counter(numbers)
        for server_round, count in sorted(counts.items()):
            if count > 1:
                findings.append(
                    _finding(
                        check,
                        False,
                        round=server_round,
                        field="round",
                        expected=1,
                        actual=count,
                        message=f"round {server_round} has {count} RoundRecorded events",
                    )
                )
        previous = 0
        for server_round in numbers:
            if server_round != previous + 1 and counts[server_round] == 1:
                findings.append(
                    _finding(
                        check,
                        False,
                        round=server_round,
                        field="round",
                        expected=previous + 1,
                        actual=server_round,
                        message=f"round {server_round} was recorded right after round {previous}",
                    )
                )
            previous = max(previous, server_round)
        if numbers and max(numbers) != snapshot.last_round:
            findings.append(
                _finding(
                    check,
                    False,
                    field="lastRound",
                    expected=max(numbers),
                    actual=snapshot.last_round,
                    message="the ledger's lastRound is not the last recorded round",
                )
            )
    if not findings:
        findings.append(
            _finding(
                check,
                True,
                field="round",
                expected=snapshot.last_round,
                actual=snapshot.last_round,
                message=f"rounds 1..{snapshot.last_round} recorded once each, in order"
                if snapshot.last_round
                else "no rounds recorded yet",
            )
        )
    return findings


def _state_at(changes: Sequence[Any], account: str, block: int, log_index: int | None, *, who: str, flag: str) -> bool:
    """The flag (role held, registered) of ``account`` just before (block, log_index), from ordered events."""
    state = False
    wanted = account.lower()
    for change in changes:
        before = change.block_number < block or (
            change.block_number == block and (log_index is None or change.log_index < log_index)
        )
        if not before:
            break
        if getattr(change, who).lower() == wanted:
            state = bool(getattr(change, flag))
    return state


def _role_state(roles: Sequence[RoleChange], account: str, block: int, log_index: int | None) -> bool:
    return _state_at(roles, account, block, log_index, who="account", flag="granted")


def check_recorders(snapshot: LedgerSnapshot) -> list[AuditFinding]:
    """Each round's recorder held ``RECORDER_ROLE`` when it recorded (and sent the transaction)."""
    check = "rounds.recorder"
    findings: list[AuditFinding] = []
    for recorded in snapshot.rounds:
        n = recorded.server_round
        if snapshot.recorder_roles is None:
            findings.append(
                _finding(
                    check,
                    False,
                    round=n,
                    field="recorder",
                    severity="warning",
                    message="role history not available from this reader: recorder not verified",
                )
            )
            continue
        holds = _role_state(
            snapshot.recorder_roles, recorded.recorder, recorded.block_number, snapshot.round_log_index.get(n)
        )
        sender = snapshot.tx_senders.get(recorded.tx_hash)
        if not holds:
            findings.append(
                _finding(
                    check,
                    False,
                    round=n,
                    field="recorder",
                    expected="an account holding RECORDER_ROLE",
                    actual=recorded.recorder,
                    message=f"round {n} was recorded by {recorded.recorder}, which did not hold RECORDER_ROLE",
                )
            )
        elif sender is not None and sender.lower() != recorded.recorder.lower():
            findings.append(
                _finding(
                    check,
                    False,
                    round=n,
                    field="recorder",
                    expected=sender,
                    actual=recorded.recorder,
                    message=f"the stored recorder is not the sender of tx {recorded.tx_hash}",
                )
            )
        else:
            findings.append(
                _finding(check, True, round=n, field="recorder", expected="RECORDER_ROLE", actual=recorded.recorder)
            )
    return findings


def check_round_members(snapshot: LedgerSnapshot) -> list[AuditFinding]:
    """Each round's stored member count matches its ``MemberRecorded`` events; no member twice."""
    check = "rounds.members"
    findings: list[AuditFinding] = []
    for recorded in snapshot.rounds:
        n = recorded.server_round
        ok = True
        if recorded.member_count != len(recorded.members):
            ok = False
            findings.append(
                _finding(
                    check,
                    False,
                    round=n,
                    field="memberCount",
                    expected=len(recorded.members),
                    actual=recorded.member_count,
                    message="stored member count differs from the MemberRecorded events",
                )
            )
        for address, count in Counter(m.address.lower() for m in recorded.members).items():
            if count > 1:
                ok = False
                member = next(m.address for m in recorded.members if m.address.lower() == address)
                findings.append(
                    _finding(
                        check,
                        False,
                        round=n,
                        member=member,
                        field="member",
                        expected=1,
                        actual=count,
                        message=f"member recorded {count} times in one round",
                    )
                )
        if ok:
            findings.append(
                _finding(
                    check,
                    True,
                    round=n,
                    field="memberCount",
                    expected=len(recorded.members),
                    actual=len(recorded.members),
                )
            )
    return findings


def _registered(events: Sequence[RegistrationEvent], address: str, block: int, log_index: int | None) -> bool:
    return _state_at(events, address, block, log_index, who="address", flag="registered")


def check_registration(snapshot: LedgerSnapshot) -> list[AuditFinding]:
    """Every recorded member was registered when its round was recorded (before the transaction)."""
    check = "members.registered"
    events = sorted(snapshot.registrations, key=lambda e: (e.block_number, e.log_index))
    findings: list[AuditFinding] = []
    for recorded in snapshot.rounds:
        position = snapshot.round_log_index.get(recorded.server_round)
        for member in recorded.members:
            ok = _registered(events, member.address, recorded.block_number, position)
            findings.append(
                _finding(
                    check,
                    ok,
                    round=recorded.server_round,
                    member=member.address,
                    field="registered",
                    expected=True,
                    actual=ok,
                    message=""
                    if ok
                    else f"paid {member.reward_wei} wei while not registered at block {recorded.block_number}",
                )
            )
    return findings


# ---- money -------------------------------------------------------------------------------------


def _disputes_before(snapshot: LedgerSnapshot, recorded: RecordedRound) -> list[RecordedDispute]:
    """The disputes of a round filed before it was recorded, by their position in the chain."""
    position = snapshot.round_log_index.get(recorded.server_round)
    before = []
    for dispute in snapshot.disputes:
        if dispute.server_round != recorded.server_round:
            continue
        if position is None:  # no raw logs: the event's own flag says
            earlier = not dispute.round_recorded
        else:
            earlier = (dispute.block_number, dispute.log_index) < (recorded.block_number, position)
        if earlier:
            before.append(dispute)
    return before


def _withheld(snapshot: LedgerSnapshot, recorded: RecordedRound) -> bool:
    """Whether the round's rewards are due to nobody: disputed before it was recorded."""
    return recorded.disputes_at_record != 0 or bool(_disputes_before(snapshot, recorded))


def _expected_rewards(recorded: RecordedRound, *, withheld: bool = False) -> list[int] | None:
    if withheld:
        return [0] * len(recorded.members)
    try:
        rewards, _ = proportional_rewards([m.score_fixed for m in recorded.members], recorded.reward_pool_wei)
    except ConfigError:
        return None
    return rewards


def _reward_column(recorded: RecordedRound, *, withheld: bool = False) -> list[int | None]:
    rewards = _expected_rewards(recorded, withheld=withheld)
    if rewards is None:
        return [None] * len(recorded.members)
    return list(rewards)


def check_rewards(snapshot: LedgerSnapshot) -> list[AuditFinding]:
    """Rewards follow the published rule (nothing in a withheld round); the total score and the pool add up."""
    findings: list[AuditFinding] = []
    for recorded in snapshot.rounds:
        n = recorded.server_round
        withheld = _withheld(snapshot, recorded)
        expected = _reward_column(recorded, withheld=withheld)
        rule = (
            "nothing is due in a round disputed before it was recorded"
            if withheld
            else "reward differs from pool * score // total_score"
        )
        for member, reward in zip(recorded.members, expected, strict=True):
            ok = reward == member.reward_wei
            findings.append(
                _finding(
                    "rewards.rule",
                    ok,
                    round=n,
                    member=member.address,
                    field="reward_wei",
                    expected=reward,
                    actual=member.reward_wei,
                    message="" if ok else rule,
                )
            )
        total = sum(m.score_fixed for m in recorded.members)
        ok = total == recorded.total_score_fixed
        findings.append(
            _finding(
                "rewards.total_score",
                ok,
                round=n,
                field="totalScore",
                expected=total,
                actual=recorded.total_score_fixed,
                message="" if ok else "stored total score is not the sum of the recorded scores",
            )
        )
        paid = sum(m.reward_wei for m in recorded.members)
        ok = paid + recorded.treasury_wei == recorded.reward_pool_wei
        findings.append(
            _finding(
                "rewards.pool",
                ok,
                round=n,
                field="treasury_wei",
                expected=recorded.reward_pool_wei - paid,
                actual=recorded.treasury_wei,
                message=""
                if ok
                else f"rewards ({paid}) plus treasury do not equal the pool ({recorded.reward_pool_wei})",
            )
        )
    return findings


def check_member_statuses(snapshot: LedgerSnapshot) -> list[AuditFinding]:
    """Only accepted member-rounds score or earn; every status code is a known one.

    One failure per offending member-round (naming the field: ``status``, ``score`` or
    ``reward_wei``), else one pass per round listing its statuses.
    """
    check = "rewards.status"
    findings: list[AuditFinding] = []
    for recorded in snapshot.rounds:
        n = recorded.server_round
        bad: list[AuditFinding] = []
        for member in recorded.members:
            status = member.status
            if status not in MEMBER_STATUSES:
                bad.append(
                    _finding(
                        check,
                        False,
                        round=n,
                        member=member.address,
                        field="status",
                        expected=f"a code in 0..{len(MEMBER_STATUSES) - 1}",
                        actual=member.status_code,
                        message=f"{status} is not a member-round status ({', '.join(MEMBER_STATUSES)})",
                    )
                )
                continue
            if status == "accepted":
                continue
            if member.score_fixed != 0:
                bad.append(
                    _finding(
                        check,
                        False,
                        round=n,
                        member=member.address,
                        field="score",
                        expected=0,
                        actual=member.score_fixed,
                        message=f"a {status} member-round was given a score",
                    )
                )
            if member.reward_wei != 0:
                bad.append(
                    _finding(
                        check,
                        False,
                        round=n,
                        member=member.address,
                        field="reward_wei",
                        expected=0,
                        actual=member.reward_wei,
                        message=f"a {status} member-round was paid {member.reward_wei} wei",
                    )
                )
        findings += bad
        if not bad:
            findings.append(
                _finding(
                    check,
                    True,
                    round=n,
                    field="status",
                    actual=_status_counts(recorded),
                    message="only accepted member-rounds scored",
                )
            )
    return findings


def check_withheld(snapshot: LedgerSnapshot) -> list[AuditFinding]:
    """A round disputed before it was recorded says so in its event (and paid nobody: ``rewards.rule``).

    Only rounds with disputes filed before their recording, or whose ``RoundRecorded`` reports
    some, get a finding.
    """
    check = "rewards.withheld"
    findings: list[AuditFinding] = []
    for recorded in snapshot.rounds:
        before = _disputes_before(snapshot, recorded)
        if not before and recorded.disputes_at_record == 0:
            continue
        paid = sum(m.reward_wei for m in recorded.members)
        ok = recorded.disputes_at_record == len(before) and paid == 0
        if recorded.disputes_at_record != len(before):
            message = (
                f"RoundRecorded reports {recorded.disputes_at_record} disputes filed before recording; "
                f"the chain holds {len(before)} RoundDisputed events before it"
            )
        elif paid:
            message = f"disputed before it was recorded, yet {paid} wei was paid to members"
        else:
            message = f"disputed before recording by {len(before)} member(s): the whole pool went to the treasury"
        findings.append(
            _finding(
                check,
                ok,
                round=recorded.server_round,
                field="disputes",
                expected=len(before),
                actual=recorded.disputes_at_record,
                message=message,
            )
        )
    return findings


def check_disputes(snapshot: LedgerSnapshot) -> list[AuditFinding]:
    """Every dispute on chain fails its round, naming the member and the commitment it disputes.

    A dispute filed before the round was recorded withheld the round's rewards; one filed after
    could not take back what was credited (the message says how much). With no disputes, one pass.
    """
    check = "rounds.disputes"
    by_round = {r.server_round: r for r in snapshot.rounds}
    findings: list[AuditFinding] = []
    for dispute in snapshot.disputes:
        recorded = by_round.get(dispute.server_round)
        if recorded is None:
            message = "disputed the scalars revealed about it; the round is not recorded yet (it will pay nobody)"
            expected = None
        else:
            expected = recorded.scalars_commitment
            before = dispute in _disputes_before(snapshot, recorded)
            if before:
                message = "disputed the scalars revealed about it before the round was recorded: rewards withheld"
            else:
                paid = sum(m.reward_wei for m in recorded.members)
                message = (
                    "disputed the scalars revealed about it after the round was recorded: "
                    f"{paid} wei already credited could not be withheld"
                )
            if expected.lower() != dispute.scalars_commitment.lower():
                message += " (the commitment it was shown differs from the recorded one)"
        findings.append(
            _finding(
                check,
                False,
                round=dispute.server_round,
                member=dispute.member,
                field="scalars_commitment",
                expected=expected,
                actual=dispute.scalars_commitment,
                message=message,
            )
        )
    if not findings:
        findings.append(_finding(check, True, field="disputes", actual=0, message="no disputes filed"))
    return findings


def _status_counts(recorded: RecordedRound) -> str:
    counts = Counter(m.status for m in recorded.members)
    known = [s for s in MEMBER_STATUSES if s in counts] + sorted(set(counts) - set(MEMBER_STATUSES))
    return " ".join(f"{s}={counts[s]}" for s in known)


def check_token_supply(snapshot: LedgerSnapshot) -> list[AuditFinding]:
    """FedToken total supply equals the sum of all recorded pools (members' rewards + treasury)."""
    pools = sum(r.reward_pool_wei for r in snapshot.rounds)
    ok = snapshot.total_supply_wei == pools
    return [
        _finding(
            "token.supply",
            ok,
            field="totalSupply",
            expected=pools,
            actual=snapshot.total_supply_wei,
            message=""
            if ok
            else f"total supply differs from everything ever paid by {snapshot.total_supply_wei - pools} wei",
        )
    ]


def check_export_snapshot(snapshot: LedgerSnapshot) -> list[AuditFinding]:
    """The state stored in ``chain.json`` agrees with the state recomputed from its logs.

    A live chain has no export: nothing is checked (no finding).
    """
    exported, recomputed = snapshot.exported_state, snapshot.recomputed_state
    if exported is None or recomputed is None:
        return []
    check = "export.snapshot"
    findings: list[AuditFinding] = []
    supply = exported.get("totalSupply")
    if supply != recomputed["totalSupply"]:
        findings.append(
            _finding(
                check,
                False,
                field="totalSupply",
                expected=recomputed["totalSupply"],
                actual=supply,
                message="chain.json's stored total supply disagrees with its Transfer logs",
            )
        )
    for address, state in sorted(exported.get("accounts", {}).items()):
        stored = int(state.get("token", 0)) + int(state.get("claimable", 0))
        from_logs = recomputed["balances"].get(address)
        if from_logs is not None and stored != from_logs:
            findings.append(
                _finding(
                    check,
                    False,
                    member=address,
                    field="balance",
                    expected=from_logs,
                    actual=stored,
                    message="chain.json's stored balance disagrees with its logs",
                )
            )
    stored_budgets = exported.get("privacyBudgets")  # absent from exports of ledgers without budgets
    logged_budgets = recomputed.get("privacyBudgets", {})
    if stored_budgets is not None:
        for address in sorted(set(stored_budgets) | set(logged_budgets)):
            stored_words, logged_words = stored_budgets.get(address), logged_budgets.get(address)
            if stored_words != logged_words:
                findings.append(
                    _finding(
                        check,
                        False,
                        member=address,
                        field="privacyBudget",
                        expected=logged_words,
                        actual=stored_words,
                        message="chain.json's stored privacy budget disagrees with its PrivacyBudgetSet logs",
                    )
                )
    stored_disputes = exported.get("disputeCounts")  # absent from exports written before disputes
    logged_disputes = recomputed.get("disputeCounts", {})
    if stored_disputes is not None:
        for server_round in sorted(set(stored_disputes) | set(logged_disputes), key=int):
            stored_count, logged_count = stored_disputes.get(server_round, 0), logged_disputes.get(server_round, 0)
            if stored_count != logged_count:
                findings.append(
                    _finding(
                        check,
                        False,
                        round=int(server_round),
                        field="disputeCount",
                        expected=logged_count,
                        actual=stored_count,
                        message="chain.json's stored dispute count disagrees with its RoundDisputed logs",
                    )
                )
    if not findings:
        findings.append(_finding(check, True, field="snapshot", message="stored state matches the logs"))
    return findings


# ---- lineage and commitments -------------------------------------------------------------------


def check_lineage(snapshot: LedgerSnapshot) -> list[AuditFinding]:
    """Round 1 names the zero hash as its previous model; round n names round n-1's model hash."""
    findings: list[AuditFinding] = []
    by_round = {r.server_round: r for r in snapshot.rounds}
    for recorded in snapshot.rounds:
        n = recorded.server_round
        if n == 1:
            expected: str | None = ZERO_HASH
        else:
            prior = by_round.get(n - 1)
            expected = None if prior is None else prior.model_hash
        if expected is None:
            findings.append(
                _finding(
                    "lineage.previous",
                    False,
                    round=n,
                    field="previous_model_hash",
                    expected=None,
                    actual=recorded.previous_model_hash,
                    message=f"round {n - 1} is not recorded: lineage cannot continue",
                )
            )
        else:
            ok = recorded.previous_model_hash.lower() == expected.lower()
            findings.append(
                _finding(
                    "lineage.previous",
                    ok,
                    round=n,
                    field="previous_model_hash",
                    expected=expected,
                    actual=recorded.previous_model_hash,
                    message=""
                    if ok
                    else (
                        "round 1 must start from the zero hash"
                        if n == 1
                        else f"previous model hash is not round {n - 1}'s model hash"
                    ),
                )
            )
        # A round without an accepted update (skipped) keeps the previous model, which before the
        # first completed round is no model at all (the zero hash).
        unchanged = not any(m.status == "accepted" for m in recorded.members) and (
            recorded.model_hash.lower() == recorded.previous_model_hash.lower()
        )
        ok = recorded.model_hash.lower() != ZERO_HASH or unchanged
        findings.append(
            _finding(
                "lineage.model",
                ok,
                round=n,
                field="model_hash",
                actual=recorded.model_hash,
                message="" if ok else "the round records no model hash",
            )
        )
    return findings


def check_update_roots(snapshot: LedgerSnapshot) -> list[AuditFinding]:
    """Each round commits a non-zero signed-update Merkle root.

    The zero hash means "no signed updates were committed": a warning, never a pass, since there
    is nothing a member could prove inclusion against. Inclusion itself is checked per member by
    :func:`check_inclusion` (``fedchain audit prove``).
    """
    findings: list[AuditFinding] = []
    for recorded in snapshot.rounds:
        root = recorded.update_merkle_root.lower()
        if root == ZERO_HASH:
            findings.append(
                _finding(
                    "updates.merkle_root",
                    False,
                    round=recorded.server_round,
                    field="update_merkle_root",
                    expected="a non-zero Merkle root",
                    actual=recorded.update_merkle_root,
                    severity="warning",
                    message="no signed updates recorded (zero root): update inclusion cannot be verified",
                )
            )
        else:
            findings.append(
                _finding(
                    "updates.merkle_root",
                    True,
                    round=recorded.server_round,
                    field="update_merkle_root",
                    actual=recorded.update_merkle_root,
                    message="committed; verify a member's update with `fedchain audit prove`",
                )
            )
    return findings


def check_inclusion(
    recorded: RecordedRound, *, member: str, digest: bytes | str, proof: Sequence[bytes | str]
) -> list[AuditFinding]:
    """A member's update digest and Merkle proof verify against the round's recorded root.

    The leaf is :func:`fedchain.identity.merkle.update_leaf` ``(round, member, digest)``.

    Raises:
        ConfigError: the member, the digest or a proof element is malformed.

    Example:
        >>> from fedchain.identity.merkle import update_leaf
        >>> leaf = update_leaf(1, "0x" + "11" * 20, bytes(32))
        >>> from fedchain.ledger import RecordedRound
        >>> recorded = RecordedRound(1, "", "", "", "0x" + leaf.hex(), "", 0, 0, 0, "", "", 0, 0, "", ())
        >>> [f.status for f in check_inclusion(recorded, member="0x" + "11" * 20, digest=bytes(32), proof=[])]
        ['fail', 'pass']
    """
    check = "updates.inclusion"
    n = recorded.server_round
    leaf = update_leaf(n, member, digest)
    findings: list[AuditFinding] = []
    listed = any(m.address.lower() == member.lower() for m in recorded.members)
    findings.append(
        _finding(
            check,
            listed,
            round=n,
            member=member,
            field="member",
            expected=True,
            actual=listed,
            message="" if listed else f"the member is not among round {n}'s recorded members",
        )
    )
    if recorded.update_merkle_root.lower() == ZERO_HASH:
        findings.append(
            _finding(
                check,
                False,
                round=n,
                member=member,
                field="update_merkle_root",
                expected="a non-zero Merkle root",
                actual=recorded.update_merkle_root,
                message="round has no committed Merkle root (no signed updates recorded)",
            )
        )
        return findings
    ok = verify_proof(recorded.update_merkle_root, leaf, proof)
    findings.append(
        _finding(
            check,
            ok,
            round=n,
            member=member,
            field="update_merkle_root",
            expected=recorded.update_merkle_root,
            actual="0x" + leaf.hex(),
            message="digest is included" if ok else "the proof does not lead from this digest's leaf to the root",
        )
    )
    return findings


def check_model_bytes(
    data: bytes, *, recorded_hash: str, server_round: int, canonical_hash: str | None = None
) -> AuditFinding:
    """A model file is the one recorded for ``server_round``.

    Args:
        data: the file's bytes.
        recorded_hash: the round's model hash read from chain.
        server_round: the round.
        canonical_hash: hash of the file's tensors re-serialized canonically (None when the file
            is not valid safetensors); the same weights saved by another writer still match.

    Example:
        >>> import hashlib
        >>> check_model_bytes(b"x", recorded_hash="0x" + hashlib.sha256(b"x").hexdigest(), server_round=1).ok
        True
    """
    import hashlib

    actual = "0x" + hashlib.sha256(data).hexdigest()
    recorded = recorded_hash.lower()
    if actual == recorded:
        return _finding(
            "model.file", True, round=server_round, field="model_hash", expected=recorded_hash, actual=actual
        )
    if canonical_hash is not None and canonical_hash.lower() == recorded:
        return _finding(
            "model.file",
            True,
            round=server_round,
            field="model_hash",
            expected=recorded_hash,
            actual=canonical_hash,
            message="same weights; the file is not in canonical form (its raw hash is " + actual + ")",
        )
    return _finding(
        "model.file",
        False,
        round=server_round,
        field="model_hash",
        expected=recorded_hash,
        actual=actual,
        message=f"the model file is not the model recorded for round {server_round}",
    )


# ---- privacy -----------------------------------------------------------------------------------


def privacy_history(snapshot: LedgerSnapshot, *, accountant: str = "rdp") -> dict[str, list[PrivacyEntry]]:
    """Each member's recorded DP history in training order, with cumulative epsilon recomputed.

    Every spend counts, whatever its status: the member-rounds of each round's record (accepted,
    rejected, late, skipped, replayed) and the spends recorded after their round
    (``recordSpends``). Training order is round order; within a round, a ``"replayed"`` spend (a
    run of the round lost to a coordinator crash) comes before the round's record, other spends
    after it, ties in chain order. The recomputation runs :func:`fedchain.privacy.epsilon_curve`
    over the member's DP entries at the delta recorded in its first one. A history that cannot be
    recomputed (malformed parameters) gets ``epsilon_recomputed=None`` and the reason in ``error``.

    Raises:
        ConfigError: ``accountant`` is not one of :data:`fedchain.privacy.ACCOUNTANT_NAMES`.
    """
    if accountant not in ACCOUNTANT_NAMES:
        raise ConfigError("accountant", f"one of {', '.join(repr(a) for a in ACCOUNTANT_NAMES)}", accountant)
    # (order key, round, dp, reported epsilon, status, source) per member
    rows: dict[str, list[tuple[tuple[int, int, int, int], int, DPParams | None, float | None, str, str]]] = {}
    for recorded in snapshot.rounds:
        key = (recorded.server_round, 1, recorded.block_number, snapshot.round_log_index.get(recorded.server_round, 0))
        for member in recorded.members:
            rows.setdefault(member.address, []).append(
                (key, recorded.server_round, member.dp, member.epsilon, member.status, "round")
            )
    for spend in snapshot.spends:
        rank = 0 if spend.status == "replayed" else 1
        key = (spend.server_round, rank, spend.block_number, spend.log_index)
        rows.setdefault(spend.address, []).append(
            (key, spend.server_round, spend.dp, spend.epsilon, spend.status, "spend")
        )
    history: dict[str, list[PrivacyEntry]] = {}
    for address, entries in rows.items():
        entries.sort(key=lambda e: e[0])
        private = [e[2] for e in entries if e[2] is not None]
        curve: list[float] | None = None
        error = ""
        if private:
            try:
                curve = epsilon_curve(private, delta=private[0].delta, accountant=accountant)
            except (PrivacyError, ConfigError) as exc:
                error = str(exc)
        out: list[PrivacyEntry] = []
        index = 0
        for _, server_round, dp, epsilon, status, source in entries:
            recomputed = None
            if dp is not None:
                recomputed = curve[index] if curve is not None else None
                index += 1
            out.append(
                PrivacyEntry(server_round, dp, epsilon, recomputed, error if dp is not None else "", status, source)
            )
        history[address] = out
    return history


def check_privacy_records(history: Mapping[str, Sequence[PrivacyEntry]]) -> list[AuditFinding]:
    """DP parameters and epsilon are recorded together; one delta per member; no private gaps.

    A member with no DP in any round gets one warning (there is no privacy claim to verify); a
    member that trained with DP in some rounds and without it in others fails for each round
    without DP. A spend recorded after its round may omit the reported epsilon (the coordinator
    may not have it); its DP parameters still count in the recomputation.
    """
    check = "privacy.record"
    findings: list[AuditFinding] = []
    for address, entries in history.items():
        private = [e for e in entries if e.dp is not None]
        if not private and all(e.epsilon_recorded is None for e in entries):
            findings.append(
                _finding(
                    check,
                    False,
                    member=address,
                    field="dp",
                    severity="warning",
                    message="the member trained without differential privacy: no privacy claim to verify",
                )
            )
            continue
        deltas = {e.dp.delta for e in private if e.dp is not None}
        first_delta = private[0].dp.delta if private and private[0].dp is not None else None
        for entry in entries:
            if entry.dp is None:
                findings.append(
                    _finding(
                        check,
                        False,
                        round=entry.server_round,
                        member=address,
                        field="dp",
                        expected="DP parameters",
                        actual=None,
                        message="an epsilon is reported without the DP parameters it was computed from"
                        if entry.epsilon_recorded is not None
                        else "no DP parameters recorded while the member's other rounds are private",
                    )
                )
            elif entry.epsilon_recorded is None and entry.source == "spend":
                findings.append(
                    _finding(
                        check,
                        True,
                        round=entry.server_round,
                        member=address,
                        field="dp",
                        message=f"{entry.status} spend recorded after its round, without a reported epsilon: "
                        "counted in the recomputation",
                    )
                )
            elif entry.epsilon_recorded is None:
                findings.append(
                    _finding(
                        check,
                        False,
                        round=entry.server_round,
                        member=address,
                        field="epsilon",
                        expected="a cumulative epsilon",
                        actual=None,
                        message="DP parameters recorded without a reported epsilon",
                    )
                )
            elif len(deltas) > 1 and entry.dp.delta != first_delta:
                findings.append(
                    _finding(
                        check,
                        False,
                        round=entry.server_round,
                        member=address,
                        field="delta",
                        expected=first_delta,
                        actual=entry.dp.delta,
                        message="delta changed across the member's rounds",
                    )
                )
            else:
                findings.append(
                    _finding(
                        check,
                        True,
                        round=entry.server_round,
                        member=address,
                        field="dp",
                        message="" if entry.source == "round" else f"{entry.status} spend recorded after its round",
                    )
                )
    return findings


def check_privacy_epsilon(
    history: Mapping[str, Sequence[PrivacyEntry]], *, tolerance: float = EPSILON_TOLERANCE
) -> list[AuditFinding]:
    """The reported cumulative epsilon equals the recomputed one within ``tolerance`` (absolute)."""
    check = "privacy.epsilon"
    findings: list[AuditFinding] = []
    for address, entries in history.items():
        for entry in entries:
            if entry.dp is None or entry.epsilon_recorded is None:
                continue
            if entry.epsilon_recomputed is None:
                findings.append(
                    _finding(
                        check,
                        False,
                        round=entry.server_round,
                        member=address,
                        field="dp",
                        actual=entry.epsilon_recorded,
                        message=f"epsilon cannot be recomputed from the recorded DP parameters: {entry.error}",
                    )
                )
                continue
            diff = abs(entry.epsilon_recomputed - entry.epsilon_recorded)
            ok = diff <= tolerance
            findings.append(
                _finding(
                    check,
                    ok,
                    round=entry.server_round,
                    member=address,
                    field="epsilon",
                    expected=entry.epsilon_recomputed,
                    actual=entry.epsilon_recorded,
                    message=""
                    if ok
                    else f"reported epsilon differs from the recomputation by {diff:.3g} (tolerance {tolerance:g})",
                )
            )
    return findings


def _budget_for(budgets: Mapping[str, MemberBudget], default: MemberBudget | None, address: str) -> MemberBudget | None:
    for key, budget in budgets.items():
        if key.lower() == address.lower():
            return budget
    return default


def _budget_agreement(address: str, on_chain: MemberBudget, given: MemberBudget, source: str) -> list[AuditFinding]:
    """A budget given off chain agrees with the member's on-chain budget (delta only when given)."""
    check = "privacy.budget"
    findings: list[AuditFinding] = []
    for name, chain_value, given_value in (
        ("epsilon", on_chain.epsilon, given.epsilon),
        ("delta", on_chain.delta, given.delta),
    ):
        if given_value is None or given_value == chain_value:
            continue
        findings.append(
            _finding(
                check,
                False,
                member=address,
                field=f"{name}_budget",
                expected=chain_value,
                actual=given_value,
                message=f"the budget from {source} ({name} {given_value:g}) differs from the on-chain budget "
                f"({name} {chain_value:g})",
            )
        )
    if not findings:
        findings.append(
            _finding(
                check,
                True,
                member=address,
                field="budget",
                expected=f"epsilon {on_chain.epsilon:g}, delta {on_chain.delta:g}",
                actual=f"epsilon {given.epsilon:g}" + ("" if given.delta is None else f", delta {given.delta:g}"),
                message=f"the budget from {source} agrees with the on-chain budget",
            )
        )
    return findings


def check_privacy_budget(
    history: Mapping[str, Sequence[PrivacyEntry]],
    *,
    budgets: Mapping[str, MemberBudget] | None = None,
    default_budget: MemberBudget | None = None,
    chain_budgets: Mapping[str, MemberBudget] | None = None,
    given_source: str = "given",
) -> list[AuditFinding]:
    """Each member's recomputed cumulative epsilon never exceeds its budget (no tolerance).

    The recomputed value is judged, not the reported one, so a member cannot under-report its way
    inside the budget. The chain is the authority: a member's on-chain budget (``chain_budgets``) is
    used when there is one, and a budget also given off chain (``budgets`` / ``default_budget``) must
    agree with it (a disagreement fails, naming both values; agreement passes). A member without an
    on-chain budget is judged against the given one; without either it gets a warning.

    Args:
        history: each member's privacy history (:func:`privacy_history`).
        budgets: off-chain budgets per member address.
        default_budget: the off-chain budget of members not in ``budgets``.
        chain_budgets: budgets read from the chain, per member address.
        given_source: how to name the off-chain budgets in messages (e.g. ``"--epsilon-budget"``).

    Example:
        >>> entry = PrivacyEntry(1, DPParams(1.1, 0.02, 150, 1.0, 1e-5), 1.5, 1.5)
        >>> [f.status for f in check_privacy_budget({"0xA": [entry]}, chain_budgets={"0xA": MemberBudget(2.0, 1e-5)})]
        ['pass']
        >>> finding = check_privacy_budget({"0xA": [entry]}, default_budget=MemberBudget(4.0),
        ...     chain_budgets={"0xA": MemberBudget(2.0, 1e-5)}, given_source="--epsilon-budget")[0]
        >>> finding.status, finding.message
        ('fail', 'the budget from --epsilon-budget (epsilon 4) differs from the on-chain budget (epsilon 2)')
    """
    check = "privacy.budget"
    budgets = budgets or {}
    findings: list[AuditFinding] = []
    for address, entries in history.items():
        if all(e.dp is None for e in entries):
            continue
        given = _budget_for(budgets, default_budget, address)
        on_chain = _budget_for(chain_budgets or {}, None, address)
        if on_chain is not None and given is not None:
            findings += _budget_agreement(address, on_chain, given, given_source)
        budget = on_chain if on_chain is not None else given
        if budget is None:
            findings.append(
                _finding(
                    check,
                    False,
                    member=address,
                    field="epsilon",
                    severity="warning",
                    message="no budget known for this member (none on chain, none given): budget not verified",
                )
            )
            continue
        for entry in entries:
            if entry.dp is None:
                continue
            if budget.delta is not None and entry.dp.delta > budget.delta:
                findings.append(
                    _finding(
                        check,
                        False,
                        round=entry.server_round,
                        member=address,
                        field="delta",
                        expected=budget.delta,
                        actual=entry.dp.delta,
                        message="epsilon was accounted at a larger delta than the budget's",
                    )
                )
            spent = entry.epsilon_recomputed
            if spent is None:
                findings.append(
                    _finding(
                        check,
                        False,
                        round=entry.server_round,
                        member=address,
                        field="epsilon",
                        expected=budget.epsilon,
                        actual=None,
                        message="epsilon cannot be recomputed, so the budget cannot be verified",
                    )
                )
                continue
            ok = spent <= budget.epsilon
            findings.append(
                _finding(
                    check,
                    ok,
                    round=entry.server_round,
                    member=address,
                    field="epsilon",
                    expected=budget.epsilon,
                    actual=spent,
                    message=""
                    if ok
                    else f"recomputed cumulative epsilon {spent:.6f} exceeds the budget {budget.epsilon:g}",
                )
            )
    return findings


# ---- tables ------------------------------------------------------------------------------------


def round_rows(snapshot: LedgerSnapshot) -> tuple[RoundAudit, ...]:
    """One :class:`RoundAudit` per readable round (with its member statuses and disputes)."""
    disputes = Counter(d.server_round for d in snapshot.disputes)
    return tuple(
        RoundAudit(
            server_round=r.server_round,
            block_number=r.block_number,
            tx_hash=r.tx_hash,
            recorder=r.recorder,
            member_count=len(r.members),
            reward_pool_wei=r.reward_pool_wei,
            paid_wei=sum(m.reward_wei for m in r.members),
            treasury_wei=r.treasury_wei,
            model_hash=r.model_hash,
            previous_model_hash=r.previous_model_hash,
            update_merkle_root=r.update_merkle_root,
            scalars_commitment=r.scalars_commitment,
            member_statuses=_status_counts(r),
            disputes=disputes[r.server_round],
            withheld=_withheld(snapshot, r),
        )
        for r in snapshot.rounds
    )


def member_rows(
    snapshot: LedgerSnapshot,
    history: Mapping[str, Sequence[PrivacyEntry]],
    *,
    budgets: Mapping[str, MemberBudget] | None = None,
    default_budget: MemberBudget | None = None,
    chain_budgets: Mapping[str, MemberBudget] | None = None,
) -> tuple[MemberRoundAudit, ...]:
    """One :class:`MemberRoundAudit` per member-round, in round then address order.

    Spends recorded after their round follow that round's entries (``source="spend"``, never paid).
    A member's budget column is its on-chain budget when it has one, else the given one.
    """
    events = sorted(snapshot.registrations, key=lambda e: (e.block_number, e.log_index))
    recomputed = {(a, e.server_round, e.source): e for a, entries in history.items() for e in entries}
    spends_by_round: dict[int, list[Any]] = {}
    for spend in snapshot.spends:
        spends_by_round.setdefault(spend.server_round, []).append(spend)

    def budget_of(address: str) -> MemberBudget | None:
        return _budget_for(chain_budgets or {}, None, address) or _budget_for(budgets or {}, default_budget, address)

    rows: list[MemberRoundAudit] = []
    for recorded in snapshot.rounds:
        expected = _reward_column(recorded, withheld=_withheld(snapshot, recorded))
        position = snapshot.round_log_index.get(recorded.server_round)
        for member, reward in zip(recorded.members, expected, strict=True):
            entry = recomputed.get((member.address, recorded.server_round, "round"))
            budget = budget_of(member.address)
            rows.append(
                MemberRoundAudit(
                    server_round=recorded.server_round,
                    address=member.address,
                    score=member.score,
                    reward_wei=member.reward_wei,
                    expected_reward_wei=reward,
                    registered=_registered(events, member.address, recorded.block_number, position),
                    dp=member.dp,
                    epsilon_recorded=member.epsilon,
                    epsilon_recomputed=None if entry is None else entry.epsilon_recomputed,
                    epsilon_budget=None if budget is None or member.dp is None else budget.epsilon,
                    block_number=recorded.block_number,
                    member_status=member.status,
                )
            )
        for spend in spends_by_round.get(recorded.server_round, []):
            entry = recomputed.get((spend.address, spend.server_round, "spend"))
            budget = budget_of(spend.address)
            rows.append(
                MemberRoundAudit(
                    server_round=spend.server_round,
                    address=spend.address,
                    score=0.0,
                    reward_wei=0,
                    expected_reward_wei=0,
                    registered=_registered(events, spend.address, spend.block_number, spend.log_index),
                    dp=spend.dp,
                    epsilon_recorded=spend.epsilon,
                    epsilon_recomputed=None if entry is None else entry.epsilon_recomputed,
                    epsilon_budget=None if budget is None or spend.dp is None else budget.epsilon,
                    block_number=spend.block_number,
                    member_status=spend.status,
                    source="spend",
                )
            )
    return tuple(rows)
