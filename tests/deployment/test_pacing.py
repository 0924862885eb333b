"""The deployment's pace: object pulls retried in milliseconds, and a worker woken instead of polling.

The full path (SuperNode, worker, ServerApp over TLS) runs in ``test_worker.py`` and
``test_federation_integration.py``; here each piece is checked on its own, on Flower's own code.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flwr.supercore.inflatable.inflatable_utils import ObjectUnavailableError

from fedchain.deployment import object_pulls, supernode
from fedchain.deployment.object_pulls import PULLING_MODULES, install_fast_object_pulls
from fedchain.deployment.worker import Backoff, MemberWorker


def test_flowers_pulling_modules_get_the_fast_pace_once() -> None:
    assert install_fast_object_pulls() == list(PULLING_MODULES)
    import flwr.superlink.grid.http_grid as grid

    installed = grid.pull_objects
    assert install_fast_object_pulls() == list(PULLING_MODULES)
    assert grid.pull_objects is installed, "installing twice wrapped twice"


def test_an_object_not_there_yet_is_retried_in_milliseconds_not_seconds() -> None:
    import flwr.superlink.grid.http_grid as grid

    install_fast_object_pulls()
    calls: list[float] = []

    def pull_object(object_id: str) -> bytes:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise ObjectUnavailableError(object_id)  # pushed after its message's header
        return b"object"

    assert grid.pull_objects(["a"], pull_object) == {"a": b"object"}
    # Flower's own pace waits about 1 s, then 2 s (±20 %) before the third try.
    assert calls[-1] - calls[0] < 0.5, f"retried after {calls[-1] - calls[0]:.2f} s"


def test_a_pull_objects_of_another_shape_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    import flwr.superlink.grid.http_grid as grid

    def other(object_ids: list[str], fn: object) -> dict[str, bytes]:
        return {}

    monkeypatch.setattr(grid, "pull_objects", other)
    assert install_fast_object_pulls(("flwr.superlink.grid.http_grid", "no.such.module")) == []
    assert grid.pull_objects is other
    assert object_pulls.fast_object_pulls(other).__wrapped__ is other  # type: ignore[attr-defined]


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read, write = os.pipe()
    yield read, write
    for descriptor in (read, write):
        with contextlib.suppress(OSError):
            os.close(descriptor)


def test_a_woken_worker_asks_at_once_and_takes_every_pending_wake_up(pipe: tuple[int, int]) -> None:
    read, write = pipe
    worker = MemberWorker("127.0.0.1:9", backoff=Backoff(max_s=30.0), wake_fd=read)
    for _ in range(3):
        supernode.pipe_wake(write)()
    started = time.monotonic()
    worker._idle()
    assert time.monotonic() - started < 5.0, "the worker slept through its wake-up"
    os.set_blocking(read, False)
    with pytest.raises(BlockingIOError):
        os.read(read, 1)  # all three wake-ups were taken at once
    assert worker.wake_fd == read


def test_a_worker_whose_wake_ups_end_goes_back_to_polling(pipe: tuple[int, int]) -> None:
    read, write = pipe
    worker = MemberWorker("127.0.0.1:9", backoff=Backoff(fast_s=0.01, max_s=30.0), wake_fd=read)
    os.close(write)  # the SuperNode is gone, or never wakes it
    worker._idle()
    assert worker.wake_fd is None
    started = time.monotonic()
    worker._idle()  # now the backoff's pace
    assert time.monotonic() - started < 5.0


def test_a_wake_up_never_blocks_the_supernode(pipe: tuple[int, int]) -> None:
    read, write = pipe
    wake = supernode.pipe_wake(write)
    for _ in range(100_000):  # far more than a pipe holds: the extra ones are dropped
        wake()
    os.close(read)
    wake()  # the worker is gone: no BrokenPipeError


def test_the_supernode_wakes_its_worker_only_when_a_message_was_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    from flwr.supernode import start_client_internal as loop

    pulled: list[int | None] = [None, 7, None]

    def stand_in(**kwargs: object) -> int | None:  # Flower's function, minus the SuperLink
        return pulled.pop(0)

    stand_in.__wrapped__ = loop._pull_and_store_message  # type: ignore[attr-defined]
    monkeypatch.setattr(loop, "_pull_and_store_message", stand_in)
    wakes: list[bool] = []
    assert supernode.install_wake(lambda: wakes.append(True))
    pull_and_store = loop._pull_and_store_message  # now fedchain's wrapper (of the stand-in above)
    assert [pull_and_store() for _ in range(3)] == [None, 7, None]  # type: ignore[call-arg]
    assert wakes == [True]


def test_wake_ups_install_after_the_cadence_as_the_supernode_does(monkeypatch: pytest.MonkeyPatch) -> None:
    from flwr.supernode import start_client_internal as loop

    for name in ("time", "_push_messages", "_pull_and_store_message", "pull_objects"):
        monkeypatch.setattr(loop, name, getattr(loop, name))  # restored after the test
    assert supernode.install_cadence()
    assert supernode.install_wake(lambda: None), "the cadence's wrappers hid Flower's loop from install_wake"


def test_a_loop_that_creates_no_task_gets_no_wake_ups(monkeypatch: pytest.MonkeyPatch) -> None:
    from flwr.supernode import start_client_internal as loop

    monkeypatch.setattr(loop, "_pull_and_store_message", lambda **kwargs: None)
    assert not supernode.install_wake(lambda: None)


class _Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_supernode_stays_quiet_for_half_the_wait_it_learned_after_each_message_type(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = _Clock()
    monkeypatch.setattr(supernode.time, "monotonic", clock)
    cadence = supernode.FleetCadence()
    assert cadence._head_left() == 0.0  # nothing learned: Flower's loop polls at the backoff's pace
    for train_wait, evaluate_wait in ((2.0, 0.3), (1.6, 0.4)):  # two rounds: train -> evaluate -> train
        cadence.received("train")
        cadence.answered()
        clock.now += train_wait
        cadence.received("evaluate")
        cadence.answered()
        clock.now += evaluate_wait
    # The shorter of the last two: rounds that speed up are followed.
    assert cadence.learned_gap("train") == pytest.approx(1.6)
    assert cadence.learned_gap("evaluate") == pytest.approx(0.3)
    cadence.received("train")
    cadence.answered()
    assert cadence._head_left() == pytest.approx(0.8)  # half of 1.6 s without a poll
    clock.now += 0.5
    assert cadence._head_left() == pytest.approx(0.3)
    clock.now += 0.5
    assert cadence._head_left() == 0.0  # past the head: polls at the backoff's pace
    cadence.received("evaluate")  # a message ends the quiet head in any case
    assert cadence._head_left() == 0.0


def test_after_a_held_empty_pull_the_supernode_asks_again_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(supernode.time, "monotonic", clock)
    cadence = supernode.FleetCadence()
    cadence.received("train")
    cadence.answered()
    clock.now += 10.0
    assert cadence.idle_wait() == pytest.approx(0.55)  # Flower's SuperLink: 50 ms + 5 % of 10 s idle
    cadence.pulled_nothing(supernode.HELD_PULL_S + 2.0)  # fedchain's SuperLink held the pull for its hold
    assert cadence.idle_wait() == pytest.approx(0.01)
    cadence.pulled_nothing(0.02)  # answered at once: not held, so back to the backoff
    assert cadence.idle_wait() == pytest.approx(0.55)
    cadence.pulled_nothing(supernode.HELD_PULL_S)
    cadence.received("evaluate")  # a message ends it: the next empty pull decides afresh
    cadence.answered()
    assert cadence.idle_wait() == pytest.approx(0.05)


def _loop_call(pull_object: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any, dict[str, Any]]:
    """Flower 1.42's node state and object store, and the arguments its loop passes for one message."""
    from flwr.app import ConfigRecord, Message, RecordDict
    from flwr.supercore.inflatable.inflatable_object import get_object_tree
    from flwr.supercore.object_store.in_memory_object_store import InMemoryObjectStore
    from flwr.supercore.run import Run
    from flwr.supercore.task_identity import TaskIdentity
    from flwr.supernode.nodestate.in_memory_nodestate import InMemoryNodeState

    for name, value in (("_task_id", 1), ("_run_id", 7), ("_node_id", 1)):  # what a ServerApp process has
        monkeypatch.setattr(TaskIdentity, name, value)
    store = InMemoryObjectStore()
    state = InMemoryNodeState(store)
    state.set_node_id(5)
    run = Run.create_empty(7)
    run.fab_hash = "ab" * 32
    run.primary_task_type = ""
    state.store_run(run)  # a run the node knows: no bundle to fetch
    message = Message(RecordDict({"c": ConfigRecord({"x": 1})}), dst_node_id=5, message_type="train")
    message.metadata.__dict__["_message_id"] = message.object_id
    kwargs = {
        "state": state,
        "object_store": store,
        "node_config": {},
        "receive": lambda: (message, get_object_tree(message)),
        "get_run": None,
        "get_fab": None,
        "pull_object": lambda run_id, object_id: pull_object(message, object_id),
        "confirm_message_received": lambda run_id, message_id: None,
        "trusted_entities": None,
    }
    return state, message, kwargs


