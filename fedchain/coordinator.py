"""The coordinator: Flower I/O around the round pipeline.

Each round the coordinator samples members through the strategy, sends the train instructions and
decodes the replies; :class:`~fedchain.pipeline.RoundPipeline` then validates, bounds, aggregates,
scores, has members evaluate (through this module's evaluation port) and builds the round record;
:class:`~fedchain.recording.Recorder` stages, records and proves it. The decrypt committee is asked
through :class:`GridCommittee`, the pipeline's committee port over Flower's ``Grid``.

Why not Flower's ``Strategy.start``: under HE the coordinator never holds the model that
``start()`` passes around. It keeps Flower's sampling (``configure_train`` / ``configure_evaluate``)
and message I/O and nothing else (docs/architecture.md).

Under HE the coordinator holds the public CKKS context only. It never sees an individual update
or the plaintext model: it keeps each round's encrypted aggregate and sends members the ones
they have not applied yet; members report the resulting model hash from evaluation.

Replies are received as they arrive (:class:`Exchange`: Flower's ``push_messages`` and
``pull_messages``, a few replies at a time) until a hard deadline counted from the push: the
round's ``round-timeout-s`` for train and evaluate, ``committee-timeout-s`` for the committee.
Each instruction's Flower TTL ends with the deadline, so a member that comes late is not given
the work and its late reply is not stored; a reply that was not pulled by the deadline is never
read (later rounds pull only their own messages) and its member counts as a ``timeout``. Each
train reply is decoded and handed to the pipeline, which validates it and folds it into the
aggregate before the next one is pulled: the coordinator's memory does not grow with the
number of members (``bench/bench_memory.py``).

Example (inside a Flower ServerApp)::

    coordinator = Coordinator(config=config, strategy=strategy, initial_weights=weights)
    result = coordinator.run(grid)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid

from fedchain.checkpoint import Checkpoint, aggregate_on_disk, read_aggregate
from fedchain.config import FedChainConfig
from fedchain.contribution import create_scorer
from fedchain.contribution.base import Evaluate
from fedchain.contribution.committee import CommitteeRequest, canonical_json
from fedchain.envelope import pack, unpack
from fedchain.errors import FedChainError, FederationError, SerializationError
from fedchain.faults import CoordinatorFaults
from fedchain.identity.signing import NO_LEDGER, SigningDomain
from fedchain.pipeline import (
    AggregationStrategy,
    CommitteeReply,
    EncryptedAggregation,
    EvaluationReport,
    FailedReply,
    PlainAggregation,
    RoundOutcome,
    RoundPipeline,
    TrainReply,
    stage_timer,
)
from fedchain.pipeline.spool import remove_stale_spools
from fedchain.protocol import (
    CONFIG,
    ERROR_COMMITTEE_REFUSED,
    TRAIN_ERROR_REASONS,
    CommitteeQuery,
    EvaluateIns,
    EvaluateRes,
    SealedAggregate,
    TrainIns,
    config_record,
    decode_committee_answer,
    decode_evaluate_ins,
    decode_evaluate_res,
    decode_train_ins,
    decode_train_res,
    encode,
    record_to_weights,
)
from fedchain.recording import DurableState, Recorder, RecordSink, fingerprint
from fedchain.results import RoundSummary, RunResult
from fedchain.serialization import Weights
from fedchain.types import ZERO_HASH, Aggregate, Dispute, MemberRound

__all__ = ["Coordinator", "Exchange", "GridCommittee", "RecordSink", "RoundStrategy"]

log = logging.getLogger(__name__)

Instruction = TrainIns | EvaluateIns

#: Largest example count a member may claim; more is treated as a lie.
MAX_EXAMPLES = 10**9

#: Replies pulled at once: at most this many members' updates are in the coordinator's memory.
PULL_BATCH = 4
#: Reply polling: the first wait after an empty pull, its growth per empty pull, and its cap. A
#: reply that arrives soon is read within ~10 ms (a deployed round is a few exchanges of sub-second
#: member work: Flower's own 1-3 s polls made it 4x a simulated one); a long wait costs one pull
#: per member batch every quarter second.
POLL_FIRST_S = 0.01
POLL_BACKOFF = 1.5
POLL_MAX_S = 0.25

#: Instructions pushed together in one ``Grid.push_messages`` call hold up to this many bytes of
#: content (an instruction larger than that goes alone): a batch's messages are in memory at once,
#: and one call starts every member of a small federation together instead of one after another.
PUSH_BATCH_BYTES = 8 * 1024 * 1024

#: Seconds past the deadline an instruction stays on the SuperLink, so the last pull can read a
#: reply stored just before the deadline (Flower deletes an expired instruction with its reply).
TTL_GRACE_S = 2.0


class RoundStrategy(Protocol):
    """What the loop needs of a strategy (see ``strategies.base.FedChainStrategy``)."""

    def configure_train(self, server_round: int, weights: Weights, config: ConfigRecord, grid: Grid) -> list[Message]:
        """Sample members and build their train instructions."""
        ...

    def configure_evaluate(
        self, server_round: int, weights: Weights, config: ConfigRecord, grid: Grid
    ) -> list[Message]:
        """Sample members and build their evaluate instructions."""
        ...

    def aggregate_plain(self, server_round: int, updates: Any) -> ArrayRecord:
        """Aggregate (weights, num_examples) pairs into the new global model."""
        ...

    def server_state(self) -> dict[str, Any]:
        """Arrays the strategy carries between rounds (checkpointed in plaintext mode)."""
        ...

    def load_server_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`server_state` output on resume."""
        ...

    def member_update_rule(self, config: FedChainConfig) -> tuple[str, tuple[tuple[str, float], ...]]:
        """Under HE: the server-optimizer name and options members apply to each aggregate."""
        ...


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
        validation: the validation utility for scorers that need one (plaintext only).
        chain_id: the chain id of the ledger (0 without one); with ``ledger_address`` and the Flower
            run id (taken from the grid by :meth:`run`), the domain of every signature.
        faults: fault injection (tests and the simulation runner only; see ``fedchain.faults``).
    """

    config: FedChainConfig
    strategy: RoundStrategy
    initial_weights: Weights
    public_context: Any = None
    ledger: RecordSink | None = None
    registered: frozenset[str] | None = None
    on_round: Callable[[RoundSummary], None] | None = None
    ledger_address: str | None = None
    metrics: Any = None  # fedchain.telemetry.CoordinatorMetrics
    validation: Callable[[Weights], Evaluate] | None = None
    chain_id: int = 0
    run_id: int = 0
    faults: CoordinatorFaults | None = None
    weights: Weights = field(init=False)
    model_hash: str = field(init=False)
    aggregates: dict[int, Aggregate] = field(init=False, default_factory=dict)
    known_rounds: dict[int, int] = field(init=False, default_factory=dict)
    history: list[RoundSummary] = field(init=False, default_factory=list)
    recorder: Recorder = field(init=False)

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
        # Under HE members apply the strategy's server step to each aggregate: it travels with it.
        self._member_update = self.strategy.member_update_rule(self.config) if self.config.he else ("avg", ())
        self.recorder = Recorder(self.config, self.ledger, ledger_address=self.ledger_address, faults=self.faults)

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
        remove_stale_spools(self._spool_dir)  # left by a coordinator that crashed mid-round
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
        expected = fingerprint(self.config)
        if checkpoint.fingerprint != expected:
            changed = sorted(k for k in expected if checkpoint.fingerprint.get(k) != expected[k])
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
            self.history[-1] = self.recorder.record_staged(summary, checkpoint.record, self._durable(summary))
        last = getattr(self.ledger, "last_round", None)
        if last is not None and last() != len(self.history):
            raise FederationError(
                f"cannot resume: the chain's last round is {last()}, the checkpoint's is {len(self.history)}"
            )
        self.recorder.resumed_at = len(self.history) + 1
        log.info("resuming after round %d", len(self.history))

    def run_round(self, grid: Grid, server_round: int) -> RoundSummary:
        """One round: train (Flower I/O), then the pipeline, then the recorder."""
        started = time.perf_counter()
        timings: dict[str, float] = {}
        clock = stage_timer(timings, self.metrics)

        # 1. Train: sample members and send them the global model (or the aggregates they miss).
        ins = TrainIns(server_round, server_round - 1, chain_id=self.chain_id, ledger_address=self.ledger_address or "")
        sampled = self.strategy.configure_train(server_round, self.weights, config_record(ins), grid)
        instructions = self._instructions(sampled, decode_train_ins, ttl_s=self.config.round_timeout_s)
        exchange = Exchange(grid, instructions, timeout_s=self.config.round_timeout_s)  # pushed when iterated
        received = _Received()

        # 2. As each reply arrives (until the deadline): validate it and fold it into the aggregate.
        #    Then bound, aggregate, score, evaluate (members, through this coordinator), build the record.
        done = self.pipeline(grid).run(
            server_round,
            model=self.weights,
            previous_hash=self.model_hash,
            replies=self._train_replies(server_round, exchange, received),
            evaluation=_GridEvaluation(self, grid),
            clock=clock,
        )
        outcome = done.outcome
        self._report(outcome, sampled=exchange.sent, received=received)
        self.model_hash = outcome.model_hash or self.model_hash

        # 3. Reward and record (staged in the checkpoint first, so a crash cannot lose the round).
        summary = outcome.summary(seconds=time.perf_counter() - started, stage_seconds=timings)
        summary = self.recorder.finish(
            summary,
            done.record,
            state=self._durable(summary),
            disputes=outcome.disputes,
            late_spends=self.recorder.unrecorded_spends(server_round, outcome.trained),
            clock=stage_timer(summary.stage_seconds, self.metrics),
        )
        if outcome.status == "completed":
            log.info(
                "round %d: accuracy %s, %d accepted, %.2f s",
                server_round,
                summary.accuracy,
                summary.accepted,
                summary.seconds,
            )
        return summary

    def _train_replies(
        self, server_round: int, exchange: Exchange, received: _Received
    ) -> Iterator[TrainReply | FailedReply]:
        """Each train reply decoded as it arrives, then a ``timeout`` for each member silent at the deadline."""
        for reply in exchange:
            received.replied += not reply.has_error()
            decoded = self.decode_train_reply(server_round, reply)
            del reply  # the decoded reply holds the only copy of the payload
            if isinstance(decoded, TrainReply):
                received.ciphertext_bytes += sum(map(len, decoded.chunks or ()))
            yield decoded
            del decoded  # not held while the next reply is pulled
        for node_id in exchange.missing:
            log.warning("round %d: node %d did not reply within %s s", server_round, node_id, exchange.timeout_s)
            yield FailedReply(node_id, "timeout", f"no reply within round-timeout-s={exchange.timeout_s}")
        if self.faults is not None:
            self.faults.at("replies", server_round)

    @property
    def _spool_dir(self) -> str | None:
        """Where HE rounds with a committee spool members' ciphertexts (``<out-dir>/spool``)."""
        return str(Path(self.config.out_dir) / "spool") if self.config.out_dir else None

    def pipeline(self, grid: Grid | None = None) -> RoundPipeline:
        """The round pipeline of this run; its committee (under HE) asks members over ``grid``."""
        aggregation: AggregationStrategy
        if self.config.he:
            committee_needed = self.config.he_scoring and (self._scorer.needs_scalars or self.config.norm_bound > 0)
            committee = None
            if committee_needed and grid is not None:
                committee = GridCommittee(grid, self.domain, self.config.committee_timeout_s)
            aggregation = EncryptedAggregation(
                self.config,
                self.public_context,
                self._vector_size,
                domain=self.domain,
                committee=committee,
                want_dots=self._scorer.needs_scalars,
                spool_dir=self._spool_dir,
            )
        else:
            aggregation = PlainAggregation(self.config, self.weights, self._combine)
        return RoundPipeline(
            config=self.config,
            scorer=self._scorer,
            aggregation=aggregation,
            domain=self.domain,
            registered=self.registered,
            validation=self.validation,
            faults=self.faults,
        )

    def _combine(self, server_round: int, updates: list[tuple[Weights, int]]) -> Weights:
        """The strategy's plaintext aggregation (Flower's), as the pipeline's aggregation step."""
        return record_to_weights(self.strategy.aggregate_plain(server_round, updates))

    def _adopt(self, outcome: RoundOutcome) -> None:
        """Make the round's model the global one before members evaluate it."""
        aggregation = outcome.aggregation
        if aggregation is None:
            return
        if aggregation.weights is not None:
            self.weights = aggregation.weights
            self.model_hash = outcome.model_hash or self.model_hash
        if aggregation.aggregate is not None and aggregation.aggregate.ciphertext is not None:
            self._spill_aggregates()
            self.aggregates[outcome.server_round] = aggregation.aggregate

    def _spill_aggregates(self) -> None:
        """Drop from memory the aggregates the checkpoint holds: only the latest one stays (see :meth:`_sealed_for`)."""
        out_dir = self.config.out_dir
        for agg_round, aggregate in list(self.aggregates.items()):
            if out_dir and aggregate.ciphertext is not None and aggregate_on_disk(out_dir, agg_round):
                self.aggregates[agg_round] = replace(aggregate, ciphertext=None)

    def _durable(self, summary: RoundSummary) -> DurableState:
        return DurableState(
            model_hash=self.model_hash,
            weights=None if self.config.he else self.weights,
            aggregates=self.aggregates,
            known_rounds=self.known_rounds,
            server_state=None if self.config.he else self.strategy.server_state(),
            earlier_rounds=tuple(s.to_dict() for s in self.history if s.server_round < summary.server_round),
        )

    def _report(self, outcome: RoundOutcome, *, sampled: int, received: _Received) -> None:
        """Reply counts and ciphertext bytes of the round's train and committee stages."""
        if self.metrics is None:
            return
        failed = dict(outcome.replies_rejected)  # timeouts included
        self.metrics.count_replies("train", sampled=sampled, replied=received.replied, failed_by_reason=failed)
        self.metrics.ciphertext_bytes(received.ciphertext_bytes)
        for exchange in outcome.aggregation.exchanges if outcome.aggregation is not None else ():
            timeouts = exchange.problems.get("committee-timeout", 0)
            failed = {"failed": sum(exchange.problems.values()) - timeouts, "timeout": timeouts}
            answered = len(exchange.revealed.answers)
            self.metrics.count_replies("score", sampled=exchange.asked, replied=answered, failed_by_reason=failed)

    # ----------------------------------------------------------------- wire
    def _instructions(
        self, messages: Sequence[Message], ins: Callable[[RecordDict], Instruction], *, ttl_s: float
    ) -> Iterator[Message]:
        """The strategy's sampled messages as fedchain instructions (``fedchain.protocol``), built one at a time.

        A train instruction tells each member how many were sampled (a committee member reveals no
        more members' scalars). Under HE the plaintext model is replaced by the encrypted aggregates
        each member lacks. Each expires ``ttl_s`` (the stage's deadline) plus :data:`TTL_GRACE_S`
        after it is sent: a member that comes later does not get it.
        """
        for message in messages:
            node_id = message.metadata.dst_node_id
            instruction = ins(RecordDict({CONFIG: message.content.config_records[CONFIG]}))
            if isinstance(instruction, TrainIns):
                instruction = replace(instruction, cohort=len(messages))
            if self.config.he:
                content = encode(replace(instruction, aggregates=self._sealed_for(node_id)))
            else:  # the strategy's model record travels as it built it
                content = RecordDict({**message.content, CONFIG: config_record(instruction)})
            message_type = message.metadata.message_type
            yield Message(content, dst_node_id=node_id, message_type=message_type, ttl=ttl_s + TTL_GRACE_S)

    def _sealed_for(self, node_id: int) -> tuple[SealedAggregate, ...]:
        """The encrypted aggregates ``node_id`` has not applied yet, in round order."""
        sealed = []
        for agg_round in sorted(k for k in self.aggregates if k > self.known_rounds.get(node_id, 0)):
            aggregate = self.aggregates[agg_round]
            # An older round's aggregate is read back from the checkpoint (digest checked) for a member that missed it.
            chunks = aggregate.ciphertext or read_aggregate(self.config.out_dir, agg_round, aggregate.digest)
            update, options = self._member_update
            sealed.append(
                SealedAggregate(
                    agg_round, chunks, aggregate.total_weight, aggregate.digest, aggregate.members, update, options
                )
            )
            if self.metrics is not None:
                self.metrics.ciphertext_bytes(sum(map(len, chunks)), direction="sent")
        return tuple(sealed)

    def decode_train_reply(self, server_round: int, reply: Message) -> TrainReply | FailedReply:
        """A train reply as the pipeline takes it; what does not decode is a failed reply (``invalid``)."""
        node_id = reply.metadata.src_node_id
        if reply.has_error():
            return FailedReply(node_id, TRAIN_ERROR_REASONS.get(reply.error.code, "failed"), reply.error.reason or "")
        try:
            res = decode_train_res(reply.content)
            if not 0 < res.num_examples <= MAX_EXAMPLES:
                raise ValueError(f"num-examples must be an int in [1, {MAX_EXAMPLES}], got {res.num_examples!r}")
            model_round = server_round - 1 if res.member.model_round is None else res.member.model_round
            self.known_rounds[node_id] = model_round
            if self.config.he and res.update is None:
                raise SerializationError("HE is on but the reply carries no encrypted update")
            if not self.config.he and res.arrays is None:
                raise SerializationError("HE is off but the reply carries no plaintext weights")
        except (FedChainError, ValueError) as exc:
            log.warning("round %d: node %d sent an invalid update: %s", server_round, node_id, exc)
            return FailedReply(node_id, "invalid", str(exc))
        dp = res.dp
        member = MemberRound(
            member_id=res.member.member_id,
            address=res.member.address,
            kind=res.member.kind,
            num_examples=res.num_examples,
            status="accepted",
            train_loss=res.train_loss,
            epsilon=dp.epsilon if dp is not None else None,
            dp=dp.params if dp is not None else None,
            noise=None if dp is None else ("seeded" if dp.noise_seeded else "secure"),
        )
        return TrainReply(
            node_id,
            member,
            model_round=model_round,
            signature=res.member.signature or "",
            weights=res.arrays if not self.config.he else None,
            chunks=res.update if self.config.he else None,
            spend_history=dp.spend_history if dp is not None else (),
        )

    def _evaluate(self, grid: Grid, outcome: RoundOutcome) -> list[EvaluationReport]:
        """Adopt the round's model and have members evaluate it (the pipeline tallies their reports)."""
        self._adopt(outcome)
        server_round = outcome.server_round
        revealed = outcome.revealed  # every member checks the scalars that concern it (a dispute if wrong)
        config = config_record(
            EvaluateIns(
                server_round,
                model_round=server_round,
                chain_id=self.chain_id,
                ledger_address=self.ledger_address or "",
                revealed_scalars=canonical_json(revealed.to_json()).decode() if revealed is not None else None,
                scalars_commitment=revealed.commitment if revealed is not None else None,
            )
        )
        sampled = self.strategy.configure_evaluate(server_round, self.weights, config, grid)
        if not sampled:
            return []
        instructions = self._instructions(sampled, decode_evaluate_ins, ttl_s=self.config.round_timeout_s)
        exchange = Exchange(grid, instructions, timeout_s=self.config.round_timeout_s)
        replies = list(exchange)
        if self.metrics is not None:
            errors = sum(1 for r in replies if r.has_error())
            failed = {"failed": errors, "timeout": len(exchange.missing)}
            self.metrics.count_replies(
                "evaluate", sampled=exchange.sent, replied=len(replies) - errors, failed_by_reason=failed
            )
        reports = []
        for reply in replies:
            node_id = reply.metadata.src_node_id
            if reply.has_error():
                log.info("round %d: evaluation failed on node %d: %s", server_round, node_id, reply.error.reason)
                continue
            try:
                res = decode_evaluate_res(reply.content)
            except SerializationError as exc:
                log.warning("round %d: node %d sent a malformed evaluation: %s", server_round, node_id, exc)
                continue
            if res.member.model_round != server_round:
                continue
            self.known_rounds[node_id] = server_round
            model_hash = res.member.model_hash or ZERO_HASH
            dispute = decode_dispute(server_round, res)
            reports.append(EvaluationReport(model_hash, res.num_examples, res.accuracy, res.loss, dispute))
        return reports


