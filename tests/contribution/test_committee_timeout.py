"""A dead committee member no longer holds the round: Flower's real in-memory Grid and LinkState.

Two registered SuperNodes never pull their messages (a crashed or unplugged committee member). The
coordinator asks them for the round's scalars and must give up after ``committee-timeout-s``, count
the silence and flag the round, instead of waiting for Flower's 12-hour message TTL.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import numpy as np
import pytest
from flwr.common.constant import HEARTBEAT_INTERVAL_INF, NOOP_ACCOUNT_NAME, NOOP_FLWR_AID
from flwr.proto.task_pb2 import Task
from flwr.server.superlink.linkstate import LinkStateFactory
from flwr.server.superlink.linkstate.in_memory_linkstate import RunRecord
from flwr.supercore.constant import FLWR_IN_MEMORY_DB_NAME, NOOP_FEDERATION_ID
from flwr.supercore.object_store import ObjectStoreFactory
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity
from flwr.superlink.federation import NoOpFederationManager
from flwr.superlink.grid.inmemory_grid import InMemoryGrid

from fedchain import crypto
from fedchain.config import FedChainConfig
from fedchain.contribution import build_scalar_requests, select_committee
from fedchain.coordinator import AcceptedUpdate, Coordinator
from fedchain.results import RoundSummary
from fedchain.types import MemberRound
from strategies.registry import create_strategy

pytestmark = pytest.mark.usefixtures("flower_task_identity")


def _grid_with_dead_nodes(count: int) -> tuple[InMemoryGrid, list[int]]:
    factory = LinkStateFactory(FLWR_IN_MEMORY_DB_NAME, NoOpFederationManager(), ObjectStoreFactory())
    state = factory.state()
    run = Run.create_empty(run_id=TaskIdentity.run_id)  # what Flower's simulation runtime pre-registers
    run.primary_task_id = 4243
    run.federation_id = NOOP_FEDERATION_ID
    state.run_ids[run.run_id] = RunRecord(run=run)  # type: ignore[attr-defined]
    state.task_store[run.primary_task_id] = Task(task_id=run.primary_task_id, run_id=run.run_id)  # type: ignore[attr-defined]
    nodes = []
    for _ in range(count):
        node_id = state.create_node(NOOP_FLWR_AID, NOOP_ACCOUNT_NAME, secrets.token_bytes(32), HEARTBEAT_INTERVAL_INF)
        state.acknowledge_node_heartbeat(node_id=node_id, heartbeat_interval=HEARTBEAT_INTERVAL_INF)
        nodes.append(node_id)
    grid = InMemoryGrid(state_factory=factory)
    grid.set_run(run)
    return grid, nodes


def test_a_dead_committee_is_given_up_after_the_committee_timeout(
    scoring_member: Any, scoring_coordinator: Any
) -> None:
    config = FedChainConfig(members=2, dp=False, chain="none", committee_timeout_s=1.0)
    assert config.round_timeout_s == 600.0  # the committee does not wait for the round's timeout
    grid, nodes = _grid_with_dead_nodes(2)
    rng = np.random.default_rng(0)
    kept = [
        AcceptedUpdate(
            node_id,
            MemberRound(member_id=i, address=f"0x{i + 1:040x}", kind="honest", num_examples=10, status="accepted"),
            chunks=crypto.encrypt_update(scoring_member, rng.normal(size=100)),
        )
        for i, node_id in enumerate(nodes)
    ]
    coordinator = Coordinator(
        config=config,
        strategy=create_strategy(config),
        initial_weights={"w": np.zeros(100, np.float32)},
        public_context=scoring_coordinator,
    )
    requests = build_scalar_requests(scoring_coordinator, {u.member.address: u.chunks or [] for u in kept}, None)
    summary = RoundSummary(server_round=1, status="completed")
    started = time.monotonic()
    verdict, revealed = coordinator._ask_committee(grid, 1, kept, requests, summary, exchange=1)
    waited = time.monotonic() - started
    assert 1.0 <= waited < 5.0
    assert verdict.disagreement and verdict.products is None
    drawn = select_committee([u.member.address for u in kept], 2, seed=config.seed, server_round=1)
    assert verdict.reason == "; ".join(f"committee member {address!r} did not answer" for address in drawn)
    assert summary.rejections == {"committee-timeout": 2}
    assert revealed.answers == ()
