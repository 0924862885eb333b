"""Coordinator fault injection exists only inside a simulation: a deployed coordinator gets no hook."""

from __future__ import annotations

import pytest

from fedchain.config import FedChainConfig
from fedchain.faults import coordinator_faults
from fedchain.simulation import SIMULATION_ENV


def test_a_deployed_coordinator_gets_no_fault_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SIMULATION_ENV, raising=False)
    assert coordinator_faults(FedChainConfig(faults="kill:2:sent")) is None


def test_a_simulated_coordinator_dies_where_the_run_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SIMULATION_ENV, "1")
    hook = coordinator_faults(FedChainConfig(faults="kill:2:sent"))
    assert hook is not None
    assert hook.armed("sent", 2) and not hook.armed("sent", 1) and not hook.armed("replies", 2)
    assert coordinator_faults(FedChainConfig(faults="crash:1")) is None  # member faults are the members'
