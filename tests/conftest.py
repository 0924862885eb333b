"""Shared test setup: Flower never installs dependencies, phones home or writes outside the repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fedchain.runner import flower_environment

ROOT = Path(__file__).resolve().parents[1]

for _name, _value in flower_environment(ROOT / ".flwr").items():
    os.environ.setdefault(_name, _value)


@pytest.fixture
def simulated_member(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nodes built in this test are simulated members (demo partitions, keys from the run seed, testing
    hooks allowed), as in fedchain's simulation runner. Deployed members are tested in
    tests/test_member_policy.py."""
    from fedchain.simulation import SIMULATION_ENV

    monkeypatch.setenv(SIMULATION_ENV, "1")


@pytest.fixture
def flower_task_identity() -> None:
    """Flower messages can only be built inside a run: pose as one, as the simulation runtime does."""
    from flwr.common.constant import SUPERLINK_NODE_ID
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, SUPERLINK_NODE_ID
