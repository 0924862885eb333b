"""One round of the coordinator, top to bottom, on frozen values and without Flower.

The coordinator (``fedchain.coordinator``) does the Flower I/O: it samples members, sends the train
instructions and decodes the replies. Everything it then decides about the round happens here::

    TrainReply | FailedReply (decoded by the coordinator, fedchain.protocol)
      │ 1. validate      signature over exactly this update, registration, model round, duplicates
      ▼
    AcceptedUpdate (one per member)
      │ 2. bound         norm bound per member (raised for DP members: dp_update_bound)
      │ 3. aggregate     PlainAggregation (the strategy's Flower aggregation)
      │                  or EncryptedAggregation (ciphertext sum + decrypt committee, a CommitteePort)
      ▼
    Aggregation ─ too few updates? ─► skipped RoundOutcome (nobody paid; spends still recorded)
      │ 4. score         the run's scorer (withheld when the committee flagged the round)
      ▼
    RoundOutcome ──► EvaluationPort (coordinator: members evaluate the new model, report its hash
      │                               and any signed dispute of the revealed scalars)
      │ 5. settle        a valid dispute flags the round and zeroes its scores
      │ 6. record        RoundRecord (statuses, Merkle root of signed digests, scalars commitment)
      ▼
    Round(outcome, record) ──► fedchain.recording.Recorder (stage, record with retries, proofs)

What needs the network comes in as a port (a ``typing.Protocol``, like Flower's ``Grid``):
:class:`CommitteePort` asks the decrypt committee, :class:`EvaluationPort` asks members to evaluate.
Tests answer them in process (``tests/test_pipeline.py``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from fedchain.config import FedChainConfig
from fedchain.contribution import InnerProducts, ScoringInputs, norm_bound_filter, withheld_scores
from fedchain.contribution.base import ContributionScorer, Evaluate
from fedchain.contribution.bounds import dp_update_bound
from fedchain.contribution.committee import (
    CommitteeRequest,
    CommitteeVerdict,
    RevealedExchange,
    RevealedScalars,
    ScalarRequest,
    SignedAnswer,
    build_scalar_requests,
    reconcile,
    select_committee,
)
from fedchain.errors import FedChainError, FederationError, ReplyRejectedError, SerializationError, StrategyError
from fedchain.faults import CoordinatorFaults
from fedchain.identity.merkle import merkle_root, update_leaf
from fedchain.identity.signing import SigningDomain, dispute_digest, recover_signer, scalars_digest, update_digest
from fedchain.results import RoundSummary
from fedchain.serialization import Weights, check_weights, flatten, model_hash
from fedchain.types import (
    MEMBER_STATUSES,
    ZERO_HASH,
    Aggregate,
    Dispute,
    MemberRound,
    MemberRoundRecord,
    RoundRecord,
)

__all__ = [
    "AcceptedUpdate",
    "Aggregation",
    "AggregationStrategy",
    "CommitteeReply",
    "CommitteeExchange",
    "CommitteePort",
    "EncryptedAggregation",
    "Evaluation",
    "EvaluationPort",
    "FailedReply",
    "PlainAggregation",
    "Round",
    "RoundOutcome",
    "RoundPipeline",
    "TrainReply",
    "ask_committee",
    "member_norm_bounds",
    "round_record",
    "settle_disputes",
    "valid_dispute",
    "validate",
]

log = logging.getLogger(__name__)

Spend = tuple[float, float, int]


# ------------------------------------------------------------------------------------------- values
@dataclass(frozen=True)
class TrainReply:
    """A member's train reply as decoded from the wire; nothing in it is trusted yet.

    Attributes:
        node_id: the Flower node that sent it (where the committee and evaluation reach it).
        member: the member's claims (id, address, kind, examples, DP figures); status ``accepted``.
        model_round: the round of the global model the member says it trained from.
        signature: the member's EIP-191 signature of the update digest ("" when unsigned).
        weights: plaintext mode: the member's weights after training.
        chunks: HE mode: ciphertext chunks of ``n_i * delta_i``.
        spend_history: the member's whole DP spend history, ``(sigma, q, steps)`` per round, this one last.
    """

    node_id: int
    member: MemberRound
    model_round: int
    signature: str = ""
    weights: Weights | None = None
    chunks: tuple[bytes, ...] | None = None
    spend_history: tuple[Spend, ...] = ()


@dataclass(frozen=True)
class FailedReply:
    """A train reply that carries no usable update: an error reply, or one that does not decode.

    ``reason`` is the metrics label (``declined``, ``refused-policy``, ``failed``, ``invalid``, ...).
    """

    node_id: int
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class AcceptedUpdate:
    """A validated member update of one round: plaintext weights or ciphertext chunks."""

    node_id: int
    member: MemberRound
    weights: Weights | None = None
    chunks: list[bytes] | tuple[bytes, ...] | None = None
    #: The member's whole privacy spend so far, ``(sigma, q, steps)`` per DP round, this one last.
    spend_history: tuple[Spend, ...] = ()


@dataclass(frozen=True)
class CommitteeReply:
    """One committee member's reply as decoded: its scalars and signature, or what went wrong.

    Attributes:
        values: every scalar of the reply, in request order (flat); empty on a problem.
        signature: the member's signature over the values ("" on a problem).
        problem: "" for an answer; ``committee-refused`` (it refused the request) or
            ``committee-failed`` (any other error, or a reply that does not decode).
        detail: the member's reason or the decoding error.
    """

    values: tuple[float, ...] = ()
    signature: str = ""
    problem: str = ""
    detail: str = ""


class CommitteePort(Protocol):
    """The network, as the committee stage needs it (the coordinator implements it over Flower's Grid)."""

    def ask(self, request: CommitteeRequest, nodes: Mapping[str, int]) -> Mapping[str, CommitteeReply]:
        """Send ``request`` to each committee member and wait (``committee-timeout-s`` at most).

        Args:
            request: the round, exchange and labelled scalar ciphertexts.
            nodes: committee member address -> its node id.

        Returns:
            Each address that replied -> its decoded answer; a silent member is absent.
        """
        ...


@dataclass(frozen=True)
class CommitteeExchange:
    """One exchange with the committee: the verdict, what it revealed and what went wrong (by reason)."""

    verdict: CommitteeVerdict[str]
    revealed: RevealedExchange
    problems: Mapping[str, int]
    asked: int


@dataclass(frozen=True)
class Aggregation:
    """What the bound and aggregation stages leave for scoring.

    Attributes:
        kept: the updates in the aggregate.
        excluded: members left out by the norm bound (``rejected:norm-bound``, score 0).
        aggregate: the weighted sum; None when too few updates were left to aggregate.
        rejections: updates dropped here, by reason (``invalid``, ``norm-bound``, ``committee-*``, ...).
        weights: plaintext mode: the new global model.
        deltas: plaintext mode: each kept member's flat ``delta_i`` (for the scorer).
        products: HE mode: the committee's agreed inner products (None without a scorer that needs them).
        flagged: why the committee flagged the round ("" if it did not).
        revealed: HE mode: every scalar the committee revealed, with its signed answers.
        exchanges: each committee exchange's tally (for metrics).
    """

    kept: tuple[AcceptedUpdate, ...]
    excluded: tuple[MemberRound, ...] = ()
    aggregate: Aggregate | None = None
    rejections: Mapping[str, int] = field(default_factory=dict)
    weights: Weights | None = None
    deltas: Mapping[str, np.ndarray] | None = None
    products: InnerProducts | None = None
    flagged: str = ""
    revealed: RevealedScalars | None = None
    exchanges: tuple[CommitteeExchange, ...] = ()


class AggregationStrategy(Protocol):
    """Bound and aggregate one round's validated updates: :class:`PlainAggregation` or :class:`EncryptedAggregation`."""

    def aggregate(self, server_round: int, updates: Sequence[AcceptedUpdate]) -> Aggregation:
        """Drop what cannot be aggregated or exceeds the norm bound, and sum the rest.

        Returns an :class:`Aggregation` whose ``aggregate`` is None when fewer than ``min-members``
        updates are left (the round is then skipped). Never raises for a member's bad update.
        """
        ...


@dataclass(frozen=True)
class RoundOutcome:
    """One round as decided: replaces the mutable summary the loop used to fill in.

    Attributes:
        server_round: the round.
        status: ``"completed"`` or ``"skipped"``.
        previous_model_hash: the model hash the round started from.
        model_hash: the round's model (plaintext: known after aggregation; HE: the members' report).
        aggregate_hash: digest of the aggregate (``ZERO_HASH`` for a skipped round).
        members: every member that trained, with its status and score.
        rejections: replies and updates not used, by reason.
        flagged: why the round pays nobody ("" if it pays).
        aggregation: the bound and aggregation stages' result (the new model or ciphertext sum).
        accuracy: the consensus model's example-weighted accuracy from federated evaluation.
        loss: its example-weighted evaluation loss.
        disputes: the valid disputes of its members (relayed to the chain by the recorder).
        trained: every validated update, used or not (each is a privacy spend the chain must show).
        replies_rejected: the train replies the validation stage refused, by reason.
    """

    server_round: int
    status: str
    previous_model_hash: str
    model_hash: str | None
    aggregate_hash: str
    members: tuple[MemberRound, ...]
    rejections: Mapping[str, int]
    flagged: str = ""
    aggregation: Aggregation | None = None
    accuracy: float | None = None
    loss: float | None = None
    disputes: tuple[Dispute, ...] = ()
    trained: tuple[AcceptedUpdate, ...] = ()
    replies_rejected: Mapping[str, int] = field(default_factory=dict)

    @property
    def revealed(self) -> RevealedScalars | None:
        """Every scalar the committee revealed this round (None when it was not asked)."""
        return self.aggregation.revealed if self.aggregation is not None else None

    def summary(self, *, seconds: float = 0.0, stage_seconds: Mapping[str, float] | None = None) -> RoundSummary:
        """The round as ``result.json`` shows it (before recording: no transaction yet)."""
        return RoundSummary(
            server_round=self.server_round,
            status=self.status,
            accuracy=self.accuracy,
            loss=self.loss,
            model_hash=self.model_hash,
            previous_model_hash=self.previous_model_hash,
            aggregate_hash=self.aggregate_hash,
            seconds=seconds,
            members=list(self.members),
            rejections=dict(self.rejections),
            flagged=self.flagged,
            stage_seconds=dict(stage_seconds or {}),
        )


@dataclass(frozen=True)
class Evaluation:
    """What members reported after evaluating the round's model.

    Attributes:
        accuracy: example-weighted accuracy of the consensus model (None: nobody evaluated it).
        loss: example-weighted loss of the consensus model.
        model_hash: the model hash most members reported (None: no report).
        disputes: members' signed disputes of the revealed scalars, with their reasons (unchecked).
    """

    accuracy: float | None = None
    loss: float | None = None
    model_hash: str | None = None
    disputes: tuple[tuple[Dispute, str], ...] = ()


class EvaluationPort(Protocol):
    """The network, as the evaluation stage needs it (the coordinator implements it over Flower's Grid)."""

    def evaluate(self, outcome: RoundOutcome) -> Evaluation:
        """Send members the round's model and the scalars revealed about them; collect their reports.

        The model is the outcome's plaintext weights, or under HE the aggregates each member lacks;
        the coordinator adopts it as the global model when it sends it.
        """
        ...


@dataclass(frozen=True)
class Round:
    """A finished round: the outcome and the record to put on chain."""

    outcome: RoundOutcome
    record: RoundRecord


class StageClock(Protocol):
    """Times a stage: ``with clock("aggregate"): ...`` (the coordinator's metrics and summary)."""

    def __call__(self, stage: str) -> AbstractContextManager[None]: ...


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
        replies: Sequence[TrainReply | FailedReply],
        evaluation: EvaluationPort,
        clock: StageClock = _untimed,
    ) -> Round:
        """One round after the train replies are in: validate, bound, aggregate, score, evaluate, record.

        Args:
            server_round: the round.
            model: the global model the round started from (plaintext mode; the template under HE).
            previous_hash: its hash (``ZERO_HASH`` before round 1).
            replies: the decoded train replies.
            evaluation: asks members to evaluate the round's model.
            clock: times each stage.
        """
        # 1. Validate: keep well-formed signed updates, count the rest by reason.
        with clock("validate"):
            accepted, validated = validate(
                replies, server_round=server_round, model=model, domain=self.domain, registered=self.registered
            )

        # 2-3. Bound and aggregate: drop updates that cannot be summed or exceed the norm bound.
        aggregation = Aggregation(kept=tuple(accepted))
        if len(accepted) >= self.config.min_members:
            with clock("aggregate"):
                aggregation = self.aggregation.aggregate(server_round, accepted)
        rejections = _merged(validated, aggregation.rejections)
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
            report = evaluation.evaluate(outcome)
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
    replies: Sequence[TrainReply | FailedReply],
    *,
    server_round: int,
    model: Weights,
    domain: SigningDomain,
    registered: frozenset[str] | None,
) -> tuple[list[AcceptedUpdate], dict[str, int]]:
    """Keep the updates signed by their registered member over exactly this round and payload.

    Returns:
        The accepted updates (one per address, first wins) and the other replies counted by
        reason: the failed replies' own, ``unregistered``, ``unsigned``, ``bad-signature``,
        ``invalid`` (stale model, malformed weights) and ``duplicate``.
    """
    accepted: list[AcceptedUpdate] = []
    reasons: Counter[str] = Counter()
    seen: set[str] = set()
    for reply in replies:
        if isinstance(reply, FailedReply):
            reasons[reply.reason] += 1
            log.info("round %d: node %d %s: %s", server_round, reply.node_id, reply.reason, reply.detail)
            continue
        try:
            update = _accept(reply, server_round=server_round, model=model, domain=domain, registered=registered)
        except ReplyRejectedError as exc:
            reasons[exc.reason] += 1
            log.warning("round %d: node %d's update rejected (%s): %s", server_round, reply.node_id, exc.reason, exc)
            continue
        except (FedChainError, KeyError, TypeError, ValueError) as exc:
            reasons["invalid"] += 1
            log.warning("round %d: node %d sent an invalid update: %s", server_round, reply.node_id, exc)
            continue
        if update.member.address in seen:  # by address: the member id is only a claim
            reasons["duplicate"] += 1
            continue
        seen.add(update.member.address)
        accepted.append(update)
    return accepted, dict(reasons)


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


