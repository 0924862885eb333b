"""The coordinator's metrics: one object the round loop reports to.

Example:
    >>> from fedchain.telemetry import CoordinatorMetrics
    >>> metrics = CoordinatorMetrics()
    >>> metrics.count_replies("train", sampled=3, replied=2, failed_by_reason={"declined": 1})
    >>> metrics.registry.get_sample_value("fedchain_members_failed_total", {"stage": "train", "reason": "declined"})
    1.0
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from fedchain._validation import Interval, OneOf
from fedchain.errors import ConfigError

if TYPE_CHECKING:
    from fedchain.results import RoundSummary
    from fedchain.telemetry.server import MetricsServer

__all__ = ["COORDINATOR_METRICS", "REPLY_STAGES", "TIMED_STAGES", "CoordinatorMetrics"]

log = logging.getLogger(__name__)

#: Stages whose replies are counted (sampled / replied / failed).
REPLY_STAGES: tuple[str, ...] = ("train", "evaluate", "score")
#: Stages :meth:`CoordinatorMetrics.time` measures.
TIMED_STAGES: tuple[str, ...] = ("train", "validate", "encrypt", "aggregate", "score", "evaluate", "record", "decrypt")
#: Metric families the coordinator exports (as exposed).
COORDINATOR_METRICS: tuple[str, ...] = (
    "fedchain_rounds_total",
    "fedchain_last_round",
    "fedchain_round_duration_seconds",
    "fedchain_members_sampled_total",
    "fedchain_members_replied_total",
    "fedchain_members_failed_total",
    "fedchain_members_accepted_total",
    "fedchain_stage_duration_seconds",
    "fedchain_ciphertext_bytes_total",
    "fedchain_gas_used_total",
    "fedchain_tokens_paid_wei_total",
    "fedchain_member_rewards_wei_total",
    "fedchain_member_epsilon",
    "fedchain_member_epsilon_budget_remaining",
    "fedchain_model_accuracy_ratio",
    "fedchain_model_loss",
)

_ROUND_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, float("inf"))
_STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, float("inf"))
_COUNT = Interval(int, 0, None, closed="left")
_NONNEG = Interval(float, 0, None, closed="left")


class CoordinatorMetrics:
    """Prometheus metrics of the coordinator's round loop.

    Args:
        registry: where the metrics live; a fresh private registry when None (never the global
            one), available as :attr:`registry`.

    The loop calls, per round: :meth:`count_replies` after each ``send_and_receive``,
    :meth:`time` around stages, :meth:`ciphertext_bytes` for ciphertexts received or sent, and
    :meth:`observe_round` once with the round's summary. ``observe_round`` derives rounds,
    duration, accepted members, accuracy, gas, tokens and each member's epsilon from the summary
    (it calls :meth:`gas_used`, :meth:`tokens_paid` and :meth:`member_epsilon` itself: do not
    call those as well for the same round).

    Example:
        >>> from fedchain.results import RoundSummary
        >>> metrics = CoordinatorMetrics()
        >>> metrics.observe_round(RoundSummary(server_round=1, status="completed", seconds=2.0, gas_used=90_000))
        >>> metrics.registry.get_sample_value("fedchain_rounds_total", {"status": "completed"})
        1.0
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self._rounds = Counter(
            "fedchain_rounds", "Rounds finished, by status (completed or skipped).", ["status"], registry=r
        )
        self._last_round = Gauge("fedchain_last_round", "Number of the last finished round.", registry=r)
        self._round_seconds = Histogram(
            "fedchain_round_duration_seconds", "Wall time of each round.", buckets=_ROUND_BUCKETS, registry=r
        )
        self._sampled = Counter(
            "fedchain_members_sampled", "Members sent an instruction, by stage.", ["stage"], registry=r
        )
        self._replied = Counter(
            "fedchain_members_replied", "Members that replied without error, by stage.", ["stage"], registry=r
        )
        self._failed = Counter(
            "fedchain_members_failed",
            "Members whose reply failed or was refused, by stage and reason.",
            ["stage", "reason"],
            registry=r,
        )
        self._accepted = Counter("fedchain_members_accepted", "Member updates accepted into an aggregate.", registry=r)
        self._stage_seconds = Histogram(
            "fedchain_stage_duration_seconds",
            "Wall time of a coordinator stage (encrypt, aggregate, score...).",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=r,
        )
        self._cipher_bytes = Counter(
            "fedchain_ciphertext_bytes",
            "CKKS ciphertext bytes received from members or sent to them.",
            ["direction"],
            registry=r,
        )
        self._gas = Counter("fedchain_gas_used", "Gas used by the round records on chain.", registry=r)
        self._tokens = Counter("fedchain_tokens_paid_wei", "Reward tokens paid to members, in wei.", registry=r)
        self._member_rewards = Counter(
            "fedchain_member_rewards_wei", "Reward tokens paid to each member, in wei.", ["member"], registry=r
        )
        self._epsilon = Gauge(
            "fedchain_member_epsilon", "Each member's cumulative DP epsilon as last reported.", ["member"], registry=r
        )
        self._remaining = Gauge(
            "fedchain_member_epsilon_budget_remaining",
            "Epsilon each member has left of its budget.",
            ["member"],
            registry=r,
        )
        self._accuracy = Gauge(
            "fedchain_model_accuracy_ratio", "Federated evaluation accuracy of the last global model.", registry=r
        )
        self._loss = Gauge("fedchain_model_loss", "Federated evaluation loss of the last global model.", registry=r)
        for status in ("completed", "skipped"):
            self._rounds.labels(status=status)
        for stage in REPLY_STAGES:
            self._sampled.labels(stage=stage)
            self._replied.labels(stage=stage)
        for direction in ("received", "sent"):
            self._cipher_bytes.labels(direction=direction)

    # ------------------------------------------------------------------------------- per round
    def observe_round(self, summary: RoundSummary, *, epsilon_budget: float | None = None) -> None:
        """Record a finished round from its summary.

        Args:
            summary: the round as the coordinator saw it (``fedchain.results.RoundSummary``).
            epsilon_budget: each member's total epsilon (``config.epsilon``); with it the
                remaining budget of every member in the round is exported too.
        """
        self._rounds.labels(status=summary.status).inc()
        self._last_round.set(summary.server_round)
        self._round_seconds.observe(max(0.0, float(summary.seconds)))
        self._accepted.inc(summary.accepted)
        if summary.accuracy is not None:
            self._accuracy.set(summary.accuracy)
        if summary.loss is not None:
            self._loss.set(summary.loss)
        if summary.gas_used is not None:
            self.gas_used(summary.gas_used)
        paid = 0
        for member in summary.members:
            if member.reward_wei:
                self._member_rewards.labels(member=member.address).inc(member.reward_wei)
                paid += member.reward_wei
            if member.epsilon is not None:
                self.member_epsilon(member.address, member.epsilon, epsilon_budget)
        if paid:
            self.tokens_paid(paid)

    def count_replies(
        self, stage: str, *, sampled: int, replied: int, failed_by_reason: Mapping[str, int] | None = None
    ) -> None:
        """Count one stage's members: instructions sent, good replies, failures by reason.

        Args:
            stage: one of :data:`REPLY_STAGES`.
            sampled: members sent an instruction.
            replied: members whose reply arrived without error.
            failed_by_reason: failures by reason (e.g. ``{"declined": 1, "invalid": 2}``),
                including members that never answered (``"timeout"``).

        Raises:
            ConfigError: an unknown stage or a negative count.
        """
        stage = OneOf(REPLY_STAGES).check("stage", stage)
        self._sampled.labels(stage=stage).inc(_COUNT.check("sampled", sampled))
        self._replied.labels(stage=stage).inc(_COUNT.check("replied", replied))
        for reason, count in (failed_by_reason or {}).items():
            if count:
                self._failed.labels(stage=stage, reason=str(reason)).inc(_COUNT.check("failed", count))

    @contextmanager
    def time(self, stage: str) -> Iterator[None]:
        """Measure the wall time of ``stage`` (one of :data:`TIMED_STAGES`), even if it raises.

        Example:
            >>> metrics = CoordinatorMetrics()
            >>> with metrics.time("score"):
            ...     pass
            >>> metrics.registry.get_sample_value("fedchain_stage_duration_seconds_count", {"stage": "score"})
            1.0
        """
        histogram = self._stage_seconds.labels(stage=OneOf(TIMED_STAGES).check("stage", stage))
        started = time.perf_counter()
        try:
            yield
        finally:
            histogram.observe(time.perf_counter() - started)

    def ciphertext_bytes(self, n: int, *, direction: str = "received") -> None:
        """Count ``n`` ciphertext bytes ``"received"`` from members or ``"sent"`` to them."""
        direction = OneOf(("received", "sent")).check("direction", direction)
        self._cipher_bytes.labels(direction=direction).inc(_COUNT.check("n", n))

    def gas_used(self, n: int) -> None:
        """Add the gas of a transaction recording a round."""
        self._gas.inc(_COUNT.check("gas_used", n))

    def tokens_paid(self, wei: int) -> None:
        """Add reward tokens paid to members, in wei (floats past 2**53 wei lose precision)."""
        self._tokens.inc(_COUNT.check("wei", wei))

    def member_epsilon(self, address: str, epsilon: float, budget: float | None = None) -> None:
        """Set a member's cumulative epsilon and, given its budget, what remains of it."""
        if not isinstance(address, str) or not address:
            raise ConfigError("address", "a member address", address)
        epsilon = _NONNEG.check("epsilon", epsilon)
        self._epsilon.labels(member=address).set(epsilon)
        if budget is not None:
            budget = Interval(float, 0, None, closed="neither").check("budget", budget)
            self._remaining.labels(member=address).set(max(0.0, budget - epsilon))

    # ---------------------------------------------------------------------------------- serving
    def serve(self, port: int, host: str = "127.0.0.1") -> MetricsServer:
        """Expose these metrics at ``http://host:port/metrics`` (see :func:`fedchain.telemetry.serve`)."""
        from fedchain.telemetry.server import serve

        return serve(port, host, registry=self.registry)
