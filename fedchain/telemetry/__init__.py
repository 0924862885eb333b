"""Prometheus metrics of a federation: the coordinator's and each member's.

prometheus_client is imported here and nowhere else in fedchain. Every metric lives in an
injected :class:`~prometheus_client.CollectorRegistry` (a fresh private one by default), so
metrics never leak into the process-wide registry and tests use the real library at small size.

* :class:`CoordinatorMetrics`: what the coordinator's round loop reports: rounds, round
  duration, members sampled / replied / failed by stage, stage timings (encrypt, aggregate,
  score...), ciphertext bytes, gas, tokens paid, each member's cumulative epsilon and remaining
  budget, model accuracy.
* :class:`MemberMetrics`: a member node's own figures (training seconds, epsilon, rounds by
  outcome). Flower runs each ClientApp message in a fresh process, so member metrics are
  explicit, serialisable state saved in the node's state directory and served by a long-lived
  exporter (:func:`serve_member_state`, ``python -m fedchain.telemetry member``).
* :func:`serve`: ``/metrics`` over HTTP on loopback by default; returns a handle to close.

Names follow Prometheus conventions: the ``fedchain_`` prefix, base units as suffixes
(``_seconds``, ``_bytes``, ``_wei``), ``_total`` on counters. :data:`METRIC_NAMES` lists them;
``deploy/grafana/fedchain-dashboard.json`` and ``deploy/prometheus.yml`` use the same names.

Example:
    >>> from fedchain.telemetry import CoordinatorMetrics
    >>> metrics = CoordinatorMetrics()
    >>> with metrics.time("aggregate"):
    ...     pass
    >>> metrics.gas_used(21_000)
    >>> metrics.registry.get_sample_value("fedchain_gas_used_total")
    21000.0
"""

from __future__ import annotations

from fedchain.telemetry.coordinator import (
    COORDINATOR_METRICS,
    REPLY_STAGES,
    TIMED_STAGES,
    CoordinatorMetrics,
)
from fedchain.telemetry.member import (
    MEMBER_METRICS,
    MEMBER_OUTCOMES,
    MEMBER_STATE_FILENAME,
    MemberMetrics,
    MemberStateCollector,
)
from fedchain.telemetry.server import MetricsServer, serve, serve_member_state

#: Every metric family fedchain exports (as exposed, counters with ``_total``).
METRIC_NAMES: tuple[str, ...] = COORDINATOR_METRICS + MEMBER_METRICS

__all__ = [
    "COORDINATOR_METRICS",
    "MEMBER_METRICS",
    "MEMBER_OUTCOMES",
    "MEMBER_STATE_FILENAME",
    "METRIC_NAMES",
    "REPLY_STAGES",
    "TIMED_STAGES",
    "CoordinatorMetrics",
    "MemberMetrics",
    "MemberStateCollector",
    "MetricsServer",
    "serve",
    "serve_member_state",
]