# ------------------------------------------------------------------------------------------- 2. bound
def member_norm_bounds(members: Sequence[MemberRound], *, config: FedChainConfig, num_params: int) -> dict[str, float]:
    """Each member's bound on ``||delta_i||``: ``norm-bound``, raised for DP members.

    A DP member's bound is at least what DP-SGD with its declared parameters can produce
    (:func:`~fedchain.contribution.bounds.dp_update_bound`), when those match the federation's.
    The DP check is the one place the coordinator's side asks ``fedchain.privacy`` (Opacus).
    """
    if not config.dp:
        return dict.fromkeys((m.address for m in members), config.norm_bound)
    from fedchain.privacy.config import federation_dp_config
    from fedchain.privacy.epsilon import declared_dp_problem  # no torch, no Opacus (RDP)

    dp_config = federation_dp_config(config)
    bounds: dict[str, float] = {}
    for member in members:
        bound = config.norm_bound
        if member.dp is not None:
            problem = declared_dp_problem(
                member.dp,
                num_examples=member.num_examples,
                config=dp_config,
                epochs=config.dp_local_epochs,
                batch_size=config.dp_batch_size,
            )
            if problem is None:
                dp_bound = dp_update_bound(
                    member.dp,
                    num_examples=member.num_examples,
                    learning_rate=config.dp_learning_rate,
                    momentum=config.momentum,
                    num_params=num_params,
                )
                bound = max(bound, dp_bound)
            else:
                log.warning("member %s: no DP allowance on the norm bound (%s)", member.address, problem)
        bounds[member.address] = bound
    return bounds


