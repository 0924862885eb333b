"""Shared test setup: Flower never installs dependencies, phones home or writes outside the repo."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from fedchain.runner import flower_environment

ROOT = Path(__file__).resolve().parents[1]

for _name, _value in flower_environment(ROOT / ".flwr").items():
    os.environ.setdefault(_name, _value)


@pytest.fixture
def simulated_member(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nodes built in this test are simulated members (demo partitions, keys from the run seed, testing
    hooks allowed), as in fedchain's simulation runner. Deployed members are tested in
    tests/clients/test_policy.py."""
    from fedchain.simulation import SIMULATION_ENV

    monkeypatch.setenv(SIMULATION_ENV, "1")


@pytest.fixture
def flower_task_identity() -> None:
    """Flower messages can only be built inside a run: pose as one, as the simulation runtime does."""
    from flwr.common.constant import SUPERLINK_NODE_ID
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, SUPERLINK_NODE_ID


# ---- CKKS contexts: expensive (SCORING's Galois keys take about a second), built once per session.


@pytest.fixture(scope="session")
def agg_member() -> Any:
    from fedchain import crypto

    return crypto.create_secret_context(crypto.AGGREGATION)


@pytest.fixture(scope="session")
def agg_coordinator(agg_member: Any) -> Any:
    from fedchain import crypto

    return crypto.load_coordinator_context(crypto.export_public_context(agg_member))


@pytest.fixture(scope="session")
def scoring_member() -> Any:
    from fedchain import crypto

    return crypto.create_secret_context(crypto.SCORING)


@pytest.fixture(scope="session")
def scoring_other_member(scoring_member: Any) -> Any:
    """Another member's copy of the federation's secret context (what a second committee member holds)."""
    from fedchain import crypto

    return crypto.load_member_context(crypto.export_secret_context(scoring_member))


@pytest.fixture(scope="session")
def scoring_coordinator(scoring_member: Any) -> Any:
    from fedchain import crypto

    return crypto.load_coordinator_context(crypto.export_public_context(scoring_member))
