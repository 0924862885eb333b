"""A member node's own metrics: explicit, serialisable state, exported by a custom collector.

Flower starts a fresh ``flwr-clientapp`` process for every message a SuperNode receives, so a
metrics server inside the ClientApp would live for one message. Instead the node keeps its
figures as a small JSON state in its state directory (:meth:`MemberMetrics.save`, atomic), and a
long-lived exporter next to the SuperNode serves them: :class:`MemberStateCollector` reads the
file at every scrape (``python -m fedchain.telemetry member --state-dir DIR --port P``). In a
long-lived process the same object is a collector of its own and can be served directly.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "metrics.json"
    >>> metrics = MemberMetrics.open(path, member="0xabc")
    >>> metrics.observe_training(1.5, epsilon=0.8, epsilon_budget=8.0, examples=120)
    >>> _ = metrics.save()
    >>> MemberMetrics.open(path, member="0xabc").registry.get_sample_value(
    ...     "fedchain_member_epsilon", {"member": "0xabc"})
    0.8
"""

from __future__ import annotations

import bisect
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from fedchain._io import atomic_write_json
from fedchain._validation import Interval, OneOf
from fedchain.errors import ConfigError, SerializationError

__all__ = ["MEMBER_METRICS", "MEMBER_OUTCOMES", "MEMBER_STATE_FILENAME", "MemberMetrics", "MemberStateCollector"]

log = logging.getLogger(__name__)

#: The member metrics state file inside a node's ``state-dir``.
MEMBER_STATE_FILENAME = "metrics.json"
#: Outcomes of an instruction a member received ("refused": its own privacy policy refused it).
MEMBER_OUTCOMES: tuple[str, ...] = ("trained", "evaluated", "declined", "refused", "failed")
#: Metric families a member exports (as exposed).
MEMBER_METRICS: tuple[str, ...] = (
    "fedchain_member_training_duration_seconds",
    "fedchain_member_encrypt_duration_seconds",
    "fedchain_member_instructions_total",
    "fedchain_member_epsilon",
    "fedchain_member_epsilon_budget_remaining",
    "fedchain_member_examples",
)
_STATE_VERSION = 1
_TRAIN_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_ENCRYPT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SECONDS = Interval(float, 0, None, closed="left")