class Exchange:
    """Messages pushed to members, their replies pulled as they arrive until a hard deadline.

    Iterating pushes the messages in batches of up to :data:`PUSH_BATCH_BYTES` of content, one
    Flower ``Grid.push_messages`` call each (``messages`` may be a generator, built as it is
    pushed: at most a batch and the next instruction are in memory), and yields each reply as
    ``Grid.pull_messages`` returns it, :data:`PULL_BATCH` messages' replies at a time, so the
    caller can use and drop a reply before the next ones are read. It stops when every message is
    answered or ``timeout_s`` after the last push, whichever comes first, after one last pull at
    the deadline: nothing a member does can make it wait longer. :attr:`missing` then lists the
    nodes without a reply; a reply that stands for an expired instruction (Flower's
    ``MESSAGE_UNAVAILABLE`` error) counts as missing. Iterate once.

    Example (inside a ServerApp)::

        exchange = Exchange(grid, messages, timeout_s=30.0)
        for reply in exchange:
            ...
        late = exchange.missing
    """

    def __init__(self, grid: Grid, messages: Iterable[Message], *, timeout_s: float) -> None:
        self.grid = grid
        self.timeout_s = timeout_s
        #: Nodes whose message got no reply by the deadline (filled when the iteration ends).
        self.missing: list[int] = []
        #: Messages pushed (filled when the iteration starts).
        self.sent = 0
        self._messages: Iterable[Message] | None = messages

    def __iter__(self) -> Iterator[Message]:
        if self._messages is None:
            raise RuntimeError("an Exchange is iterated once")
        pending: dict[str, int] = {}  # message id -> node id
        for instructions in _push_batches(self._messages, PUSH_BATCH_BYTES):
            self.sent += len(instructions)
            self._push(instructions, pending)
            del instructions  # their payloads are on the SuperLink now
        self._messages = None
        deadline = time.monotonic() + self.timeout_s
        final = False
        poll_s = POLL_FIRST_S
        while pending and not final:
            final = time.monotonic() >= deadline
            arrived = False
            ids = list(pending)
            for start in range(0, len(ids), PULL_BATCH):
                if not final and time.monotonic() >= deadline:
                    break  # the deadline passed mid-sweep: one last full pull, then stop
                batch = [i for i in ids[start : start + PULL_BATCH] if i in pending]
                replies = list(self.grid.pull_messages(batch)) if batch else []
                while replies:
                    reply = replies.pop(0)
                    node_id = pending.pop(reply.metadata.reply_to_message_id, -1)
                    if node_id == -1:
                        continue  # not one of ours, or already answered
                    arrived = True
                    if reply.has_error() and reply.error.code == ErrorCode.MESSAGE_UNAVAILABLE:
                        self.missing.append(node_id)  # the instruction expired (or the node left)
                        continue
                    if reply.has_content():
                        _open_envelope(reply, node_id)
                    yield reply
                    del reply
            if arrived:
                poll_s = POLL_FIRST_S
            elif pending and not final:
                time.sleep(max(0.0, min(poll_s, deadline - time.monotonic())))
                poll_s = min(poll_s * POLL_BACKOFF, POLL_MAX_S)
        self.missing += pending.values()

    def _push(self, batch: list[Message], pending: dict[str, int]) -> None:
        """Push ``batch`` in one Flower call; note each pushed message in ``pending``, the others as missing."""
        # Both grids set the id of each message they push and return the ids of those they stored
        # (Flower's HTTP grid "" or None for one it could not store, its in-memory grid leaves it out).
        stored = set(self.grid.push_messages(batch))
        for message in batch:
            node_id = message.metadata.dst_node_id
            message_id = message.metadata.message_id
            if message_id and message_id in stored:
                pending[message_id] = node_id
            else:
                log.warning("the message to node %d could not be pushed", node_id)
                self.missing.append(node_id)


