"""Coordinator fault injection: one hook object, for tests and the simulation runner only.

``--faults kill:ROUND:POINT`` ends the coordinator process abruptly at ``POINT`` of ``ROUND``, as a
crash would, so the resume tests can prove that no round is lost or paid twice. The points are
``replies`` (the train replies are in), ``aggregated`` (the aggregate exists, nothing is staged)
and ``sent`` (the recording transaction is sent, its receipt not yet read).

A deployed coordinator has no hook: :func:`coordinator_faults` returns one only inside a simulation
(:func:`fedchain.simulation.is_simulation`), and the round code calls it only when it was given one.

Example:
    >>> from fedchain.config import FedChainConfig
    >>> CoordinatorFaults(FedChainConfig(faults="kill:2:sent")).armed("sent", 2)
    True
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from fedchain.config import FedChainConfig
from fedchain.simulation import is_simulation

__all__ = ["KILLED_EXIT_CODE", "CoordinatorFaults", "coordinator_faults"]

log = logging.getLogger(__name__)

#: Exit status of a coordinator killed by fault injection.
KILLED_EXIT_CODE = 17


@dataclass(frozen=True)
class CoordinatorFaults:
    """Kills the coordinator where ``config.faults`` says (``kill:ROUND:POINT``)."""

    config: FedChainConfig

    def armed(self, point: str, server_round: int) -> bool:
        """Whether the coordinator is to die at ``point`` of ``server_round``."""
        return self.config.coordinator_dies_at(point, server_round)

    def at(self, point: str, server_round: int) -> None:
        """End the process abruptly at ``point`` of ``server_round`` when armed there."""
        if self.armed(point, server_round):
            log.error("fault injection: coordinator killed at %s of round %d", point, server_round)
            logging.shutdown()
            os._exit(KILLED_EXIT_CODE)

    def arm_ledger(self, ledger: Any, server_round: int) -> None:
        """Kill after the round's transaction is sent, before its receipt is read (``sent``)."""
        if self.armed("sent", server_round) and hasattr(ledger, "on_sent"):
            ledger.on_sent = lambda tx_hash: self.at("sent", server_round)


def coordinator_faults(config: FedChainConfig) -> CoordinatorFaults | None:
    """The hook for a simulated run with ``--faults kill:...``; None for a deployed coordinator."""
    if not config.faults.startswith("kill:"):
        return None
    if not is_simulation():
        log.warning("fault injection %r ignored: this coordinator is not part of a simulation", config.faults)
        return None
    return CoordinatorFaults(config)