@dataclass
class _HistogramState:
    """Cumulative histogram state (finite upper bounds; +Inf is ``count``)."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * len(self.bounds)
        if len(self.counts) != len(self.bounds):
            raise SerializationError(f"histogram state has {len(self.counts)} buckets for {len(self.bounds)} bounds")

    def observe(self, value: float) -> None:
        # Non-cumulative per-bucket counts; the exposition makes them cumulative.
        index = bisect.bisect_left(self.bounds, value)
        if index < len(self.bounds):
            self.counts[index] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip(self.bounds, self.counts, strict=True):
            running += count
            out.append((_bound_label(bound), float(running)))
        out.append(("+Inf", float(self.count)))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"bounds": list(self.bounds), "counts": list(self.counts), "sum": self.total, "count": self.count}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> _HistogramState:
        return cls(
            bounds=tuple(float(b) for b in data["bounds"]),
            counts=[int(c) for c in data["counts"]],
            total=float(data["sum"]),
            count=int(data["count"]),
        )


def _bound_label(bound: float) -> str:
    return repr(float(bound))


class MemberMetrics(Collector):
    """One member's figures, as Prometheus metrics and as a JSON state file.

    Args:
        member: the member's label value (its chain address, or ``member-<id>``).
        path: the JSON state file (``<state-dir>/metrics.json``); needed by :meth:`save`.
        registry: a registry to register with; a fresh private one when None (:attr:`registry`).

    Example:
        >>> metrics = MemberMetrics("member-0")
        >>> metrics.count("declined")
        >>> metrics.registry.get_sample_value(
        ...     "fedchain_member_instructions_total", {"member": "member-0", "outcome": "declined"})
        1.0
    """

    def __init__(self, member: str, *, path: str | Path | None = None, registry: CollectorRegistry | None = None):
        if not isinstance(member, str) or not member:
            raise ConfigError("member", "a non-empty member label (address or member-<id>)", member)
        self.member = member
        self.path = Path(path) if path is not None else None
        self.training = _HistogramState(_TRAIN_BUCKETS)
        self.encrypt = _HistogramState(_ENCRYPT_BUCKETS)
        self.outcomes: dict[str, int] = dict.fromkeys(MEMBER_OUTCOMES, 0)
        self.epsilon: float | None = None
        self.epsilon_budget: float | None = None
        self.examples: int | None = None
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.registry.register(self)

    # ------------------------------------------------------------------------------ persistence
    @classmethod
    def open(cls, path: str | Path, *, member: str, registry: CollectorRegistry | None = None) -> MemberMetrics:
        """The state saved at ``path``, or a fresh state for ``member`` when there is none.

        Raises:
            SerializationError: the file exists but is not a member metrics state.
        """
        metrics = cls(member, path=path, registry=registry)
        state_path = Path(path)
        if state_path.exists():
            metrics._load(_read_state(state_path))
        return metrics

    def save(self) -> Path:
        """Write the state atomically to :attr:`path`; return the path."""
        if self.path is None:
            raise ConfigError("path", "a state file path to save member metrics to", None)
        atomic_write_json(self.path, self.to_dict())
        return self.path

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready state."""
        return {
            "version": _STATE_VERSION,
            "member": self.member,
            "training_seconds": self.training.to_dict(),
            "encrypt_seconds": self.encrypt.to_dict(),
            "outcomes": dict(self.outcomes),
            "epsilon": self.epsilon,
            "epsilon_budget": self.epsilon_budget,
            "examples": self.examples,
        }

    def _load(self, data: dict[str, Any]) -> None:
        try:
            if data.get("version") != _STATE_VERSION:
                raise ValueError(f"version {data.get('version')!r}")
            self.member = str(data["member"])
            self.training = _HistogramState.from_dict(data["training_seconds"])
            self.encrypt = _HistogramState.from_dict(data["encrypt_seconds"])
            self.outcomes = {**dict.fromkeys(MEMBER_OUTCOMES, 0), **{k: int(v) for k, v in data["outcomes"].items()}}
            self.epsilon = None if data["epsilon"] is None else float(data["epsilon"])
            self.epsilon_budget = None if data["epsilon_budget"] is None else float(data["epsilon_budget"])
            self.examples = None if data["examples"] is None else int(data["examples"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SerializationError(f"not a fedchain member metrics state: {exc}") from exc

    # -------------------------------------------------------------------------------- updates
    def observe_training(
        self,
        seconds: float,
        *,
        epsilon: float | None = None,
        epsilon_budget: float | None = None,
        examples: int | None = None,
    ) -> None:
        """Record one local training: its wall time, and the cumulative epsilon after it."""
        self.training.observe(_SECONDS.check("seconds", seconds))
        self.outcomes["trained"] += 1
        if examples is not None:
            self.examples = Interval(int, 0, None, closed="left").check("examples", examples)
        if epsilon is not None:
            self.set_epsilon(epsilon, epsilon_budget)

    def observe_encrypt(self, seconds: float) -> None:
        """Record the wall time of encrypting one update."""
        self.encrypt.observe(_SECONDS.check("seconds", seconds))

    def count(self, outcome: str) -> None:
        """Count an instruction by outcome (one of :data:`MEMBER_OUTCOMES`; training counts itself)."""
        self.outcomes[OneOf(MEMBER_OUTCOMES).check("outcome", outcome)] += 1

    def set_epsilon(self, epsilon: float, budget: float | None = None) -> None:
        """Set the member's cumulative epsilon (and its budget)."""
        self.epsilon = Interval(float, 0, None, closed="left").check("epsilon", epsilon)
        if budget is not None:
            self.epsilon_budget = Interval(float, 0, None, closed="neither").check("budget", budget)

    # ------------------------------------------------------------------------------ collector
    def collect(self) -> Iterator[Metric]:
        """Metric families for prometheus_client (called at each scrape)."""
        labels = [self.member]
        for name, doc, state in (
            ("fedchain_member_training_duration_seconds", "Wall time of each local training.", self.training),
            ("fedchain_member_encrypt_duration_seconds", "Wall time of encrypting each update.", self.encrypt),
        ):
            histogram = HistogramMetricFamily(name, doc, labels=["member"])
            histogram.add_metric(labels, state.cumulative(), state.total)
            yield histogram
        counter = CounterMetricFamily(
            "fedchain_member_instructions", "Instructions handled, by outcome.", labels=["member", "outcome"]
        )
        for outcome, value in self.outcomes.items():
            counter.add_metric([self.member, outcome], float(value))
        yield counter
        epsilon = GaugeMetricFamily("fedchain_member_epsilon", "Cumulative DP epsilon spent.", labels=["member"])
        remaining = GaugeMetricFamily(
            "fedchain_member_epsilon_budget_remaining", "Epsilon left of the budget.", labels=["member"]
        )
        if self.epsilon is not None:
            epsilon.add_metric(labels, self.epsilon)
            if self.epsilon_budget is not None:
                remaining.add_metric(labels, max(0.0, self.epsilon_budget - self.epsilon))
        yield epsilon
        yield remaining
        examples = GaugeMetricFamily("fedchain_member_examples", "Local training examples.", labels=["member"])
        if self.examples is not None:
            examples.add_metric(labels, float(self.examples))
        yield examples


class MemberStateCollector(Collector):
    """Serves a member's saved metrics state, read again at every scrape.

    A missing file yields no samples (the node has not handled a message yet); an unreadable one
    is logged and yields nothing rather than failing the scrape.

    Example:
        >>> import tempfile, pathlib
        >>> from prometheus_client import CollectorRegistry
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "metrics.json"
        >>> registry = CollectorRegistry()
        >>> registry.register(MemberStateCollector(path))
        >>> registry.get_sample_value("fedchain_member_epsilon", {"member": "0xabc"}) is None
        True
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def collect(self) -> Iterator[Metric]:
        """The families of the state on disk now."""
        if not self.path.exists():
            return
        try:
            data = _read_state(self.path)
            metrics = MemberMetrics(str(data.get("member") or "unknown"), registry=CollectorRegistry())
            metrics._load(data)
        except SerializationError as exc:
            log.warning("member metrics state %s is unreadable: %s", self.path, exc)
            return
        yield from metrics.collect()


def _read_state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise SerializationError(f"{path}: not a readable JSON member metrics state: {exc}") from exc
    if not isinstance(data, dict):
        raise SerializationError(f"{path}: not a member metrics state")
    return data