def _push_batches(messages: Iterable[Message], max_bytes: int) -> Iterator[list[Message]]:
    """``messages``, each packed (:func:`fedchain.envelope.pack`), in batches of at most ``max_bytes`` of content.

    A message larger than ``max_bytes`` is a batch of its own; ``messages`` is read one ahead.
    """
    batch: list[Message] = []
    batch_bytes = 0
    for message in messages:
        if message.has_content():
            message.content = pack(message.content)  # one Flower object for all its records
        size = _content_bytes(message)
        if batch and batch_bytes + size > max_bytes:
            yield batch
            batch, batch_bytes = [], 0
        batch.append(message)
        batch_bytes += size
    if batch:
        yield batch


def _content_bytes(message: Message) -> int:
    """The bytes a message's records hold: arrays' data, bytes and string values (nothing is copied)."""
    if not message.has_content():
        return 0
    total = 0
    for record in message.content.values():
        if isinstance(record, ArrayRecord):
            total += sum(len(array.data) for array in record.values())
        elif isinstance(record, ConfigRecord):
            for value in record.values():
                items = value if isinstance(value, list) else [value]
                total += sum(len(item) for item in items if isinstance(item, (bytes, str)))
    return total


def _open_envelope(reply: Message, node_id: int) -> None:
    """Replace a reply's envelope by its records; a malformed one by no records (the decoders refuse it)."""
    try:
        reply.content = unpack(reply.content)
    except SerializationError as exc:
        log.warning("node %d sent a malformed envelope: %s", node_id, exc)
        reply.content = RecordDict()