def _exclude(
    server_round: int, updates: Sequence[AcceptedUpdate], excluded: Sequence[str]
) -> tuple[list[AcceptedUpdate], tuple[MemberRound, ...], dict[str, int]]:
    """Drop updates above the norm bound; they stay in the round's records with score 0."""
    if not excluded:
        return list(updates), (), {}
    dropped = set(excluded)
    out = []
    for update in updates:
        if update.member.address in dropped:
            log.warning("round %d: %s exceeds the norm bound: left out", server_round, update.member.address)
            out.append(replace(update.member, status="rejected:norm-bound", score=0.0))
    kept = [u for u in updates if u.member.address not in dropped]
    return kept, tuple(out), {"norm-bound": len(dropped)}


# --------------------------------------------------------------------------------------- 3. aggregate
@dataclass(frozen=True)
class PlainAggregation:
    """Plaintext mode: the norm bound on plaintext deltas, then the strategy's Flower aggregation.

    Attributes:
        config: the run configuration (``norm-bound``, ``min-members``, DP settings).
        model: the global model the round starts from.
        combine: the strategy's aggregation, ``(round, [(weights, n_i)]) -> weights`` (raises
            ``StrategyError`` or ``SerializationError`` when it cannot aggregate).
    """

    config: FedChainConfig
    model: Weights
    combine: Callable[[int, list[tuple[Weights, int]]], Weights]

    def aggregate(self, server_round: int, updates: Sequence[AcceptedUpdate]) -> Aggregation:
        """Bound, then aggregate with the strategy (see :class:`AggregationStrategy`)."""
        flat_base = flatten(self.model)
        deltas = {u.member.address: flatten(u.weights or {}) - flat_base for u in updates}
        counts = {u.member.address: u.member.num_examples for u in updates}
        too_large: list[str] = []
        if self.config.norm_bound > 0:
            sq_norms = {address: float(counts[address] ** 2 * (d @ d)) for address, d in deltas.items()}
            bounds = member_norm_bounds([u.member for u in updates], config=self.config, num_params=flat_base.size)
            too_large = norm_bound_filter(sq_norms, counts, bounds)
        kept, excluded, rejections = _exclude(server_round, updates, too_large)
        if len(kept) < self.config.min_members:
            return Aggregation(kept=tuple(kept), excluded=excluded, rejections=rejections)
        try:
            combined = self.combine(server_round, [(u.weights or {}, u.member.num_examples) for u in kept])
            weights = check_weights(combined, self.model)
        except (StrategyError, SerializationError) as exc:  # e.g. a NaN aggregate: keep the model, skip
            log.error("round %d: the strategy could not aggregate: %s", server_round, exc)
            return Aggregation(
                kept=(), excluded=excluded, rejections=_merged(rejections, {"aggregation-failed": len(kept)})
            )
        total = sum(u.member.num_examples for u in kept)
        return Aggregation(
            kept=tuple(kept),
            excluded=excluded,
            aggregate=Aggregate(total_weight=total, digest=model_hash(weights)),
            rejections=rejections,
            weights=weights,
            deltas={u.member.address: deltas[u.member.address] for u in kept},
        )


