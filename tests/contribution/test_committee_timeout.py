"""The coordinator's committee stage against real Flower and a real chain: timeouts and disputes.

A dead committee member no longer holds the round: two registered SuperNodes of Flower's real
in-memory Grid and LinkState never pull their messages (a crashed or unplugged committee member);
the coordinator must give up after ``committee-timeout-s``, count the silence and flag the round,
instead of waiting for Flower's 12-hour message TTL. A member's signed dispute is relayed to the
ledger (eth-tester) and the round pays nobody.
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
from fedchain.contribution import select_committee
from fedchain.coordinator import GridCommittee, decode_dispute
from fedchain.crypto import build_scalar_requests
from fedchain.identity.signing import NO_LEDGER, SigningDomain
from fedchain.pipeline import AcceptedUpdate, Aggregation, RoundOutcome, ask_committee, settle_disputes
from fedchain.recording import Recorder
from fedchain.types import ZERO_HASH, MemberRound

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
    domain = SigningDomain(chain_id=0, ledger_address=NO_LEDGER, run_id=0)
    requests = build_scalar_requests(scoring_coordinator, {u.member.address: u.chunks or [] for u in kept}, None)
    started = time.monotonic()
    exchange = ask_committee(
        GridCommittee(grid, domain, config.committee_timeout_s),
        domain=domain,
        server_round=1,
        exchange=1,
        nodes={u.member.address: u.node_id for u in kept},
        requests=requests,
        committee_size=config.committee_size,
        seed=config.seed,
    )
    verdict, revealed = exchange.verdict, exchange.revealed
    waited = time.monotonic() - started
    assert 1.0 <= waited < 5.0
    assert verdict.disagreement and verdict.products is None
    drawn = select_committee([u.member.address for u in kept], 2, seed=config.seed, server_round=1)
    assert verdict.reason == "; ".join(f"committee member {address!r} did not answer" for address in drawn)
    assert exchange.problems == {"committee-timeout": 2}
    assert revealed.answers == ()


def test_the_coordinator_relays_a_members_dispute_and_the_round_pays_nobody() -> None:
    """A member's signed dispute reaches the chain (eth-tester) before the round is recorded."""
    from fedchain.contribution.committee import RevealedScalars
    from fedchain.identity import address_of, simulated_member_key
    from fedchain.identity.signing import dispute_digest, sign_digest
    from fedchain.ledger import Web3Ledger, connect
    from fedchain.protocol import DisputeClaim, EvaluateRes, MemberIdentity, decode_evaluate_res, encode

    ledger = Web3Ledger.deploy(connect("embedded"))
    keys = [simulated_member_key(seed=0, member_id=i) for i in range(2)]
    ledger.register_members([address_of(k) for k in keys])
    config = FedChainConfig(members=2, dp=False, he=False, chain="embedded")
    revealed = RevealedScalars(1, ())
    digest = dispute_digest(
        chain_id=ledger.chain_id, ledger_address=ledger.address, server_round=1, scalars_commitment=revealed.commitment
    )
    claim = DisputeClaim(
        scalars_commitment=revealed.commitment,
        signature=sign_digest(keys[0], digest),
        reason="exchange 1: sq_norms from x is 1, recomputed 2",
    )

    def evaluate_reply(address: str) -> EvaluateRes:  # as it travels: encoded, decoded
        member = MemberIdentity(member_id=0, address=address, model_round=1)
        return decode_evaluate_res(encode(EvaluateRes(member, num_examples=1, loss=0.0, accuracy=1.0, dispute=claim)))

    forged = evaluate_reply(address_of(keys[1]))  # another member's claim, not its key
    disputes = [decode_dispute(1, evaluate_reply(address_of(keys[0]))), decode_dispute(1, forged)]
    members = [
        MemberRound(member_id=i, address=address_of(k), kind="honest", num_examples=5, status="accepted", score=5.0)
        for i, k in enumerate(keys)
    ]
    outcome = RoundOutcome(
        server_round=1,
        status="completed",
        previous_model_hash=ZERO_HASH,
        model_hash=None,
        aggregate_hash=ZERO_HASH,
        members=tuple(members),
        rejections={},
        aggregation=Aggregation(kept=(), revealed=revealed),
    )
    domain = SigningDomain(chain_id=ledger.chain_id, ledger_address=ledger.address, run_id=0)
    settled = settle_disputes(outcome, [d for d in disputes if d is not None], domain=domain)
    Recorder(config, ledger, ledger_address=ledger.address).relay_disputes(1, settled.disputes)
    assert settled.flagged == f"disputed: {address_of(keys[0])}: exchange 1: sq_norms from x is 1, recomputed 2"
    assert [m.score for m in settled.members] == [0.0, 0.0]
    assert [d.member for d in ledger.disputes(1)] == [address_of(keys[0])]