@dataclass
class _Received:
    """What the train stage received: replies without an error, and ciphertext bytes (for metrics)."""

    replied: int = 0
    ciphertext_bytes: int = 0


@dataclass(frozen=True)
class _GridEvaluation:
    """The pipeline's evaluation port over Flower's Grid (the coordinator's evaluate round trip)."""

    coordinator: Coordinator
    grid: Grid

    def evaluate(self, outcome: RoundOutcome) -> list[EvaluationReport]:
        return self.coordinator._evaluate(self.grid, outcome)


@dataclass(frozen=True)
class GridCommittee:
    """The pipeline's committee port over Flower's Grid: one QUERY message per committee member.

    Attributes:
        grid: the run's Flower Grid.
        domain: the run's signing domain (its chain id and ledger go into the request).
        timeout_s: how long to wait for the committee (``committee-timeout-s``).
    """

    grid: Grid
    domain: SigningDomain
    timeout_s: float

    def ask(self, request: CommitteeRequest, nodes: Mapping[str, int]) -> dict[str, CommitteeReply]:
        """Send ``request`` to each committee member; decode what comes back within the timeout."""
        ledger = "" if self.domain.ledger_address == NO_LEDGER else self.domain.ledger_address
        query = CommitteeQuery.of(
            request.server_round,
            request.exchange,
            request.requests,
            chain_id=self.domain.chain_id,
            ledger_address=ledger,
        )
        content = encode(query)
        ttl = self.timeout_s + TTL_GRACE_S
        messages = [
            Message(content, dst_node_id=node, message_type=MessageType.QUERY, ttl=ttl) for node in nodes.values()
        ]
        replies = {r.metadata.src_node_id: r for r in Exchange(self.grid, messages, timeout_s=self.timeout_s)}
        return {address: _committee_reply(replies[node]) for address, node in nodes.items() if node in replies}


def _committee_reply(reply: Message) -> CommitteeReply:
    if reply.has_error():
        refused = reply.error.code == ERROR_COMMITTEE_REFUSED
        problem = "committee-refused" if refused else "committee-failed"
        return CommitteeReply(problem=problem, detail=reply.error.reason or "")
    try:
        answer = decode_committee_answer(reply.content)
    except SerializationError as exc:
        return CommitteeReply(problem="committee-failed", detail=f"a malformed answer: {exc}")
    return CommitteeReply(values=answer.values, signature=answer.signature)


def decode_dispute(server_round: int, res: EvaluateRes) -> tuple[Dispute, str] | None:
    """A member's dispute of the round's revealed scalars, as sent (the pipeline checks its signature)."""
    if res.dispute is None:
        return None
    claim = res.dispute
    dispute = Dispute(server_round, res.member.address, claim.scalars_commitment, claim.signature)
    return dispute, claim.reason
