"""Round deadlines a member's slowness cannot stretch: real Flower (simulation and its in-memory Grid), real chain.

A straggler (``--faults slow:ID:SECONDS``, simulation only) replies to every train instruction
after the round's ``round-timeout-s``: each round ends at its deadline without it, it is counted as
a ``timeout`` and paid nothing, the next round goes on, and its late reply never enters a later
round. Below the simulation, :class:`fedchain.coordinator.Exchange` is checked on Flower's real
``InMemoryGrid`` with SuperNodes that answer by hand.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from uuid import uuid4

import pytest
from flwr.app import ConfigRecord, Message, MessageType, RecordDict
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

from fedchain.config import FedChainConfig
from fedchain.coordinator import TTL_GRACE_S, Exchange
from fedchain.identity import simulated_member_addresses


def _grid(count: int) -> tuple[InMemoryGrid, list[int]]:
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


def _answer(grid: InMemoryGrid, node_id: int, *, after_s: float = 0.0) -> threading.Timer:
    """What a SuperNode does, ``after_s`` from now: take its instruction and store a reply."""

    def answer() -> None:
        waited = time.monotonic() + 5.0
        while not (instructions := grid.state.get_message_ins(node_id=node_id, limit=1)):
            assert time.monotonic() < waited, "the instruction was never pushed"
            time.sleep(0.01)
        (instruction,) = instructions
        reply = Message(RecordDict(), reply_to=instruction)
        reply.metadata.__dict__["_message_id"] = str(uuid4())  # as Flower's simulation workers do
        grid.state.store_message_res(reply)

    timer = threading.Timer(after_s, answer)
    timer.start()
    return timer


def _messages(nodes: list[int], ttl_s: float) -> list[Message]:
    return [Message(RecordDict(), dst_node_id=n, message_type=MessageType.TRAIN, ttl=ttl_s) for n in nodes]


@pytest.mark.usefixtures("flower_task_identity")
def test_an_exchange_ends_at_its_deadline_and_never_reads_a_late_reply() -> None:
    grid, nodes = _grid(3)
    timeout_s = 1.0
    first = Exchange(grid, _messages(nodes, timeout_s + TTL_GRACE_S), timeout_s=timeout_s)
    answers = [_answer(grid, nodes[0], after_s=0.1), _answer(grid, nodes[1], after_s=0.3)]  # node 2 is silent
    started = time.monotonic()
    got = [reply.metadata.src_node_id for reply in first]
    waited = time.monotonic() - started
    assert got == nodes[:2]
    assert first.missing == [nodes[2]] and first.sent == 3
    assert timeout_s <= waited < timeout_s + 0.5  # the silent node held it to the deadline, no longer

    late = _answer(grid, nodes[2])  # the straggler answers after the deadline (within the TTL's grace) ...
    late.join()
    second = Exchange(grid, _messages(nodes[:1], 5.0), timeout_s=0.3)
    assert list(second) == [] and second.missing == nodes[:1]  # ... and a later exchange never reads it
    for answer in answers:
        answer.join()


@pytest.mark.usefixtures("flower_task_identity")
def test_an_expired_instruction_counts_as_missing() -> None:
    grid, nodes = _grid(1)
    exchange = Exchange(grid, _messages(nodes, 0.2), timeout_s=0.6)  # the instruction expires before the deadline
    assert list(exchange) == [] and exchange.missing == nodes


class _CountingGrid(InMemoryGrid):
    """Flower's in-memory grid, noting each ``push_messages`` call's destination nodes in ``events``."""

    events: list[object]

    def push_messages(self, messages):  # type: ignore[no-untyped-def]
        batch = list(messages)
        self.events.append(("pushed", [m.metadata.dst_node_id for m in batch]))
        return super().push_messages(batch)


def _counting_grid(count: int) -> tuple[_CountingGrid, list[int]]:
    grid, nodes = _grid(count)
    grid.__class__ = _CountingGrid
    grid.events = []
    return grid, nodes  # type: ignore[return-value]


@pytest.mark.usefixtures("flower_task_identity")
def test_instructions_are_pushed_in_batches_bounded_in_bytes_and_built_as_they_go(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import fedchain.coordinator as coordinator

    monkeypatch.setattr(coordinator, "PUSH_BATCH_BYTES", 8 * 1024 * 1024)
    grid, nodes = _counting_grid(4)
    payload = bytes(3 * 1024 * 1024)  # each instruction ~3 MiB: two fit a batch, a third does not

    def built() -> Iterator[Message]:
        for node in nodes:
            grid.events.append(("built", node))
            content = RecordDict({"c": ConfigRecord({"b": payload})})
            yield Message(content, dst_node_id=node, message_type=MessageType.TRAIN, ttl=9.0)

    answers = [_answer(grid, node) for node in nodes]
    exchange = Exchange(grid, built(), timeout_s=5.0)
    assert sorted(reply.metadata.src_node_id for reply in exchange) == sorted(nodes)
    assert exchange.sent == 4 and exchange.missing == []
    a, b, c, d = nodes  # each batch is pushed as soon as the next instruction would overflow it
    assert grid.events == [
        ("built", a),
        ("built", b),
        ("built", c),
        ("pushed", [a, b]),
        ("built", d),
        ("pushed", [c, d]),
    ]
    for answer in answers:
        answer.join()


@pytest.mark.usefixtures("flower_task_identity")
def test_a_batch_message_the_grid_refuses_is_missing_and_the_others_are_answered() -> None:
    grid, nodes = _counting_grid(2)
    unknown = max(nodes) + 1  # no such node: Flower's grid does not store its message
    answers = [_answer(grid, node) for node in nodes]
    exchange = Exchange(grid, _messages([nodes[0], unknown, nodes[1]], 9.0), timeout_s=2.0)
    assert sorted(reply.metadata.src_node_id for reply in exchange) == sorted(nodes)
    assert grid.events == [("pushed", [nodes[0], unknown, nodes[1]])]  # one call for the three
    assert exchange.sent == 3 and exchange.missing == [unknown]
    for answer in answers:
        answer.join()


class _Federation:
    """Flower's ServerApp and ClientApp over Flower's in-memory LinkState, each member node a thread.

    What Flower's simulation runtime does, without Ray: each member pulls its instructions from the
    LinkState, answers them with the real ClientApp (``clients.client_app.app``) and stores the
    reply; the coordinator is the real ServerApp (``strategies.server_app.app``) on an
    ``InMemoryGrid``. Members start in well under a second, so a round deadline of a few seconds
    measures only what the round does (Ray's actors take a minute to start on a busy machine).
    """

    def __init__(self, config: FedChainConfig, members: int) -> None:
        from flwr.app import Context

        self.grid, self.nodes = _grid(members)
        self.run_config = dict(config.to_run_config())
        self.stop = threading.Event()
        self.contexts = {
            node: Context(
                run_id=TaskIdentity.run_id,
                node_id=node,
                node_config={"partition-id": i, "num-partitions": members},
                state=RecordDict(),
                run_config=self.run_config,
            )
            for i, node in enumerate(self.nodes)
        }
        self.threads = [threading.Thread(target=self._member, args=(n,), daemon=True) for n in self.nodes]

    def _member(self, node_id: int) -> None:
        from clients.client_app import app

        while not self.stop.is_set():
            instructions = self.grid.state.get_message_ins(node_id=node_id, limit=1)
            if not instructions:
                time.sleep(0.02)
                continue
            reply = app(instructions[0], self.contexts[node_id])
            reply.metadata.__dict__["_message_id"] = str(uuid4())  # as Flower's simulation workers do
            self.grid.state.store_message_res(reply)  # refused (logged by Flower) once the instruction expired

    def run(self) -> None:
        from flwr.app import Context

        from strategies.server_app import app as server_app

        for thread in self.threads:
            thread.start()
        try:
            context = Context(run_id=TaskIdentity.run_id, node_id=0, node_config={}, state=RecordDict(),
                              run_config=self.run_config)  # fmt: skip
            server_app(self.grid, context)
        finally:
            self.stop.set()
            for thread in self.threads:
                thread.join(timeout=30)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.usefixtures("flower_task_identity")
def test_a_straggler_is_left_out_at_the_deadline_unpaid_and_the_next_round_goes_on(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib
    import json

    from fedchain.simulation import SIMULATION_ENV

    for module in ("clients.client_app", "fedchain.privacy.training", "flwr_datasets"):
        importlib.import_module(module)  # what members load on their first message, loaded before any deadline

    monkeypatch.setenv(SIMULATION_ENV, "1")  # testing hooks (the straggler) act only in a simulation
    # Member 2 replies to round 2 two seconds after its deadline, and is on time in rounds 1 and 3.
    timeout_s, late_s = 7.0, 9.0
    config = FedChainConfig(
        members=3,
        rounds=3,
        dp=False,
        he=False,
        min_members=2,
        round_timeout_s=timeout_s,
        faults=f"slow:2:2:{late_s}",
        out_dir=str(tmp_path),
    )
    _Federation(config, 3).run()
    result = json.loads((tmp_path / "result.json").read_text())
    addresses = simulated_member_addresses(seed=config.seed, count=3)
    rounds = {row["round"]: row for row in result["rounds"]}
    assert [row["status"] for row in rounds.values()] == ["completed"] * 3

    late = rounds[2]
    assert late["rejections"] == {"timeout": 1}
    assert timeout_s <= late["stage_seconds"]["train"] < late_s  # the round did not wait for the straggler
    paid = {m["address"]: int(m["reward_wei"]) for m in late["members"]}
    assert addresses[2] not in paid and len(paid) == 2 and all(paid.values())  # nothing recorded or paid to it

    # The next round goes on with the straggler on time again; its late reply to round 2 counts nowhere.
    after = rounds[3]
    assert after["rejections"] == {}  # no stale or duplicate reply
    assert sorted(m["address"] for m in after["members"]) == sorted(addresses)
    assert all(m["status"] == "accepted" for m in after["members"])
    assert result["audit"]["ok"], result["audit"]
