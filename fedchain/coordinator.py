"""The coordinator's round loop: one readable loop, stages top to bottom.

Each round: instruct sampled members to train -> validate replies -> aggregate (plaintext with
the strategy's Flower aggregation, or by adding CKKS ciphertexts) -> score -> evaluate the new
global model on members -> reward and record on chain -> report. Failures of individual
members are data: they are counted by reason and the round goes on with the rest while at least
``min_members`` updates are accepted; otherwise the round is skipped and reported as skipped.

Under HE the coordinator holds the public CKKS context only. It never sees an individual update
or the plaintext model: it keeps each round's encrypted aggregate and sends members the ones
they have not applied yet; members report the resulting model hash from evaluation.

Example (inside a Flower ServerApp)::

    coordinator = Coordinator(config=config, strategy=strategy, initial_weights=weights)
    result = coordinator.run(grid)
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from fedchain._io import atomic_write_json
from fedchain.checkpoint import FINGERPRINT_FIELDS, Checkpoint
from fedchain.config import FedChainConfig
from fedchain.contribution import (
    InnerProducts,
    ScoringInputs,
    create_scorer,
    norm_bound_filter,
    withheld_scores,
)
from fedchain.contribution.base import Evaluate
from fedchain.contribution.bounds import dp_update_bound
from fedchain.contribution.committee import (
    CommitteeRequest,
    CommitteeVerdict,
    RevealedExchange,
    RevealedScalars,
    SignedAnswer,
    build_scalar_requests,
    canonical_json,
    reconcile,
    select_committee,
)
from fedchain.errors import (
    ConfigError,
    FedChainError,
    FederationError,
    LedgerError,
    ReplyRejectedError,
    SerializationError,
    StrategyError,
)
from fedchain.identity.merkle import merkle_proof, merkle_root, update_leaf
from fedchain.identity.signing import (
    NO_LEDGER,
    SigningDomain,
    dispute_digest,
    recover_signer,
    scalars_digest,
    update_digest,
)
from fedchain.ledger.base import RoundConflictError
from fedchain.protocol import (
    ERROR_COMMITTEE_REFUSED,
    TRAIN_ERROR_REASONS,
    chunks_to_record,
    record_to_chunks,
    record_to_weights,
)
from fedchain.results import RoundSummary, RunResult
from fedchain.serialization import Weights, check_weights, flatten, model_hash
from fedchain.types import (
    MEMBER_STATUSES,
    ZERO_HASH,
    Aggregate,
    Dispute,
    DPParams,
    MemberRound,
    MemberRoundRecord,
    Receipt,
    RoundRecord,
    record_to_json,
)

__all__ = ["Coordinator", "RecordSink", "RoundStrategy"]

log = logging.getLogger(__name__)

#: Exit status of a coordinator killed by fault injection.
KILLED_EXIT_CODE = 17
#: Largest example count a member may claim; more is treated as a lie.
MAX_EXAMPLES = 10**9


class RoundStrategy(Protocol):
    """What the loop needs of a strategy (see ``strategies.base.FedChainStrategy``)."""

    def configure_train(self, server_round: int, weights: Weights, config: ConfigRecord, grid: Grid) -> list[Message]:
        """Sample members and build their train instructions."""

    def configure_evaluate(
        self, server_round: int, weights: Weights, config: ConfigRecord, grid: Grid
    ) -> list[Message]:
        """Sample members and build their evaluate instructions."""

    def aggregate_plain(self, server_round: int, updates: Any) -> ArrayRecord:
        """Aggregate (weights, num_examples) pairs into the new global model."""

    def server_state(self) -> dict[str, Any]:
        """Arrays the strategy carries between rounds (checkpointed in plaintext mode)."""

    def load_server_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`server_state` output on resume."""


class RecordSink(Protocol):
    """Where rounds are recorded (``fedchain.ledger.Ledger``)."""

    def record_round(self, record: RoundRecord) -> Receipt:
        """Record ``record``; return the receipt with the rewards paid."""


@dataclass
class ScoringEvidence:
    """What the scorer may use in a round, gathered while aggregating.

    Attributes:
        deltas: plaintext mode: each kept member's update ``delta_i`` (flat).
        products: HE mode: the committee's agreed inner products.
        flagged: why the committee flagged the round ("" if it did not).
        base_weights: plaintext mode: the global model the round started from.
        excluded: members left out by the norm bound (score 0).
        revealed: HE mode: every scalar the committee revealed, with its signed answers.
    """

    deltas: dict[str, Any] | None = None
    products: InnerProducts | None = None
    flagged: str = ""
    base_weights: Weights | None = None
    excluded: list[MemberRound] = field(default_factory=list)
    revealed: RevealedScalars | None = None


@dataclass(frozen=True)
class AcceptedUpdate:
    """A validated member update of one round: plaintext weights or ciphertext chunks."""

    node_id: int
    member: MemberRound
    weights: Weights | None = None
    chunks: list[bytes] | None = None
    #: The member's whole privacy spend so far, ``(sigma, q, steps)`` per DP round, this one last.
    spend_history: tuple[tuple[float, float, int], ...] = ()


