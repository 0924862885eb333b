"""The values one round hands from stage to stage, and the ports through which it reaches the network.

All frozen; :mod:`fedchain.pipeline` runs the round that uses them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from fedchain.contribution import InnerProducts
from fedchain.contribution.committee import (
    CommitteeRequest,
    CommitteeVerdict,
    RevealedExchange,
    RevealedScalars,
)
from fedchain.results import RoundSummary
from fedchain.serialization import Weights
from fedchain.types import (
    Aggregate,
    Dispute,
    MemberRound,
    RoundRecord,
)

__all__ = [
    "AcceptedUpdate",
    "Aggregation",
    "AggregationStrategy",
    "CommitteeExchange",
    "CommitteePort",
    "CommitteeReply",
    "Evaluation",
    "EvaluationPort",
    "EvaluationReport",
    "FailedReply",
    "Round",
    "RoundOutcome",
    "RunningAggregation",
    "StageClock",
    "TrainReply",
    "merged_counts",
]

#: One DP-SGD round of a member's privacy spend: ``(noise multiplier, sample rate, steps)``.
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


class RunningAggregation(Protocol):
    """One round's aggregation, fed one validated update at a time as the replies arrive.

    The pipeline calls :meth:`add` for each accepted update (once per member), :meth:`finish` once
    when the replies are in (unless too few were accepted), and :meth:`close` in any case.
    """

    def add(self, update: AcceptedUpdate) -> AcceptedUpdate:
        """Fold ``update`` in at once; return it as the round keeps it (under HE without its ciphertext).

        A payload that cannot be aggregated (a malformed ciphertext) is left out and counted
        (``invalid``); never raises for a member's bad update.
        """
        ...

    def finish(self) -> Aggregation:
        """Bound and aggregate what was added (see :meth:`AggregationStrategy.aggregate`)."""
        ...

    def close(self) -> None:
        """Free what the round held (the spooled ciphertexts); safe to call more than once."""
        ...


class AggregationStrategy(Protocol):
    """Bound and aggregate one round's validated updates: :class:`PlainAggregation` or :class:`EncryptedAggregation`."""

    def start(self, server_round: int) -> RunningAggregation:
        """A running aggregation for ``server_round`` that takes updates as they arrive."""
        ...

    def aggregate(self, server_round: int, updates: Sequence[AcceptedUpdate]) -> Aggregation:
        """Drop what cannot be aggregated or exceeds the norm bound, and sum the rest (all at once).

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


@dataclass(frozen=True)
class EvaluationReport:
    """One member's evaluation of the round's model, as decoded from its reply.

    Attributes:
        model_hash: the hash of the model the member evaluated (``ZERO_HASH``: not said).
        num_examples: its local test examples.
        accuracy: its accuracy on them.
        loss: its mean loss on them.
        dispute: the member's signed dispute of the revealed scalars, with its reason (unchecked).
    """

    model_hash: str
    num_examples: int
    accuracy: float
    loss: float
    dispute: tuple[Dispute, str] | None = None


class EvaluationPort(Protocol):
    """The network, as the evaluation stage needs it (the coordinator implements it over Flower's Grid)."""

    def evaluate(self, outcome: RoundOutcome) -> Sequence[EvaluationReport]:
        """Send members the round's model and the scalars revealed about them; collect their reports.

        The model is the outcome's plaintext weights, or under HE the aggregates each member lacks;
        the coordinator adopts it as the global model when it sends it. Returns the reports of
        the members that evaluated this round's model (failed and malformed replies are left out).
        """
        ...


@dataclass(frozen=True)
class Round:
    """A finished round: the outcome and the record to put on chain."""

    outcome: RoundOutcome
    record: RoundRecord


class StageClock(Protocol):
    """Times a stage: ``with clock("aggregate"): ...`` (the coordinator's metrics and summary)."""

    def __call__(self, stage: str) -> AbstractContextManager[None]:
        """A context manager timing ``stage``."""
        ...


def merged_counts(first: Mapping[str, int], second: Mapping[str, int]) -> dict[str, int]:
    """Counts by reason of ``first`` plus ``second`` (reasons with a zero count left out)."""
    merged = dict(first)
    for reason, count in second.items():
        if count:
            merged[reason] = merged.get(reason, 0) + count
    return merged