def test_a_task_whose_run_stopped_mid_message_is_failed_not_left_for_the_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flwr.supercore.run import RunNotRunningException
    from flwr.supernode import start_client_internal as loop

    def stopped(message: Any, object_id: str) -> bytes:  # the SuperLink: "run not running"
        raise RunNotRunningException

    # Flower alone: the task stays pending, its message kept, its objects never to come.
    state, message, kwargs = _loop_call(stopped, monkeypatch)
    assert loop._pull_and_store_message(**kwargs) is None
    assert [task.status.status for task in state.get_tasks()] == ["pending"]
    assert message.metadata.message_id in state.msg_store

    # With fedchain's wrapper: the task is failed and the message dropped; no wake-up.
    monkeypatch.setattr(loop, "_pull_and_store_message", loop._pull_and_store_message)  # restored after
    wakes: list[bool] = []
    assert supernode.install_wake(lambda: wakes.append(True))
    state, message, kwargs = _loop_call(stopped, monkeypatch)
    assert loop._pull_and_store_message(**kwargs) is None
    assert [(task.status.status, task.status.sub_status) for task in state.get_tasks()] == [("finished", "failed")]
    assert message.metadata.message_id not in state.msg_store
    assert wakes == []
    assert "create_task" not in vars(state) and "store_message" not in vars(state)  # the class's methods again


def test_a_message_whose_objects_arrive_keeps_its_task_and_wakes_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects
    from flwr.supernode import start_client_internal as loop

    def served(message: Any, object_id: str) -> bytes:
        return bytes(get_all_nested_objects(message)[object_id].deflate())

    monkeypatch.setattr(loop, "_pull_and_store_message", loop._pull_and_store_message)
    wakes: list[bool] = []
    assert supernode.install_wake(lambda: wakes.append(True))
    state, message, kwargs = _loop_call(served, monkeypatch)
    assert loop._pull_and_store_message(**kwargs) == 7
    assert [task.status.status for task in state.get_tasks()] == ["pending"]  # for the worker to acquire
    assert message.metadata.message_id in state.msg_store
    assert wakes == [True]