@dataclass
class Coordinator:
    """Runs the federation's rounds against a Flower ``Grid``.

    Attributes:
        config: the validated run configuration.
        strategy: sampling and (plaintext) aggregation.
        initial_weights: the round-0 global model (the members' seeded model under HE).
        public_context: the coordinator's public CKKS context; required when ``config.he``.
        ledger: where each completed round is recorded and paid; None records nothing.
        registered: addresses allowed to contribute (the ledger's registered members); None
            accepts any correctly signed update.
        on_round: called with each round's summary (progress display).
        metrics: a ``fedchain.telemetry.CoordinatorMetrics`` the loop reports to (``/metrics``); None: none.
    """

    config: FedChainConfig
    strategy: RoundStrategy
    initial_weights: Weights
    public_context: Any = None
    ledger: RecordSink | None = None
    registered: frozenset[str] | None = None
    on_round: Callable[[RoundSummary], None] | None = None
    weights: Weights = field(init=False)
    model_hash: str = field(init=False)
    aggregates: dict[int, Aggregate] = field(init=False, default_factory=dict)
    known_rounds: dict[int, int] = field(init=False, default_factory=dict)
    history: list[RoundSummary] = field(init=False, default_factory=list)
    _aggregate_records: dict[int, ArrayRecord] = field(init=False, default_factory=dict, repr=False)
    ledger_address: str | None = None
    metrics: Any = None  # fedchain.telemetry.CoordinatorMetrics
    validation: Callable[[Weights], Evaluate] | None = None
    #: The chain id of the ledger (0 without one) and the Flower run id (taken from the grid by
    #: :meth:`run`): with ``ledger_address``, the domain of every signature
    #: (:class:`~fedchain.identity.signing.SigningDomain`).
    chain_id: int = 0
    run_id: int = 0
    #: DP spends the chain holds per member address (read once from the ledger, then counted).
    _spend_counts: dict[str, int] = field(init=False, default_factory=dict, repr=False)
    #: The first round run after :meth:`restore` (its unrecorded spends are ``replayed``).
    _resumed_at: int = field(init=False, default=0, repr=False)
    #: Per round: the scalars the committee revealed (sent to members, committed on chain) and the
    #: valid disputes members returned with their evaluation.
    _revealed: dict[int, RevealedScalars] = field(init=False, default_factory=dict, repr=False)
    _disputes: dict[int, list[tuple[Dispute, str]]] = field(init=False, default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.config.he and self.public_context is None:
            raise FedChainError("HE is on: the coordinator needs the federation's public CKKS context")
        self._scorer = create_scorer(self.config.scorer)
        if self._scorer.needs_validation and self.validation is None:
            raise FederationError(f"scorer {self.config.scorer!r} needs a validation set: pass validation=")
        self.weights = dict(self.initial_weights)
        # Lineage starts at ZERO_HASH: round 1's "previous model" is the zero hash (as on chain).
        self.model_hash = ZERO_HASH
        self._vector_size = sum(array.size for array in self.weights.values())

    @property
    def domain(self) -> SigningDomain:
        """What every update of this run is signed under: a signature from elsewhere does not verify."""
        return SigningDomain(
            chain_id=self.chain_id, ledger_address=self.ledger_address or NO_LEDGER, run_id=self.run_id
        )

    # ------------------------------------------------------------------ loop
    def run(self, grid: Grid) -> RunResult:
        """Run every configured round after the last one done (see :meth:`restore`); return the results."""
        started = time.perf_counter()
        self.run_id = int(grid.run.run_id)  # the run members see in their own Context
        for server_round in range(len(self.history) + 1, self.config.rounds + 1):
            summary = self.run_round(grid, server_round)
            self.history.append(summary)
            if self.metrics is not None:
                self.metrics.observe_round(summary, epsilon_budget=self.config.epsilon if self.config.dp else None)
            if self.on_round is not None:
                self.on_round(summary)
        result = RunResult(config=self.config.to_dict(), rounds=list(self.history))
        result.model_hash = self.model_hash
        result.wall_seconds = time.perf_counter() - started
        return result

    def restore(self, checkpoint: Checkpoint) -> None:
        """Continue from a checkpoint; a round that was staged but not confirmed on chain is recorded now.

        Recording a staged round again is safe: the ledger returns the existing receipt for an
        identical recorded round and never pays twice.

        Raises:
            FederationError: the checkpoint belongs to another federation (options differ) or the
                chain's last round does not match it.
        """
        fingerprint = _fingerprint(self.config)
        if checkpoint.fingerprint != fingerprint:
            changed = sorted(k for k in fingerprint if checkpoint.fingerprint.get(k) != fingerprint[k])
            raise FederationError(f"cannot resume: options {changed} differ from the checkpointed run")
        if checkpoint.weights is not None:
            self.weights = checkpoint.weights
        if checkpoint.server_state:
            self.strategy.load_server_state(checkpoint.server_state)
        self.model_hash = checkpoint.model_hash
        self.aggregates = dict(checkpoint.aggregates)
        self.known_rounds = dict(checkpoint.known_rounds)
        self.history = [RoundSummary.from_dict(row) for row in checkpoint.rounds]
        if checkpoint.status == "staged" and self.history:
            summary = self.history[-1]
            log.warning("round %d was staged but not confirmed: recording it now", summary.server_round)
            if self.ledger is not None and checkpoint.record is not None:
                self._apply_receipt(summary, self._record_with_retries(checkpoint.record))
            self._checkpoint(summary, status="recorded")
        last = getattr(self.ledger, "last_round", None)
        if last is not None and last() != len(self.history):
            raise FederationError(
                f"cannot resume: the chain's last round is {last()}, the checkpoint's is {len(self.history)}"
            )
        self._resumed_at = len(self.history) + 1
        log.info("resuming after round %d", len(self.history))

    @contextlib.contextmanager
    def _timed(self, stage: str, summary: RoundSummary) -> Iterator[None]:
        """Time ``stage`` into ``summary.stage_seconds`` and, when on, the metrics."""
        started = time.perf_counter()
        try:
            with self.metrics.time(stage) if self.metrics is not None else contextlib.nullcontext():
                yield
        finally:
            summary.stage_seconds[stage] = time.perf_counter() - started

    def run_round(self, grid: Grid, server_round: int) -> RoundSummary:
        """One round: train, validate, aggregate, score, evaluate, record."""
        started = time.perf_counter()
        summary = RoundSummary(server_round=server_round, status="completed", previous_model_hash=self.model_hash)

        # 1. Train: sample members and send them the global model (or the aggregates they miss).
        config = ConfigRecord(
            {"model-round": server_round - 1, "ledger-address": self.ledger_address or "", "chain-id": self.chain_id}
        )
        sampled = _announce_cohort(self.strategy.configure_train(server_round, self.weights, config, grid))
        instructions = self._with_aggregates(sampled)
        with self._timed("train", summary):
            replies = list(grid.send_and_receive(instructions, timeout=self.config.round_timeout_s))
        self._maybe_die("replies", server_round)

        # 2. Validate: keep well-formed updates, count the rest by reason. Every signed update is a
        #    privacy spend the chain must show, whatever becomes of it (accepted, rejected, skipped),
        #    and so is any earlier spend the member reports that the chain lacks (a late reply).
        with self._timed("validate", summary):
            accepted = self._validate(server_round, replies, summary)
        trained = list(accepted)
        late_spends = self._unrecorded_spends(server_round, trained)
        if self.metrics is not None:
            failed = dict(summary.rejections)
            if len(replies) < len(instructions):
                failed["timeout"] = len(instructions) - len(replies)
            self.metrics.count_replies(
                "train",
                sampled=len(instructions),
                replied=sum(1 for r in replies if not r.has_error()),
                failed_by_reason=failed,
            )
            self.metrics.ciphertext_bytes(sum(len(c) for u in accepted for c in (u.chunks or [])))

        # 3. Aggregate: the HE sum drops updates whose ciphertexts do not load, and the norm bound
        #    drops oversized updates (plaintext norms, or the decrypt committee's scalars under HE).
        evidence = ScoringEvidence()
        if len(accepted) >= self.config.min_members:
            with self._timed("aggregate", summary):
                accepted, aggregate, evidence = self._aggregate(grid, server_round, accepted, summary)
        if len(accepted) < self.config.min_members:
            return self._skip(summary, trained, evidence.excluded, started, late_spends)
        self._maybe_die("aggregated", server_round)
        summary.aggregate_hash = aggregate.digest

        # 4. Score (a round the committee flagged pays nobody: its scores are withheld).
        with self._timed("score", summary):
            scores = self._score(server_round, accepted, evidence)
        summary.flagged = evidence.flagged
        summary.members = [replace(u.member, score=scores[u.member.address]) for u in accepted] + evidence.excluded
        summary.members += _unused(trained, summary.members, status="rejected:invalid")

        # 5. Evaluate the new global model on members; under HE they also report its hash.
        with self._timed("evaluate", summary):
            summary.accuracy, summary.loss, reported_hash = self._evaluate(grid, server_round)
        if not self.config.he:
            reported_hash = self.model_hash
        summary.model_hash = reported_hash or ZERO_HASH
        self.model_hash = summary.model_hash
        self._settle_disputes(summary)

        # 6. Reward and record (staged in the checkpoint first, so a crash cannot lose the round).
        summary.seconds = time.perf_counter() - started
        self._finish(summary, self.config.reward_pool_wei, late_spends)
        log.info(
            "round %d: accuracy %s, %d accepted, %.2f s",
            server_round,
            summary.accuracy,
            summary.accepted,
            summary.seconds,
        )
        return summary

    def _skip(
        self,
        summary: RoundSummary,
        trained: list[AcceptedUpdate],
        excluded: list[MemberRound],
        started: float,
        late_spends: list[MemberRoundRecord],
    ) -> RoundSummary:
        """Too few usable updates: the model stays, nobody is paid, and the chain records the skip.

        The members that trained are recorded with status ``skipped`` (or their rejection) and
        score 0: they spent privacy, and an auditor's epsilon must include it.
        """
        log.warning(
            "round %d skipped: %d usable updates, %d needed",
            summary.server_round,
            len(trained) - len(excluded),
            self.config.min_members,
        )
        summary.status = "skipped"
        summary.members = list(excluded) + _unused(trained, excluded, status="skipped")
        summary.aggregate_hash = ZERO_HASH
        summary.model_hash = self.model_hash
        summary.seconds = time.perf_counter() - started
        self._finish(summary, 0, late_spends)
        return summary

    def _unrecorded_spends(self, server_round: int, updates: list[AcceptedUpdate]) -> list[MemberRoundRecord]:
        """Spends members report that the chain does not show yet (a late reply, a replayed round).

        A member's reply carries its accountant's whole history; its last entry is this round's
        (recorded with the round). Entries between what the chain already holds for the member
        and this round's were charged in rounds whose reply never counted: they are recorded as
        ``late``, or ``replayed`` in the first round after a resume.
        """
        if self.ledger is None or not hasattr(self.ledger, "record_spends"):
            return []
        status = "replayed" if server_round == self._resumed_at else "late"
        spends: list[MemberRoundRecord] = []
        for update in updates:
            member, history = update.member, update.spend_history
            if member.dp is None or not history:
                continue
            on_chain = self._spends_on_chain(member.address)
            for sigma, sample_rate, steps in history[on_chain : len(history) - 1]:
                dp = DPParams(sigma, sample_rate, steps, member.dp.max_grad_norm, member.dp.delta)
                spends.append(MemberRoundRecord(address=member.address, score=0.0, dp=dp, status=status))
        return spends

    def _spends_on_chain(self, address: str) -> int:
        """How many DP member-rounds (with spends) the chain holds for ``address``; read once, then counted."""
        if address not in self._spend_counts:
            ledger: Any = self.ledger
            rounds = sum(1 for m in ledger.member_history(address) if m.dp is not None)
            later = sum(1 for spend in ledger.spends(address=address) if spend.dp is not None)
            self._spend_counts[address] = rounds + later
        return self._spend_counts[address]

    def _record_spends(self, server_round: int, records: RoundRecord | None, spends: list[MemberRoundRecord]) -> None:
        """After round ``server_round`` is recorded: record the late spends, and count every spend now on chain."""
        if records is not None:
            for member in records.members:
                if member.dp is not None and member.address in self._spend_counts:
                    self._spend_counts[member.address] += 1
        if not spends or self.ledger is None:
            return
        # A replayed spend belongs to this round (its lost first run); a late one to an earlier
        # round, at latest the previous one (the auditor orders spends by the round they name).
        spend_round = server_round if spends[0].status == "replayed" else max(1, server_round - 1)
        try:  # the batch id makes a retried batch harmless (Ledger.record_spends)
            self.ledger.record_spends(spend_round, spends, spend_id=f"fedchain-spends-{server_round}")  # type: ignore[attr-defined]
        except FedChainError as exc:  # counted again from the member's next reply
            log.warning("round %d: %d late privacy spends not recorded: %s", server_round, len(spends), exc)
            return
        for spend in spends:
            self._spend_counts[spend.address] = self._spend_counts.get(spend.address, 0) + 1
        log.info(
            "round %d: recorded %d privacy spends the chain lacked (%s)", server_round, len(spends), spends[0].status
        )

    # ---------------------------------------------------------- instructions
    def _with_aggregates(self, messages: Sequence[Message]) -> list[Message]:
        """Under HE, replace the plaintext model with the encrypted aggregates each member lacks."""
        if not self.config.he:
            return list(messages)
        out = []
        for message in messages:
            node_id = message.metadata.dst_node_id
            base = dict(message.content.config_records["config"])
            missing = sorted(k for k in self.aggregates if k > self.known_rounds.get(node_id, 0))
            config = ConfigRecord({**base, "agg-rounds": missing})
            content = RecordDict({"config": config})
            for agg_round in missing:
                aggregate = self.aggregates[agg_round]
                config[f"agg.{agg_round}.weight"] = aggregate.total_weight
                config[f"agg.{agg_round}.members"] = aggregate.members
                config[f"agg.{agg_round}.digest"] = aggregate.digest
                if agg_round not in self._aggregate_records:  # built once, shared by every member's message
                    self._aggregate_records[agg_round] = chunks_to_record(aggregate.ciphertext or ())
                content[f"agg.{agg_round}"] = self._aggregate_records[agg_round]
                if self.metrics is not None:
                    self.metrics.ciphertext_bytes(sum(map(len, aggregate.ciphertext or ())), direction="sent")
            out.append(Message(content, dst_node_id=node_id, message_type=message.metadata.message_type))
        return out

    # ---------------------------------------------------------------- stages
    def _validate(self, server_round: int, replies: list[Message], summary: RoundSummary) -> list[AcceptedUpdate]:
        accepted: list[AcceptedUpdate] = []
        reasons: Counter[str] = Counter()
        seen: set[str] = set()
        for reply in replies:
            node_id = reply.metadata.src_node_id
            if reply.has_error():
                reason = TRAIN_ERROR_REASONS.get(reply.error.code, "failed")
                reasons[reason] += 1
                log.info("round %d: node %d %s: %s", server_round, node_id, reason, reply.error.reason)
                continue
            try:
                update = self._parse_update(server_round, node_id, reply)
            except ReplyRejectedError as exc:
                reasons[exc.reason] += 1
                log.warning("round %d: node %d's update rejected (%s): %s", server_round, node_id, exc.reason, exc)
                continue
            except (FedChainError, KeyError, TypeError, ValueError) as exc:
                reasons["invalid"] += 1
                log.warning("round %d: node %d sent an invalid update: %s", server_round, node_id, exc)
                continue
            if update.member.address in seen:  # by address: the member id is only a claim
                reasons["duplicate"] += 1
                continue
            seen.add(update.member.address)
            accepted.append(update)
        summary.rejections = dict(reasons)
        return accepted

    def _parse_update(self, server_round: int, node_id: int, reply: Message) -> AcceptedUpdate:
        content = reply.content
        identity = content.config_records["member"]
        metrics = content.metric_records["metrics"]
        num_examples = metrics["num-examples"]
        if not isinstance(num_examples, int) or not 0 < num_examples <= MAX_EXAMPLES:
            raise ValueError(f"num-examples must be an int in [1, {MAX_EXAMPLES}], got {num_examples!r}")
        model_round = int(identity.get("model-round", server_round - 1))  # type: ignore[arg-type]
        self.known_rounds[node_id] = model_round
        if model_round != server_round - 1:
            raise ValueError(f"trained on the model of round {model_round}, not {server_round - 1}")
        dp = None
        if "epsilon" in metrics:
            dp = DPParams(
                noise_multiplier=float(metrics["noise-multiplier"]),  # type: ignore[arg-type]
                sample_rate=float(metrics["sample-rate"]),  # type: ignore[arg-type]
                steps=int(metrics["steps"]),  # type: ignore[arg-type]
                max_grad_norm=float(metrics["max-grad-norm"]),  # type: ignore[arg-type]
                delta=float(metrics["delta"]),  # type: ignore[arg-type]
            )
        member = MemberRound(
            member_id=int(identity["member-id"]),  # type: ignore[arg-type]
            address=str(identity["address"]),
            kind=str(identity.get("kind", "honest")),
            num_examples=num_examples,
            status="accepted",
            train_loss=float(metrics.get("train-loss", 0.0)),  # type: ignore[arg-type]
            epsilon=float(metrics["epsilon"]) if dp is not None else None,  # type: ignore[arg-type]
            dp=dp,
            noise=None if dp is None else ("seeded" if metrics.get("noise-seeded") else "secure"),
        )
        weights: Weights | None = None
        chunks: list[bytes] | None = None
        if self.config.he:
            if "update" not in content.array_records:
                raise SerializationError("HE is on but the reply carries no encrypted update")
            from fedchain import crypto

            chunks = record_to_chunks(content.array_records["update"])
            payload_hash = crypto.ciphertext_digest(chunks)
        else:
            weights = check_weights(record_to_weights(content.array_records["arrays"]), self.weights)
            payload_hash = model_hash(weights)
        digest = self._verify_signature(server_round, member, payload_hash, identity.get("signature"))
        history = _spend_history(metrics.get("spend-history")) if dp is not None else ()
        return AcceptedUpdate(
            node_id, replace(member, update_digest=digest), weights=weights, chunks=chunks, spend_history=history
        )

    def _verify_signature(self, server_round: int, member: MemberRound, payload_hash: str, signature: Any) -> str:
        """The update's digest, if ``signature`` is the claimed member's over exactly this update."""
        if self.registered is not None and member.address not in self.registered:
            raise ReplyRejectedError("unregistered", f"{member.address} is not a registered member")
        if not isinstance(signature, str) or not signature:
            raise ReplyRejectedError("unsigned", "the update carries no signature")
        digest = update_digest(
            domain=self.domain,
            server_round=server_round,
            address=member.address,
            payload_hash=payload_hash,
            num_examples=member.num_examples,
            dp=member.dp,
        )
        try:
            signer = recover_signer(digest, signature)
        except SerializationError as exc:
            raise ReplyRejectedError("bad-signature", str(exc)) from exc
        if signer != member.address:
            # a signature from another round, payload or key recovers to some other address
            raise ReplyRejectedError("bad-signature", f"signed by {signer}, not by the claimed {member.address}")
        return digest

    def _aggregate(
        self, grid: Grid, server_round: int, accepted: list[AcceptedUpdate], summary: RoundSummary
    ) -> tuple[list[AcceptedUpdate], Aggregate, ScoringEvidence]:
        if not self.config.he:
            return self._aggregate_plain(server_round, accepted, summary)
        return self._aggregate_encrypted(grid, server_round, accepted, summary)

    def _norm_bounds(self, updates: Sequence[AcceptedUpdate], num_params: int) -> dict[str, float]:
        """Each member's bound on ``||delta_i||``: ``norm-bound``, raised for DP members.

        A DP member's bound is at least what DP-SGD with its declared parameters can produce
        (:func:`~fedchain.contribution.bounds.dp_update_bound`), when those match the federation's.
        """
        if not self.config.dp:
            return dict.fromkeys((u.member.address for u in updates), self.config.norm_bound)
        from fedchain.privacy import declared_dp_problem, federation_dp_config  # imports Opacus

        dp_config = federation_dp_config(self.config)
        bounds: dict[str, float] = {}
        for update in updates:
            member, bound = update.member, self.config.norm_bound
            if member.dp is not None:
                problem = declared_dp_problem(
                    member.dp,
                    num_examples=member.num_examples,
                    config=dp_config,
                    epochs=self.config.dp_local_epochs,
                    batch_size=self.config.dp_batch_size,
                )
                if problem is None:
                    dp_bound = dp_update_bound(
                        member.dp,
                        num_examples=member.num_examples,
                        learning_rate=self.config.dp_learning_rate,
                        momentum=self.config.momentum,
                        num_params=num_params,
                    )
                    bound = max(bound, dp_bound)
                else:
                    log.warning("member %s: no DP allowance on the norm bound (%s)", member.address, problem)
            bounds[member.address] = bound
        return bounds

    def _aggregate_plain(
        self, server_round: int, accepted: list[AcceptedUpdate], summary: RoundSummary
    ) -> tuple[list[AcceptedUpdate], Aggregate, ScoringEvidence]:
        base = self.weights
        flat_base = flatten(base)
        deltas = {u.member.address: flatten(u.weights or {}) - flat_base for u in accepted}
        counts = {u.member.address: u.member.num_examples for u in accepted}
        excluded: list[str] = []
        if self.config.norm_bound > 0:
            sq_norms = {address: float(counts[address] ** 2 * (d @ d)) for address, d in deltas.items()}
            excluded = norm_bound_filter(sq_norms, counts, self._norm_bounds(accepted, flat_base.size))
        accepted, evidence = self._exclude(accepted, excluded, summary)
        if len(accepted) < self.config.min_members:
            return accepted, Aggregate(total_weight=0, digest=ZERO_HASH), evidence
        try:
            new_record = self.strategy.aggregate_plain(
                server_round, [(update.weights, update.member.num_examples) for update in accepted]
            )
            new_weights = check_weights(record_to_weights(new_record), self.weights)
        except (StrategyError, SerializationError) as exc:  # e.g. a NaN aggregate: keep the model, skip
            log.error("round %d: the strategy could not aggregate: %s", server_round, exc)
            summary.rejections["aggregation-failed"] = len(accepted)
            return [], Aggregate(total_weight=0, digest=ZERO_HASH), evidence
        self.weights = new_weights
        self.model_hash = model_hash(self.weights)
        evidence.deltas = {u.member.address: deltas[u.member.address] for u in accepted}
        evidence.base_weights = base
        total = sum(update.member.num_examples for update in accepted)
        return accepted, Aggregate(total_weight=total, digest=self.model_hash), evidence

    def _aggregate_encrypted(
        self, grid: Grid, server_round: int, accepted: list[AcceptedUpdate], summary: RoundSummary
    ) -> tuple[list[AcceptedUpdate], Aggregate, ScoringEvidence]:
        from fedchain import crypto

        evidence = ScoringEvidence()
        slots = crypto.context_slot_count(self.public_context)
        expected = crypto.chunk_count(self._vector_size, slots)
        try:
            chunks, rejected = crypto.sum_encrypted_valid(
                self.public_context,
                [update.chunks or [] for update in accepted],
                expected_chunks=expected,
                expected_length=self._vector_size,
            )
        except FedChainError as exc:
            log.warning("round %d: no encrypted update could be added: %s", server_round, exc)
            summary.rejections["invalid"] = summary.rejections.get("invalid", 0) + len(accepted)
            return [], Aggregate(total_weight=0, digest=ZERO_HASH), evidence
        for index, reason in rejected.items():
            log.warning("round %d: node %d's ciphertext rejected: %s", server_round, accepted[index].node_id, reason)
            summary.rejections["invalid"] = summary.rejections.get("invalid", 0) + 1
        kept = [update for index, update in enumerate(accepted) if index not in rejected]
        if self._committee_needed and kept:
            kept, chunks, evidence = self._committee_checks(grid, server_round, kept, chunks, summary)
        if not kept:
            return [], Aggregate(total_weight=0, digest=ZERO_HASH), evidence
        aggregate = Aggregate(
            total_weight=sum(update.member.num_examples for update in kept),
            digest=crypto.ciphertext_digest(chunks),
            ciphertext=tuple(chunks),
            members=len(kept),
        )
        if len(kept) >= self.config.min_members:
            self.aggregates[server_round] = aggregate
        return kept, aggregate, evidence

    @property
    def _committee_needed(self) -> bool:
        """Under HE with scoring keys: the committee decrypts norms (bound) and inner products (scorer)."""
        return self.config.he_scoring and (self._scorer.needs_scalars or self.config.norm_bound > 0)

    def _committee_checks(
        self, grid: Grid, server_round: int, kept: list[AcceptedUpdate], sum_chunks: list[bytes], summary: RoundSummary
    ) -> tuple[list[AcceptedUpdate], list[bytes], ScoringEvidence]:
        """Norm bound and scoring scalars under HE, decrypted by a committee of members.

        Only scalars are revealed: squared norms of each ``Enc(n_i delta_i)``, its inner product with
        the sum, and the sum's squared norm. An excluded update is dropped by re-summing the others
        (never by revealing "sum minus one member"). With the bound on, exchange 1 reveals the
        squared norms alone and exchange 2 the dot products against the *kept* sum, the aggregate
        members decrypt: every revealed scalar is one its member can recompute and check.
        """
        from fedchain import crypto

        want_dots = self._scorer.needs_scalars
        bound_on = self.config.norm_bound > 0
        chunks_by_member = {u.member.address: u.chunks or [] for u in kept}
        counts = {u.member.address: u.member.num_examples for u in kept}
        first_sum = sum_chunks if want_dots and not bound_on else None
        requests = build_scalar_requests(self.public_context, chunks_by_member, first_sum)
        verdict, exchange = self._ask_committee(grid, server_round, kept, requests, summary, exchange=1)
        revealed = [exchange]
        excluded = []
        if bound_on:
            excluded = verdict.excluded(counts, self._norm_bounds(kept, self._vector_size))
        kept, evidence = self._exclude(kept, excluded, summary)
        evidence.flagged = verdict.reason if verdict.disagreement else ""
        products = verdict.products
        if excluded and kept:
            sum_chunks = crypto.sum_encrypted(
                self.public_context,
                [u.chunks or [] for u in kept],
                expected_chunks=len(sum_chunks),
                expected_length=self._vector_size,
            )
        if want_dots and bound_on and kept and not evidence.flagged and verdict.products is not None:
            again = build_scalar_requests(
                self.public_context,
                {u.member.address: u.chunks or [] for u in kept},
                sum_chunks,
                sq_norms=False,
            )
            second, exchange = self._ask_committee(grid, server_round, kept, again, summary, exchange=2)
            revealed.append(exchange)
            if second.disagreement or second.products is None:
                evidence.flagged = second.reason
                products = None
            else:
                sq = {u.member.address: verdict.products.sq_norms[u.member.address] for u in kept}
                products = InnerProducts(
                    sq_norms=sq, dots=second.products.dots, agg_sq_norm=second.products.agg_sq_norm
                )
        evidence.products = products if want_dots else None
        evidence.revealed = RevealedScalars(server_round, tuple(revealed))
        self._revealed = {server_round: evidence.revealed}
        return kept, sum_chunks, evidence

    def _ask_committee(
        self,
        grid: Grid,
        server_round: int,
        kept: list[AcceptedUpdate],
        requests: list[Any],
        summary: RoundSummary,
        *,
        exchange: int,
    ) -> tuple[CommitteeVerdict[str], RevealedExchange]:
        """Send one exchange's labelled scalars to the round's committee; reconcile the signed answers.

        Waits ``committee-timeout-s`` at most. An answer counts only when it is signed by the
        committee member asked, over exactly this request and these values; refusals
        (``ERROR_COMMITTEE_REFUSED``), other errors, bad signatures and silence are counted in
        ``summary.rejections`` (``committee-refused``, ``committee-failed``, ``committee-bad-signature``,
        ``committee-timeout``) and flag the round.
        """
        node_of = {u.member.address: u.node_id for u in kept}
        committee = select_committee(
            list(node_of), self.config.committee_size, seed=self.config.seed, server_round=server_round
        )
        request = CommitteeRequest(server_round, exchange, tuple(requests))
        counts = [scalars.count for scalars in requests]
        config = ConfigRecord(
            {
                "server-round": server_round,
                "exchange": exchange,
                "scalar-kinds": [scalars.kind for scalars in requests],
                "scalar-counts": counts,
                "scalar-addresses": [address for scalars in requests for address in scalars.addresses],
                "chain-id": self.chain_id,
                "ledger-address": self.ledger_address or "",
            }
        )
        content = RecordDict({"config": config, "scalars": chunks_to_record([s.ciphertext for s in requests])})
        messages = [
            Message(content, dst_node_id=node_of[address], message_type=MessageType.QUERY) for address in committee
        ]
        replies = {
            reply.metadata.src_node_id: reply
            for reply in grid.send_and_receive(messages, timeout=self.config.committee_timeout_s)
        }
        problems: Counter[str] = Counter()
        answers: dict[str, list[list[float]] | None] = {}
        signed: list[SignedAnswer] = []
        for address in committee:
            reply = replies.get(node_of[address])
            answers[address] = None
            if reply is None:
                problems["committee-timeout"] += 1
                continue
            if reply.has_error():
                refused = reply.error.code == ERROR_COMMITTEE_REFUSED
                problems["committee-refused" if refused else "committee-failed"] += 1
                log.warning("round %d: committee member %s: %s", server_round, address, reply.error.reason)
                continue
            try:
                values = [float(v) for v in reply.content.metric_records["scalars"].get("values", [])]  # type: ignore[union-attr]
                signature = str(reply.content.config_records["answer"]["signature"])
                split, offset = [], 0
                for count in counts:
                    split.append(values[offset : offset + count])
                    offset += count
                if offset != len(values):
                    raise ValueError(f"{len(values)} scalars, {offset} requested")
                digest = scalars_digest(
                    domain=self.domain,
                    server_round=server_round,
                    exchange=exchange,
                    request_hash=request.request_hash,
                    values=split,
                )
                signer = recover_signer(digest, signature)
            except (KeyError, TypeError, ValueError, SerializationError) as exc:
                problems["committee-failed"] += 1
                log.warning("round %d: committee member %s sent a malformed answer: %s", server_round, address, exc)
                continue
            if signer != address:
                problems["committee-bad-signature"] += 1
                log.warning("round %d: committee answer of %s is signed by %s", server_round, address, signer)
                continue
            answers[address] = split
            signed.append(SignedAnswer(address, tuple(tuple(row) for row in split), signature))
        for reason, count in problems.items():
            summary.rejections[reason] = summary.rejections.get(reason, 0) + count
        if self.metrics is not None:
            failed = {"failed": sum(problems.values()) - problems["committee-timeout"]}
            failed["timeout"] = problems["committee-timeout"]
            self.metrics.count_replies("score", sampled=len(messages), replied=len(signed), failed_by_reason=failed)
        verdict = reconcile(requests, answers)
        return verdict, RevealedExchange(exchange, tuple(request.labels()), tuple(signed))

    def _exclude(
        self, updates: list[AcceptedUpdate], excluded: list[str], summary: RoundSummary
    ) -> tuple[list[AcceptedUpdate], ScoringEvidence]:
        """Drop updates above the norm bound; they stay in the round's records with score 0."""
        evidence = ScoringEvidence()
        if not excluded:
            return updates, evidence
        dropped = set(excluded)
        for update in updates:
            if update.member.address in dropped:
                log.warning(
                    "round %d: %s exceeds the norm bound: left out", summary.server_round, update.member.address
                )
                evidence.excluded.append(replace(update.member, status="rejected:norm-bound", score=0.0))
        summary.rejections["norm-bound"] = summary.rejections.get("norm-bound", 0) + len(dropped)
        return [u for u in updates if u.member.address not in dropped], evidence

    def _score(self, server_round: int, accepted: list[AcceptedUpdate], evidence: ScoringEvidence) -> dict[str, float]:
        counts = {u.member.address: u.member.num_examples for u in accepted}
        if evidence.flagged:
            log.warning("round %d: rewards withheld: %s", server_round, evidence.flagged)
            return withheld_scores(counts)
        evaluate = None
        if self._scorer.needs_validation and self.validation is not None and evidence.base_weights is not None:
            evaluate = self.validation(evidence.base_weights)
        inputs = ScoringInputs(
            num_examples=counts,
            deltas=evidence.deltas,
            products=evidence.products,
            evaluate=evaluate,
            seed=self.config.seed * 1_000_003 + server_round,
        )
        return self._scorer(inputs)

    def _evaluate(self, grid: Grid, server_round: int) -> tuple[float | None, float | None, str | None]:
        config = ConfigRecord(
            {"model-round": server_round, "ledger-address": self.ledger_address or "", "chain-id": self.chain_id}
        )
        revealed = self._revealed.get(server_round)
        if revealed is not None:  # every member checks the scalars that concern it (a dispute if wrong)
            config["revealed-scalars"] = canonical_json(revealed.to_json()).decode()
            config["scalars-commitment"] = revealed.commitment
        instructions = self._with_aggregates(self.strategy.configure_evaluate(server_round, self.weights, config, grid))
        if not instructions:
            return None, None, None
        replies = list(grid.send_and_receive(instructions, timeout=self.config.round_timeout_s))
        if self.metrics is not None:
            errors = sum(1 for r in replies if r.has_error())
            failed = {"failed": errors, "timeout": len(instructions) - len(replies)}
            self.metrics.count_replies(
                "evaluate", sampled=len(instructions), replied=len(replies) - errors, failed_by_reason=failed
            )
        tallies: dict[str, list[Any]] = {}  # model hash -> [examples, correct, loss sum]
        hashes: Counter[str] = Counter()
        for reply in replies:
            node_id = reply.metadata.src_node_id
            if reply.has_error():
                log.info("round %d: evaluation failed on node %d: %s", server_round, node_id, reply.error.reason)
                continue
            identity = reply.content.config_records["member"]
            metrics = reply.content.metric_records["metrics"]
            if int(identity.get("model-round", -1)) != server_round:  # type: ignore[arg-type]
                continue
            self.known_rounds[node_id] = server_round
            if "dispute-signature" in identity:
                self._take_dispute(server_round, identity)
            reported = str(identity.get("model-hash", ZERO_HASH))
            hashes[reported] += 1
            if not self.config.he and reported != self.model_hash:
                log.warning("round %d: node %d evaluated another model", server_round, node_id)
                continue
            n = int(metrics["num-examples"])  # type: ignore[arg-type]
            tally = tallies.setdefault(reported, [0, 0.0, 0.0])
            tally[0] += n
            tally[1] += float(metrics["accuracy"]) * n  # type: ignore[arg-type]
            tally[2] += float(metrics["loss"]) * n  # type: ignore[arg-type]
        if len(hashes) > 1:
            log.warning("round %d: members disagree on the global model hash: %s", server_round, dict(hashes))
        consensus = hashes.most_common(1)[0][0] if hashes else None
        # Accuracy is the consensus model's: a member holding another model evaluated something else.
        total, correct, loss = tallies.get(consensus or "", [0, 0.0, 0.0])
        if total == 0:
            return None, None, consensus
        return correct / total, loss / total, consensus

    def _take_dispute(self, server_round: int, identity: ConfigRecord) -> None:
        """Keep a member's dispute of the round's revealed scalars if it is signed by that member."""
        revealed = self._revealed.get(server_round)
        commitment = revealed.commitment if revealed is not None else ZERO_HASH
        address = str(identity.get("address", ""))
        dispute = Dispute(
            server_round=server_round,
            member=address,
            scalars_commitment=str(identity.get("dispute-commitment", "")),
            signature=str(identity.get("dispute-signature", "")),
        )
        digest = dispute_digest(
            chain_id=self.chain_id,
            ledger_address=self.ledger_address or NO_LEDGER,
            server_round=server_round,
            scalars_commitment=commitment,
        )
        try:
            valid = dispute.scalars_commitment == commitment and recover_signer(digest, dispute.signature) == address
        except SerializationError:
            valid = False
        if not valid:
            log.warning(
                "round %d: ignored a dispute from %s that is not signed over the round's scalars", server_round, address
            )
            return
        reason = str(identity.get("dispute-reason", ""))
        self._disputes.setdefault(server_round, []).append((dispute, reason))

    def _settle_disputes(self, summary: RoundSummary) -> None:
        """A disputed round is flagged and pays nobody; the disputes are relayed to the chain."""
        disputes = self._disputes.pop(summary.server_round, [])
        if not disputes:
            return
        members = {m.address for m in summary.members}
        disputes = [(d, reason) for d, reason in disputes if d.member in members]
        if not disputes:
            return
        detail = "; ".join(f"{dispute.member}: {reason}" for dispute, reason in disputes)
        log.warning("round %d disputed: %s", summary.server_round, detail)
        summary.flagged = f"disputed: {detail}" + (f"; {summary.flagged}" if summary.flagged else "")
        summary.members = [replace(m, score=0.0) for m in summary.members]
        file_dispute = getattr(self.ledger, "file_dispute", None)
        if file_dispute is None:
            if self.ledger is not None:
                log.warning(
                    "round %d: this ledger cannot take disputes: rewards withheld off chain only", summary.server_round
                )
            return
        for dispute, _ in disputes:
            try:
                file_dispute(dispute)
            except Exception as exc:  # e.g. the member filed it itself already
                log.warning(
                    "round %d: relaying the dispute of %s failed: %s", summary.server_round, dispute.member, exc
                )

    def _record_with_retries(self, record: RoundRecord) -> Receipt:
        """Record ``record``, retrying with exponential backoff; the round is held on disk until it lands.

        The record is written to ``out_dir/pending/round-N.json`` before the first attempt and removed
        once the receipt is in, so a round whose recording failed is never lost. Retrying is safe:
        ``Ledger.record_round`` returns the existing receipt for an identical recorded round and
        never pays twice.

        Raises:
            LedgerError: after ``chain_attempts`` failures, naming the round and the last error.
        """
        assert self.ledger is not None
        pending = self._pending_path(record.server_round)
        if pending is not None:
            atomic_write_json(pending, record_to_json(record))
        delay = self.config.chain_backoff_s
        for attempt in range(1, self.config.chain_attempts + 1):
            try:
                receipt = self.ledger.record_round(record)
                break
            except (ConfigError, RoundConflictError):
                raise  # the payload itself is wrong: retrying cannot help
            except Exception as exc:  # RPC down or slow, dropped or reverted transaction
                if attempt == self.config.chain_attempts:
                    raise LedgerError(
                        f"round {record.server_round} was not recorded after {attempt} attempts "
                        f"(last error: {exc}); it is held in {pending}"
                    ) from exc
                log.warning(
                    "round %d: recording failed (attempt %d/%d): %s; retrying in %.1f s",
                    record.server_round,
                    attempt,
                    self.config.chain_attempts,
                    exc,
                    delay,
                )
                time.sleep(delay)
                delay *= 2
        if pending is not None:
            pending.unlink(missing_ok=True)
        return receipt

    def _pending_path(self, server_round: int) -> Path | None:
        return Path(self.config.out_dir) / "pending" / f"round-{server_round}.json" if self.config.out_dir else None

    def _finish(
        self, summary: RoundSummary, reward_pool_wei: int, late_spends: Sequence[MemberRoundRecord] = ()
    ) -> None:
        """Stage the round in the checkpoint, record it on chain (and the late spends), then mark it recorded."""
        record = None
        if self.ledger is not None:
            record = RoundRecord(
                server_round=summary.server_round,
                aggregate_hash=summary.aggregate_hash or ZERO_HASH,
                model_hash=summary.model_hash or ZERO_HASH,
                previous_model_hash=summary.previous_model_hash or ZERO_HASH,
                members=tuple(
                    MemberRoundRecord(
                        address=m.address, score=m.score, dp=m.dp, epsilon=m.epsilon, status=_chain_status(m.status)
                    )
                    for m in summary.members
                ),
                reward_pool_wei=reward_pool_wei,
                update_merkle_root=_update_root(summary),
                scalars_commitment=self._scalars_commitment(summary.server_round),
            )
        self._checkpoint(summary, status="staged", record=record)
        if self.config.coordinator_dies_at("sent", summary.server_round) and hasattr(self.ledger, "on_sent"):
            # die after the transaction is sent, before its receipt is read
            self.ledger.on_sent = lambda tx_hash: self._maybe_die("sent", summary.server_round)  # type: ignore[union-attr]
        if record is not None:
            with self._timed("record", summary):
                receipt = self._record_with_retries(record)
            self._apply_receipt(summary, receipt)
            self._record_spends(summary.server_round, record, list(late_spends))
            if self.config.out_dir:
                write_inclusion_proofs(summary, self.config.out_dir)
        self._checkpoint(summary, status="recorded")

    def _scalars_commitment(self, server_round: int) -> str:
        """Commitment to the scalars the committee revealed in ``server_round`` (``ZERO_HASH``: none)."""
        revealed = self._revealed.get(server_round)
        return revealed.commitment if revealed is not None else ZERO_HASH

    def _maybe_die(self, point: str, server_round: int) -> None:
        """Fault injection (testing only): end the process abruptly, as a crash would."""
        if self.config.coordinator_dies_at(point, server_round):
            log.error("fault injection: coordinator killed at %s of round %d", point, server_round)
            logging.shutdown()
            os._exit(KILLED_EXIT_CODE)

    def _apply_receipt(self, summary: RoundSummary, receipt: Receipt) -> None:
        summary.tx_hash = receipt.tx_hash
        summary.gas_used = receipt.gas_used
        summary.block_number = receipt.block_number
        summary.treasury_wei = receipt.treasury_wei
        summary.members = [replace(m, reward_wei=receipt.rewards_wei.get(m.address, 0)) for m in summary.members]

    def _checkpoint(self, summary: RoundSummary, *, status: str, record: RoundRecord | None = None) -> None:
        if not self.config.out_dir:
            return
        rounds = [s.to_dict() for s in self.history if s.server_round < summary.server_round] + [summary.to_dict()]
        Checkpoint(
            server_round=summary.server_round,
            status=status,
            model_hash=self.model_hash,
            weights=None if self.config.he else self.weights,
            aggregates=self.aggregates,
            known_rounds=self.known_rounds,
            rounds=rounds,
            record=record,
            ledger_address=self.ledger_address,
            fingerprint=_fingerprint(self.config),
            server_state=None if self.config.he else self.strategy.server_state(),
        ).save(self.config.out_dir)


def _announce_cohort(messages: Sequence[Message]) -> list[Message]:
    """Tell each sampled member how many were sampled: a committee member reveals no more members' scalars."""
    for message in messages:
        message.content.config_records["config"]["cohort"] = len(messages)
    return list(messages)


def _spend_history(value: Any) -> tuple[tuple[float, float, int], ...]:
    """A reply's ``spend-history`` (flat ``sigma, q, steps`` triples) as entries; raises ValueError when malformed."""
    if value is None:
        return ()
    values = [float(v) for v in value]
    if len(values) % 3:
        raise ValueError(f"spend-history must hold (sigma, q, steps) triples, got {len(values)} values")
    entries = []
    for sigma, sample_rate, steps in zip(values[0::3], values[1::3], values[2::3], strict=True):
        if not (sigma > 0 and 0 < sample_rate <= 1 and steps >= 1 and steps == int(steps)):
            raise ValueError(f"spend-history entry ({sigma}, {sample_rate}, {steps}) is not a DP-SGD round")
        entries.append((sigma, sample_rate, int(steps)))
    return tuple(entries)


def _unused(trained: list[AcceptedUpdate], listed: Sequence[MemberRound], *, status: str) -> list[MemberRound]:
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


def _update_leaves(summary: RoundSummary) -> list[tuple[MemberRound, bytes]]:
    return [
        (m, update_leaf(summary.server_round, m.address, m.update_digest))
        for m in summary.members
        if m.update_digest and m.status == "accepted"
    ]


def _update_root(summary: RoundSummary) -> str:
    """Merkle root of the round's accepted signed-update digests (``ZERO_HASH`` when there are none)."""
    leaves = [leaf for _, leaf in _update_leaves(summary)]
    return "0x" + merkle_root(leaves).hex() if leaves else ZERO_HASH


def write_inclusion_proofs(summary: RoundSummary, out_dir: str | Path) -> None:
    """Write each member's digest and Merkle proof to ``out_dir/proofs/round-N/<address>.json``.

    A member (or anyone) verifies inclusion with
    ``fedchain audit prove --member ADDR --round N --proof-file FILE``.
    """
    entries = _update_leaves(summary)
    leaves = [leaf for _, leaf in entries]
    for index, (member, _) in enumerate(entries):
        proof = ["0x" + node.hex() for node in merkle_proof(leaves, index)]
        path = Path(out_dir) / "proofs" / f"round-{summary.server_round}" / f"{member.address}.json"
        atomic_write_json(path, {"round": summary.server_round, "digest": member.update_digest, "proof": proof})


def _fingerprint(config: FedChainConfig) -> dict[str, Any]:
    values = config.to_dict()
    return {name: values[name] for name in FINGERPRINT_FIELDS}