@dataclass(frozen=True)
class EncryptedAggregation:
    """HE mode: add the ciphertexts (no secret key); the committee decrypts norms and scoring scalars.

    Attributes:
        config: the run configuration.
        public_context: the coordinator's public CKKS context.
        vector_size: parameters in the model (the plaintext length of every update).
        domain: what the committee's answers are signed under (required with a committee).
        committee: the decrypt committee; None when the run needs none (addition-only keys, no
            bound, no scorer that needs scalars).
        want_dots: whether the scorer needs the inner products with the sum.
    """

    config: FedChainConfig
    public_context: Any
    vector_size: int
    domain: SigningDomain | None = None
    committee: CommitteePort | None = None
    want_dots: bool = False

    def aggregate(self, server_round: int, updates: Sequence[AcceptedUpdate]) -> Aggregation:
        """Sum the ciphertexts that load; bound and score through the committee (see :class:`AggregationStrategy`)."""
        from fedchain import crypto

        slots = crypto.context_slot_count(self.public_context)
        expected = crypto.chunk_count(self.vector_size, slots)
        try:
            chunks, rejected = crypto.sum_encrypted_valid(
                self.public_context,
                [list(u.chunks or []) for u in updates],
                expected_chunks=expected,
                expected_length=self.vector_size,
            )
        except FedChainError as exc:
            log.warning("round %d: no encrypted update could be added: %s", server_round, exc)
            return Aggregation(kept=(), rejections={"invalid": len(updates)})
        for index, reason in rejected.items():
            log.warning("round %d: node %d's ciphertext rejected: %s", server_round, updates[index].node_id, reason)
        rejections = {"invalid": len(rejected)} if rejected else {}
        kept = [u for index, u in enumerate(updates) if index not in rejected]
        result = Aggregation(kept=tuple(kept), rejections=rejections)
        if self.committee is not None and kept:
            result, chunks = self._committee_checks(server_round, kept, chunks, result)
        if not result.kept:
            return replace(result, kept=())
        aggregate = Aggregate(
            total_weight=sum(u.member.num_examples for u in result.kept),
            digest=crypto.ciphertext_digest(chunks),
            ciphertext=tuple(chunks),
            members=len(result.kept),
        )
        return replace(result, aggregate=aggregate)

    def _committee_checks(
        self, server_round: int, kept: list[AcceptedUpdate], sum_chunks: list[bytes], result: Aggregation
    ) -> tuple[Aggregation, list[bytes]]:
        """Norm bound and scoring scalars under HE, decrypted by a committee of members.

        Only scalars are revealed: squared norms of each ``Enc(n_i delta_i)``, its inner product with
        the sum, and the sum's squared norm. An excluded update is dropped by re-summing the others
        (never by revealing "sum minus one member"). With the bound on, exchange 1 reveals the
        squared norms alone and exchange 2 the dot products against the *kept* sum, the aggregate
        members decrypt: every revealed scalar is one its member can recompute and check.
        """
        from fedchain import crypto

        assert self.committee is not None
        bound_on = self.config.norm_bound > 0
        counts = {u.member.address: u.member.num_examples for u in kept}
        first_sum = sum_chunks if self.want_dots and not bound_on else None
        requests = build_scalar_requests(self.public_context, _chunks_of(kept), first_sum)
        first = self._ask(server_round, 1, kept, requests)
        exchanges = [first]
        excluded: list[str] = []
        if bound_on:
            bounds = member_norm_bounds([u.member for u in kept], config=self.config, num_params=self.vector_size)
            excluded = first.verdict.excluded(counts, bounds)
        kept, dropped, bound_rejections = _exclude(server_round, kept, excluded)
        flagged = first.verdict.reason if first.verdict.disagreement else ""
        products = first.verdict.products
        if excluded and kept:
            sum_chunks = crypto.sum_encrypted(
                self.public_context,
                [list(u.chunks or []) for u in kept],
                expected_chunks=len(sum_chunks),
                expected_length=self.vector_size,
            )
        if self.want_dots and bound_on and kept and not flagged and first.verdict.products is not None:
            again = build_scalar_requests(self.public_context, _chunks_of(kept), sum_chunks, sq_norms=False)
            second = self._ask(server_round, 2, kept, again)
            exchanges.append(second)
            if second.verdict.disagreement or second.verdict.products is None:
                flagged = second.verdict.reason
                products = None
            else:
                sq = {u.member.address: first.verdict.products.sq_norms[u.member.address] for u in kept}
                products = InnerProducts(
                    sq_norms=sq, dots=second.verdict.products.dots, agg_sq_norm=second.verdict.products.agg_sq_norm
                )
        rejections: Mapping[str, int] = result.rejections
        for exchange in exchanges:
            rejections = _merged(rejections, exchange.problems)
        return (
            replace(
                result,
                kept=tuple(kept),
                excluded=dropped,
                rejections=_merged(rejections, bound_rejections),
                products=products if self.want_dots else None,
                flagged=flagged,
                revealed=RevealedScalars(server_round, tuple(e.revealed for e in exchanges)),
                exchanges=tuple(exchanges),
            ),
            sum_chunks,
        )

    def _ask(
        self, server_round: int, exchange: int, kept: Sequence[AcceptedUpdate], requests: list[ScalarRequest]
    ) -> CommitteeExchange:
        assert self.committee is not None and self.domain is not None
        return ask_committee(
            self.committee,
            domain=self.domain,
            server_round=server_round,
            exchange=exchange,
            nodes={u.member.address: u.node_id for u in kept},
            requests=requests,
            committee_size=self.config.committee_size,
            seed=self.config.seed,
        )


