"""The coordinator's round loop: one readable loop, stages top to bottom.

Each round: sample and instruct members (train) -> validate replies -> aggregate -> score ->
evaluate the new global model on members -> reward and record -> report. Failures of
individual members are data: they are counted by reason and the round goes on with the rest
while at least ``min_members`` updates are accepted; otherwise the round is skipped and recorded
as skipped in the results.

Example (inside a Flower ServerApp)::

    coordinator = Coordinator(config=config, strategy=strategy, initial_weights=weights)
    result = coordinator.run(grid)
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.serverapp import Grid

from fedchain.config import FedChainConfig
from fedchain.contribution import data_size_scores
from fedchain.errors import FedChainError
from fedchain.protocol import ERROR_BUDGET_EXHAUSTED, record_to_weights
from fedchain.results import RoundSummary, RunResult
from fedchain.serialization import Weights, check_weights, model_hash
from fedchain.types import ZERO_HASH, MemberRound

__all__ = ["Coordinator", "RoundStrategy"]

log = logging.getLogger(__name__)

#: Largest example count a member may claim; more is treated as a lie.
MAX_EXAMPLES = 10**9


class RoundStrategy(Protocol):
    """What the loop needs of a strategy (see ``strategies.base.FedChainStrategy``)."""

    name: str

    def configure_train(self, server_round: int, weights: Weights, config: ConfigRecord, grid: Grid) -> list[Message]:
        """Sample members and build their train instructions."""

    def configure_evaluate(
        self, server_round: int, weights: Weights, config: ConfigRecord, grid: Grid
    ) -> list[Message]:
        """Sample members and build their evaluate instructions."""

    def aggregate_plain(self, server_round: int, updates: Any) -> ArrayRecord:
        """Aggregate (weights, num_examples) pairs into the new global model."""


@dataclass(frozen=True)
class AcceptedUpdate:
    """A validated member update of one round."""

    node_id: int
    member: MemberRound
    weights: Weights


@dataclass
class Coordinator:
    """Runs the federation's rounds against a Flower ``Grid``.

    Attributes:
        config: the validated run configuration.
        strategy: sampling and (plaintext) aggregation.
        initial_weights: the round-0 global model.
        on_round: called with each round's summary (progress display).
    """

    config: FedChainConfig
    strategy: RoundStrategy
    initial_weights: Weights
    on_round: Callable[[RoundSummary], None] | None = None
    weights: Weights = field(init=False)
    model_hash: str = field(init=False)

    def __post_init__(self) -> None:
        self.weights = dict(self.initial_weights)
        self.model_hash = model_hash(self.weights)

    # ------------------------------------------------------------------ loop
    def run(self, grid: Grid) -> RunResult:
        """Run every configured round; return the run's results."""
        started = time.perf_counter()
        result = RunResult(config=self.config.to_dict())
        for server_round in range(1, self.config.rounds + 1):
            summary = self.run_round(grid, server_round)
            result.rounds.append(summary)
            if self.on_round is not None:
                self.on_round(summary)
        result.model_hash = self.model_hash
        result.wall_seconds = time.perf_counter() - started
        return result

    def run_round(self, grid: Grid, server_round: int) -> RoundSummary:
        """One round: train, validate, aggregate, score, evaluate, record."""
        started = time.perf_counter()
        summary = RoundSummary(server_round=server_round, status="completed", previous_model_hash=self.model_hash)

        # 1. Train: sample members and send them the global model.
        train_config = ConfigRecord({"model-round": server_round - 1})
        instructions = self.strategy.configure_train(server_round, self.weights, train_config, grid)
        replies = list(grid.send_and_receive(instructions, timeout=self.config.round_timeout_s))

        # 2. Validate: keep well-formed updates, count the rest by reason.
        accepted, others = self._validate(replies, summary)
        if len(accepted) < self.config.min_members:
            log.warning(
                "round %d skipped: %d accepted updates, %d needed", server_round, len(accepted), self.config.min_members
            )
            summary.status = "skipped"
            summary.members = others
            summary.model_hash = self.model_hash
            summary.seconds = time.perf_counter() - started
            return summary

        # 3. Aggregate.
        new_record = self.strategy.aggregate_plain(
            server_round, [(update.weights, update.member.num_examples) for update in accepted]
        )
        new_weights = check_weights(record_to_weights(new_record), self.weights)

        # 4. Score.
        scores = data_size_scores({update.member.address: update.member.num_examples for update in accepted})

        # 5. Evaluate the new global model on members.
        self.weights = new_weights
        self.model_hash = model_hash(new_weights)
        summary.model_hash = self.model_hash
        summary.aggregate_hash = self.model_hash
        summary.accuracy, summary.loss = self._evaluate(grid, server_round)

        # 6. Reward and record (chain).
        summary.members = [replace(u.member, score=scores[u.member.address]) for u in accepted] + others
        summary.seconds = time.perf_counter() - started
        log.info(
            "round %d: accuracy %s, %d accepted, %.2f s",
            server_round,
            summary.accuracy,
            summary.accepted,
            summary.seconds,
        )
        return summary

    # ---------------------------------------------------------------- stages
    def _validate(
        self, replies: list[Message], summary: RoundSummary
    ) -> tuple[list[AcceptedUpdate], list[MemberRound]]:
        accepted: list[AcceptedUpdate] = []
        others: list[MemberRound] = []
        reasons: Counter[str] = Counter()
        seen: set[int] = set()
        for reply in replies:
            node_id = reply.metadata.src_node_id
            if reply.has_error():
                reason = "declined" if reply.error.code == ERROR_BUDGET_EXHAUSTED else "failed"
                reasons[reason] += 1
                log.info("round %d: node %d %s: %s", summary.server_round, node_id, reason, reply.error.reason)
                continue
            try:
                update = self._parse_update(node_id, reply)
            except (FedChainError, KeyError, TypeError, ValueError) as exc:
                reasons["invalid"] += 1
                log.warning("round %d: node %d sent an invalid update: %s", summary.server_round, node_id, exc)
                continue
            if update.member.member_id in seen:
                reasons["duplicate"] += 1
                continue
            seen.add(update.member.member_id)
            accepted.append(update)
        summary.rejections = dict(reasons)
        return accepted, others

    def _parse_update(self, node_id: int, reply: Message) -> AcceptedUpdate:
        content = reply.content
        identity = content.config_records["member"]
        metrics = content.metric_records["metrics"]
        num_examples = metrics["num-examples"]
        if not isinstance(num_examples, int) or not 0 < num_examples <= MAX_EXAMPLES:
            raise ValueError(f"num-examples must be an int in [1, {MAX_EXAMPLES}], got {num_examples!r}")
        weights = check_weights(record_to_weights(content.array_records["arrays"]), self.weights)
        member = MemberRound(
            member_id=int(identity["member-id"]),  # type: ignore[arg-type]
            address=str(identity["address"]),
            kind=str(identity.get("kind", "honest")),
            num_examples=num_examples,
            status="accepted",
            train_loss=float(metrics.get("train-loss", 0.0)),  # type: ignore[arg-type]
        )
        return AcceptedUpdate(node_id=node_id, member=member, weights=weights)

    def _evaluate(self, grid: Grid, server_round: int) -> tuple[float | None, float | None]:
        eval_config = ConfigRecord({"model-round": server_round})
        instructions = self.strategy.configure_evaluate(server_round, self.weights, eval_config, grid)
        if not instructions:
            return None, None
        replies = grid.send_and_receive(instructions, timeout=self.config.round_timeout_s)
        total = 0
        correct = 0.0
        loss = 0.0
        for reply in replies:
            if reply.has_error():
                log.info("round %d: evaluation failed on node %d", server_round, reply.metadata.src_node_id)
                continue
            metrics = reply.content.metric_records["metrics"]
            reported_hash = reply.content.config_records["member"].get("model-hash", ZERO_HASH)
            if reported_hash != self.model_hash:
                log.warning("round %d: node %d evaluated another model", server_round, reply.metadata.src_node_id)
                continue
            n = int(metrics["num-examples"])  # type: ignore[arg-type]
            total += n
            correct += float(metrics["accuracy"]) * n  # type: ignore[arg-type]
            loss += float(metrics["loss"]) * n  # type: ignore[arg-type]
        if total == 0:
            return None, None
        return correct / total, loss / total
