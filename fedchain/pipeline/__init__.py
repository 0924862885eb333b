"""One round of the coordinator, top to bottom, on frozen values and without Flower.

The coordinator (``fedchain.coordinator``) does the Flower I/O: it samples members, sends the train
instructions and decodes the replies. Everything it then decides about the round happens here::

    TrainReply | FailedReply (decoded by the coordinator as each arrives, fedchain.protocol)
      │ 1. validate      signature over exactly this update, registration, model round, duplicates
      ▼
    AcceptedUpdate (one per member) ──► folded at once into the running aggregation
      │                                 (HE: the running ciphertext sum; its bytes are dropped)
      │ 2. bound         norm bound per member (raised for DP members: dp_update_bound)
      │ 3. aggregate     PlainAggregation (the strategy's Flower aggregation)
      │                  or EncryptedAggregation (ciphertext sum + decrypt committee, a CommitteePort)
      ▼
    Aggregation ─ too few updates? ─► skipped RoundOutcome (nobody paid; spends still recorded)
      │ 4. score         the run's scorer (withheld when the committee flagged the round)
      ▼
    RoundOutcome ──► EvaluationPort (coordinator: members evaluate the new model, report its hash
      │                               and any signed dispute of the revealed scalars)
      │ 5. tally         the model most members hold, its example-weighted accuracy
      │    settle        a valid dispute flags the round and zeroes its scores
      │ 6. record        RoundRecord (statuses, Merkle root of signed digests, scalars commitment)
      ▼
    Round(outcome, record) ──► fedchain.recording.Recorder (stage, record with retries, proofs)

The replies come in as an iterable: the coordinator hands a generator that yields each reply as
it arrives (until the round's deadline), so a reply is validated and folded into the aggregate
before the next one is received, and the coordinator never holds every member's update at once.

Stages 1, 4, 5 and 6 are in this module, in that order; 2 and 3 are the two aggregation strategies
of :mod:`fedchain.pipeline.aggregation`; the frozen values and ports are in
:mod:`fedchain.pipeline.values`. What needs the network comes in as a port (a ``typing.Protocol``,
like Flower's ``Grid``): :class:`CommitteePort` asks the decrypt committee, :class:`EvaluationPort`
asks members to evaluate. Tests answer them in process (``tests/pipeline/test_pipeline.py``,
``tests/pipeline/test_pipeline_he.py``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from fedchain.config import FedChainConfig
from fedchain.contribution import ScoringInputs, withheld_scores
from fedchain.contribution.base import ContributionScorer, Evaluate
from fedchain.errors import FedChainError, FederationError, ReplyRejectedError, SerializationError
from fedchain.faults import CoordinatorFaults
from fedchain.identity.merkle import merkle_root, update_leaf
from fedchain.identity.signing import SigningDomain, dispute_digest, recover_signer, update_digest
from fedchain.pipeline.aggregation import (
    EncryptedAggregation,
    PlainAggregation,
    ask_committee,
    member_norm_bounds,
)
from fedchain.pipeline.values import (
    AcceptedUpdate,
    Aggregation,
    AggregationStrategy,
    CommitteeExchange,
    CommitteePort,
    CommitteeReply,
    Evaluation,
    EvaluationPort,
    EvaluationReport,
    FailedReply,
    Round,
    RoundOutcome,
    RunningAggregation,
    StageClock,
    TrainReply,
    merged_counts,
)
from fedchain.serialization import Weights, check_weights, model_hash
from fedchain.types import (
    MEMBER_STATUSES,
    ZERO_HASH,
    Dispute,
    MemberRound,
    MemberRoundRecord,
    RoundRecord,
)

__all__ = [
    "AcceptedUpdate",
    "Aggregation",
    "AggregationStrategy",
    "CommitteeExchange",
    "CommitteePort",
    "CommitteeReply",
    "EncryptedAggregation",
    "Evaluation",
    "EvaluationPort",
    "EvaluationReport",
    "FailedReply",
    "PlainAggregation",
    "Round",
    "RoundOutcome",
    "RoundPipeline",
    "RunningAggregation",
    "StageClock",
    "TrainReply",
    "ask_committee",
    "member_norm_bounds",
    "round_record",
    "settle_disputes",
    "stage_timer",
    "tally",
    "update_leaves",
    "update_root",
    "valid_dispute",
    "validate",
]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _untimed(stage: str) -> Iterator[None]:
    yield


# ------------------------------------------------------------------------------------------ the round
@dataclass(frozen=True)
class RoundPipeline:
    """Runs one round's decisions, in order; the coordinator calls :meth:`run` once per round.

    Attributes:
        config: the validated run configuration.
        scorer: the run's contribution scorer.
        aggregation: plaintext or encrypted aggregation (see :func:`aggregation_for`).
        domain: what every update of the run is signed under.
        registered: addresses allowed to contribute; None accepts any correctly signed update.
        validation: the coordinator's validation utility (for scorers with ``needs_validation``).
        faults: fault injection (tests and the simulation runner only).
    """

    config: FedChainConfig
    scorer: ContributionScorer
    aggregation: AggregationStrategy
    domain: SigningDomain
    registered: frozenset[str] | None = None
    validation: Callable[[Weights], Evaluate] | None = None
    faults: CoordinatorFaults | None = None

    def run(
        self,
        server_round: int,
        *,
        model: Weights,
        previous_hash: str,
        replies: Iterable[TrainReply | FailedReply],
        evaluation: EvaluationPort,
        clock: StageClock = _untimed,
    ) -> Round:
        """One round from its train replies: validate, bound, aggregate, score, evaluate, record.

        Args:
            server_round: the round.
            model: the global model the round started from (plaintext mode; the template under HE).
            previous_hash: its hash (``ZERO_HASH`` before round 1).
            replies: the decoded train replies, consumed once, as they arrive (a generator that
                ends at the round's deadline, or a list).
            evaluation: asks members to evaluate the round's model.
            clock: times each stage; ``train`` is the time until the last reply is in, validated
                and folded into the aggregate (the three overlap).
        """
        running = self.aggregation.start(server_round)
        try:
            # 1. Validate each reply as it arrives; fold the accepted update into the aggregate at once.
            with clock("train"):
                accepted, validated = validate(
                    replies,
                    server_round=server_round,
                    model=model,
                    domain=self.domain,
                    registered=self.registered,
                    fold=running.add,
                )

            # 2-3. Bound and aggregate: drop updates that cannot be summed or exceed the norm bound.
            aggregation = Aggregation(kept=tuple(accepted))
            if len(accepted) >= self.config.min_members:
                with clock("aggregate"):
                    aggregation = running.finish()
        finally:
            running.close()
        rejections = merged_counts(validated, aggregation.rejections)
        if aggregation.aggregate is None or len(aggregation.kept) < self.config.min_members:
            skipped = self._skipped(server_round, previous_hash, accepted, aggregation, rejections)
            return replace(skipped, outcome=replace(skipped.outcome, replies_rejected=validated))
        if self.faults is not None:
            self.faults.at("aggregated", server_round)

        # 4. Score (a round the committee flagged pays nobody: its scores are withheld).
        with clock("score"):
            scores = self._score(server_round, model, aggregation)
        members = [replace(u.member, score=scores[u.member.address]) for u in aggregation.kept]
        members += aggregation.excluded
        members += _unused(accepted, members, status="rejected:invalid")
        new_hash = model_hash(aggregation.weights) if aggregation.weights is not None else None
        outcome = RoundOutcome(
            server_round=server_round,
            status="completed",
            previous_model_hash=previous_hash,
            model_hash=new_hash,
            aggregate_hash=aggregation.aggregate.digest,
            members=tuple(members),
            rejections=rejections,
            flagged=aggregation.flagged,
            aggregation=aggregation,
            trained=tuple(accepted),
            replies_rejected=validated,
        )

        # 5. Evaluate the new model on members; under HE they also report its hash (and disputes).
        with clock("evaluate"):
            report = tally(server_round, evaluation.evaluate(outcome), model_hash=new_hash)
        outcome = replace(
            outcome,
            accuracy=report.accuracy,
            loss=report.loss,
            model_hash=new_hash if new_hash is not None else (report.model_hash or ZERO_HASH),
        )
        outcome = settle_disputes(outcome, report.disputes, domain=self.domain)

        # 6. The record the chain gets (rewards are computed on chain from the scores).
        return Round(outcome, round_record(outcome, reward_pool_wei=self.config.reward_pool_wei))

    def _skipped(
        self,
        server_round: int,
        previous_hash: str,
        trained: Sequence[AcceptedUpdate],
        aggregation: Aggregation,
        rejections: Mapping[str, int],
    ) -> Round:
        """Too few usable updates: the model stays, nobody is paid, and the chain records the skip.

        The members that trained are recorded with status ``skipped`` (or their rejection) and
        score 0: they spent privacy, and an auditor's epsilon must include it.
        """
        log.warning(
            "round %d skipped: %d usable updates, %d needed",
            server_round,
            len(trained) - len(aggregation.excluded),
            self.config.min_members,
        )
        members = list(aggregation.excluded) + _unused(trained, aggregation.excluded, status="skipped")
        outcome = RoundOutcome(
            server_round=server_round,
            status="skipped",
            previous_model_hash=previous_hash,
            model_hash=previous_hash,
            aggregate_hash=ZERO_HASH,
            members=tuple(members),
            rejections=rejections,
            aggregation=replace(aggregation, aggregate=None, weights=None),
            trained=tuple(trained),
        )
        return Round(outcome, round_record(outcome, reward_pool_wei=0))

    def _score(self, server_round: int, model: Weights, aggregation: Aggregation) -> dict[str, float]:
        counts = {u.member.address: u.member.num_examples for u in aggregation.kept}
        if aggregation.flagged:
            log.warning("round %d: rewards withheld: %s", server_round, aggregation.flagged)
            return withheld_scores(counts)
        evaluate = None
        if self.scorer.needs_validation and self.validation is not None and aggregation.deltas is not None:
            evaluate = self.validation(model)
        inputs = ScoringInputs(
            num_examples=counts,
            deltas=aggregation.deltas,
            products=aggregation.products,
            evaluate=evaluate,
            seed=self.config.seed * 1_000_003 + server_round,
        )
        return self.scorer(inputs)


# ---------------------------------------------------------------------------------------- 1. validate
def validate(
    replies: Iterable[TrainReply | FailedReply],
    *,
    server_round: int,
    model: Weights,
    domain: SigningDomain,
    registered: frozenset[str] | None,
    fold: Callable[[AcceptedUpdate], AcceptedUpdate] | None = None,
) -> tuple[list[AcceptedUpdate], dict[str, int]]:
    """Keep the updates signed by their registered member over exactly this round and payload.

    Each reply is checked on its own as it comes (nothing here needs the other replies but the
    duplicate check, by address).

    Args:
        replies: the decoded train replies, consumed once.
        server_round: the round.
        model: the global model (plaintext weights are checked against its shapes).
        domain: what every update of the run is signed under.
        registered: addresses allowed to contribute; None accepts any correctly signed update.
        fold: called with each accepted update at once (the running aggregation); what it returns
            is kept in its place (under HE: the update without its ciphertext).

    Returns:
        The accepted updates (one per address, first wins) and the other replies counted by
        reason: the failed replies' own (``timeout`` for a member silent at the deadline),
        ``unregistered``, ``unsigned``, ``bad-signature``, ``invalid`` (stale model, malformed
        weights) and ``duplicate``.
    """
    accepted: list[AcceptedUpdate] = []
    reasons: Counter[str] = Counter()
    seen: set[str] = set()
    for reply in replies:
        update = _validated(
            reply, reasons, server_round=server_round, model=model, domain=domain, registered=registered
        )
        del reply  # the next reply is received while this name would still hold this one's payload
        if update is None:
            continue
        if update.member.address in seen:  # by address: the member id is only a claim
            reasons["duplicate"] += 1
        else:
            seen.add(update.member.address)
            accepted.append(fold(update) if fold is not None else update)
        del update
    return accepted, dict(reasons)


def _validated(
    reply: TrainReply | FailedReply,
    reasons: Counter[str],
    *,
    server_round: int,
    model: Weights,
    domain: SigningDomain,
    registered: frozenset[str] | None,
) -> AcceptedUpdate | None:
    """The reply's accepted update, or None with its reason counted in ``reasons``."""
    if isinstance(reply, FailedReply):
        reasons[reply.reason] += 1
        log.info("round %d: node %d %s: %s", server_round, reply.node_id, reply.reason, reply.detail)
        return None
    try:
        return _accept(reply, server_round=server_round, model=model, domain=domain, registered=registered)
    except ReplyRejectedError as exc:
        reasons[exc.reason] += 1
        log.warning("round %d: node %d's update rejected (%s): %s", server_round, reply.node_id, exc.reason, exc)
    except (FedChainError, KeyError, TypeError, ValueError) as exc:
        reasons["invalid"] += 1
        log.warning("round %d: node %d sent an invalid update: %s", server_round, reply.node_id, exc)
    return None


def _accept(
    reply: TrainReply, *, server_round: int, model: Weights, domain: SigningDomain, registered: frozenset[str] | None
) -> AcceptedUpdate:
    if reply.model_round != server_round - 1:
        raise ValueError(f"trained on the model of round {reply.model_round}, not {server_round - 1}")
    weights = None
    if reply.chunks is not None:
        from fedchain.crypto.digest import ciphertext_digest

        payload_hash = ciphertext_digest(reply.chunks)
    else:
        if reply.weights is None:
            raise SerializationError("the reply carries no update")
        weights = check_weights(reply.weights, model)
        payload_hash = model_hash(weights)
    member = reply.member
    if registered is not None and member.address not in registered:
        raise ReplyRejectedError("unregistered", f"{member.address} is not a registered member")
    if not reply.signature:
        raise ReplyRejectedError("unsigned", "the update carries no signature")
    digest = update_digest(
        domain=domain,
        server_round=server_round,
        address=member.address,
        payload_hash=payload_hash,
        num_examples=member.num_examples,
        dp=member.dp,
    )
    try:
        signer = recover_signer(digest, reply.signature)
    except SerializationError as exc:
        raise ReplyRejectedError("bad-signature", str(exc)) from exc
    if signer != member.address:
        # a signature from another round, payload or key recovers to some other address
        raise ReplyRejectedError("bad-signature", f"signed by {signer}, not by the claimed {member.address}")
    chunks = list(reply.chunks) if reply.chunks is not None else None
    return AcceptedUpdate(
        reply.node_id,
        replace(member, update_digest=digest),
        weights=weights,
        chunks=chunks,
        spend_history=reply.spend_history if member.dp is not None else (),
    )


# ---------------------------------------------------------------------------------------- 5. evaluate
def tally(server_round: int, reports: Sequence[EvaluationReport], *, model_hash: str | None) -> Evaluation:
    """The round's accuracy and model hash from its members' evaluation reports.

    The round's model hash is the one most members report; its accuracy and loss are the
    example-weighted means over the members that evaluated that model (a member holding another
    model evaluated something else). In plaintext mode the coordinator knows the hash
    (``model_hash``): only reports of that model count.
    """
    hashes: Counter[str] = Counter(report.model_hash for report in reports)
    if len(hashes) > 1:
        log.warning("round %d: members disagree on the global model hash: %s", server_round, dict(hashes))
    consensus = hashes.most_common(1)[0][0] if hashes else None
    counted = [r for r in reports if r.model_hash == (model_hash if model_hash is not None else consensus)]
    if model_hash is not None and len(counted) < len(reports):
        log.warning("round %d: %d members evaluated another model", server_round, len(reports) - len(counted))
    disputes = tuple(report.dispute for report in reports if report.dispute is not None)
    total = sum(r.num_examples for r in counted)
    if model_hash is not None and consensus != model_hash:
        total = 0  # the members mostly hold another model: no accuracy for this one
    if total == 0:
        return Evaluation(model_hash=consensus, disputes=disputes)
    accuracy = sum(r.accuracy * r.num_examples for r in counted) / total
    loss = sum(r.loss * r.num_examples for r in counted) / total
    return Evaluation(accuracy, loss, consensus, disputes)


# ----------------------------------------------------------------------------------- 5. settle, record
def valid_dispute(dispute: Dispute, *, commitment: str, domain: SigningDomain) -> bool:
    """Whether ``dispute`` is signed by its member over the round's scalars commitment."""
    digest = dispute_digest(
        chain_id=domain.chain_id,
        ledger_address=domain.ledger_address,
        server_round=dispute.server_round,
        scalars_commitment=commitment,
    )
    try:
        return dispute.scalars_commitment == commitment and recover_signer(digest, dispute.signature) == dispute.member
    except SerializationError:
        return False


def settle_disputes(
    outcome: RoundOutcome, disputes: Sequence[tuple[Dispute, str]], *, domain: SigningDomain
) -> RoundOutcome:
    """A round with a valid dispute from one of its members is flagged and pays nobody.

    Disputes not signed over the round's scalars, or from non-members, are ignored (logged).
    The valid ones are the outcome's ``disputes``: the recorder relays them to the chain.
    """
    revealed = outcome.revealed
    commitment = revealed.commitment if revealed is not None else ZERO_HASH
    members = {m.address for m in outcome.members}
    valid = []
    for dispute, reason in disputes:
        if not valid_dispute(dispute, commitment=commitment, domain=domain):
            log.warning(
                "round %d: ignored a dispute from %s that is not signed over the round's scalars",
                outcome.server_round,
                dispute.member,
            )
        elif dispute.member in members:
            valid.append((dispute, reason))
    if not valid:
        return outcome
    detail = "; ".join(f"{dispute.member}: {reason}" for dispute, reason in valid)
    log.warning("round %d disputed: %s", outcome.server_round, detail)
    return replace(
        outcome,
        flagged=f"disputed: {detail}" + (f"; {outcome.flagged}" if outcome.flagged else ""),
        members=tuple(replace(m, score=0.0) for m in outcome.members),
        disputes=tuple(d for d, _ in valid),
    )


def round_record(outcome: RoundOutcome, *, reward_pool_wei: int) -> RoundRecord:
    """The round as the chain records it: statuses, scores, DP parameters, Merkle root, commitment."""
    revealed = outcome.revealed
    return RoundRecord(
        server_round=outcome.server_round,
        aggregate_hash=outcome.aggregate_hash or ZERO_HASH,
        model_hash=outcome.model_hash or ZERO_HASH,
        previous_model_hash=outcome.previous_model_hash or ZERO_HASH,
        members=tuple(
            MemberRoundRecord(
                address=m.address, score=m.score, dp=m.dp, epsilon=m.epsilon, status=_chain_status(m.status)
            )
            for m in outcome.members
        ),
        reward_pool_wei=reward_pool_wei,
        update_merkle_root=update_root(outcome.server_round, outcome.members),
        scalars_commitment=revealed.commitment if revealed is not None else ZERO_HASH,
    )


def update_leaves(server_round: int, members: Sequence[MemberRound]) -> list[tuple[MemberRound, bytes]]:
    """The Merkle leaves of the round's accepted signed-update digests, with their members."""
    return [
        (m, update_leaf(server_round, m.address, m.update_digest))
        for m in members
        if m.update_digest and m.status == "accepted"
    ]


def update_root(server_round: int, members: Sequence[MemberRound]) -> str:
    """Merkle root of the round's accepted signed-update digests (``ZERO_HASH`` when there are none)."""
    leaves = [leaf for _, leaf in update_leaves(server_round, members)]
    return "0x" + merkle_root(leaves).hex() if leaves else ZERO_HASH


# ------------------------------------------------------------------------------------------- helpers
def _unused(trained: Sequence[AcceptedUpdate], listed: Sequence[MemberRound], *, status: str) -> list[MemberRound]:
    """The members of ``trained`` not in ``listed``, with ``status`` and score 0 (they trained, they earn nothing)."""
    present = {member.address for member in listed}
    return [replace(u.member, status=status, score=0.0) for u in trained if u.member.address not in present]


def _chain_status(status: str) -> str:
    """A member-round's status as recorded on chain (:data:`fedchain.types.MEMBER_STATUSES`)."""
    if status.startswith("rejected"):
        return "rejected"
    if status not in MEMBER_STATUSES:
        raise FederationError(f"member-round status {status!r} cannot be recorded (known: {MEMBER_STATUSES})")
    return status


def stage_timer(into: dict[str, float], metrics: Any = None) -> StageClock:
    """A :class:`StageClock` that writes each stage's wall time into ``into`` (and ``metrics.time``)."""

    @contextlib.contextmanager
    def clock(stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            with metrics.time(stage) if metrics is not None else contextlib.nullcontext():
                yield
        finally:
            into[stage] = time.perf_counter() - started

    return clock