def _chunks_of(updates: Sequence[AcceptedUpdate]) -> dict[str, list[bytes]]:
    return {u.member.address: list(u.chunks or []) for u in updates}


def ask_committee(
    port: CommitteePort,
    *,
    domain: SigningDomain,
    server_round: int,
    exchange: int,
    nodes: Mapping[str, int],
    requests: Sequence[ScalarRequest],
    committee_size: int,
    seed: int,
) -> CommitteeExchange:
    """Ask one exchange's labelled scalars of the round's committee; reconcile the signed answers.

    An answer counts only when it is signed by the committee member asked, over exactly this
    request and these values; refusals, other errors, bad signatures and silence are counted by
    reason (``committee-refused``, ``committee-failed``, ``committee-bad-signature``,
    ``committee-timeout``) and flag the round.
    """
    committee = select_committee(list(nodes), committee_size, seed=seed, server_round=server_round)
    request = CommitteeRequest(server_round, exchange, tuple(requests))
    counts = [scalars.count for scalars in requests]
    replies = port.ask(request, {address: nodes[address] for address in committee})
    problems: Counter[str] = Counter()
    answers: dict[str, list[list[float]] | None] = {}
    signed: list[SignedAnswer] = []
    for address in committee:
        reply = replies.get(address)
        answers[address] = None
        if reply is None:
            problems["committee-timeout"] += 1
            continue
        if reply.problem:
            problems[reply.problem] += 1
            log.warning("round %d: committee member %s: %s", server_round, address, reply.detail)
            continue
        try:
            values = list(reply.values)
            split, offset = [], 0
            for count in counts:
                split.append(values[offset : offset + count])
                offset += count
            if offset != len(values):
                raise ValueError(f"{len(values)} scalars, {offset} requested")
            digest = scalars_digest(
                domain=domain,
                server_round=server_round,
                exchange=exchange,
                request_hash=request.request_hash,
                values=split,
            )
            signer = recover_signer(digest, reply.signature)
        except (KeyError, TypeError, ValueError, SerializationError) as exc:
            problems["committee-failed"] += 1
            log.warning("round %d: committee member %s sent a malformed answer: %s", server_round, address, exc)
            continue
        if signer != address:
            problems["committee-bad-signature"] += 1
            log.warning("round %d: committee answer of %s is signed by %s", server_round, address, signer)
            continue
        answers[address] = split
        signed.append(SignedAnswer(address, tuple(tuple(row) for row in split), reply.signature))
    verdict = reconcile(requests, answers)
    revealed = RevealedExchange(exchange, tuple(request.labels()), tuple(signed))
    return CommitteeExchange(verdict, revealed, dict(problems), asked=len(committee))


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


def _merged(first: Mapping[str, int], second: Mapping[str, int]) -> dict[str, int]:
    merged = dict(first)
    for reason, count in second.items():
        if count:
            merged[reason] = merged.get(reason, 0) + count
    return merged


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
