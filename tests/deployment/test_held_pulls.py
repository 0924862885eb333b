"""Held Fleet pulls (fedchain/deployment/held_pulls.py): an empty pull waits at the SuperLink for a push.

The layer runs here in front of a small ASGI app that answers Flower's two routes as Flower's
SuperLink does (the same paths and protobuf messages: a pull takes the node's queued messages, a
push queues them by destination). The full path, Flower's SuperLink app with TLS and node auth,
runs in every deployment test (``test_federation_integration.py``, ``test_worker.py``), since the
launcher's SuperLink holds pulls by default.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from typing import Any

import httpx
import pytest
from flwr.proto.fleet_pb2 import PullMessagesRequest, PullMessagesResponse
from flwr.proto.message_pb2 import (
    Message,
)
from flwr.proto.node_pb2 import Node
from flwr.proto.runtime_pb2 import PushAppMessagesRequest
from google.protobuf.message import DecodeError

from fedchain.deployment import superlink
from fedchain.deployment.held_pulls import (
    FLEET_PULL_PATH,
    RUNTIME_PUSH_PATH,
    HeldPulls,
)

MEMBER, OTHER, UNKNOWN = 11, 22, 99
#: Long enough that a test finishing well before it proves the pull was released, not timed out.
LONG_HOLD_S = 30.0


class _Link:
    """Flower's pull and push routes over per-node queues; counts each node's asks."""

    def __init__(self) -> None:
        self.queued: defaultdict[int, list[Message]] = defaultdict(list)
        self.asks: Counter[int | str] = Counter()
        self.fail_pushes = False
        self.gate: asyncio.Event | None = None  # when set up, the first ask waits on it after reading

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = (await receive())["body"]
        if scope["path"] == FLEET_PULL_PATH:
            try:
                node = PullMessagesRequest.FromString(body).node.node_id
            except DecodeError:
                await _send(send, 400, b'{"detail": "Invalid protobuf payload"}')
                return
            self.asks[node] += 1
            if node == UNKNOWN:
                await _send(send, 401, b'{"detail": "Invalid SuperNode authentication"}')
                return
            messages = self.queued.pop(node, [])
            if self.gate is not None and self.asks[node] == 1:
                await self.gate.wait()  # a push lands while this ask is being answered
            await _send(send, 200, PullMessagesResponse(messages_list=messages).SerializeToString())
        elif scope["path"] == RUNTIME_PUSH_PATH:
            if self.fail_pushes:
                await _send(send, 500, b'{"detail": "database unavailable"}')
                return
            for message in PushAppMessagesRequest.FromString(body).messages_list:
                self.queued[message.metadata.dst_node_id].append(message)
            await _send(send, 200, b"")
        else:
            await _send(send, 404, b"")


async def _send(send: Any, status: int, body: bytes) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-length", str(len(body)).encode())]}
    )
    await send({"type": "http.response.body", "body": body})


def _client(layer: HeldPulls) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=layer), base_url="http://superlink")


async def _pull(client: httpx.AsyncClient, node: int) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await client.post(
        FLEET_PULL_PATH, content=PullMessagesRequest(node=Node(node_id=node)).SerializeToString()
    )
    return response, time.monotonic() - started


async def _push(client: httpx.AsyncClient, *nodes: int) -> httpx.Response:
    request = PushAppMessagesRequest()
    for node in nodes:
        message = request.messages_list.add()
        message.metadata.dst_node_id = node
        message.metadata.message_type = "train"
    return await client.post(RUNTIME_PUSH_PATH, content=request.SerializeToString())


def _messages(response: httpx.Response) -> list[Message]:
    return list(PullMessagesResponse.FromString(response.content).messages_list)


def test_an_empty_pull_is_held_for_the_hold_then_gets_flowers_empty_answer() -> None:
    async def scenario() -> None:
        link = _Link()
        async with _client(HeldPulls(link, hold_s=0.3)) as client:
            response, seconds = await _pull(client, MEMBER)
        assert response.status_code == 200 and _messages(response) == []
        assert seconds >= 0.3
        assert link.asks[MEMBER] == 1  # asked once: the hold costs Flower nothing more

    asyncio.run(scenario())


def test_a_push_to_the_node_releases_its_held_pull_with_the_message() -> None:
    async def scenario() -> None:
        link = _Link()
        layer = HeldPulls(link, hold_s=LONG_HOLD_S)
        async with _client(layer) as client:
            pull = asyncio.create_task(_pull(client, MEMBER))
            while layer.waiting() == 0:
                await asyncio.sleep(0.01)
            assert (await _push(client, MEMBER)).status_code == 200
            response, seconds = await pull
        assert [m.metadata.dst_node_id for m in _messages(response)] == [MEMBER]
        assert seconds < LONG_HOLD_S / 3
        assert link.asks[MEMBER] == 2  # the empty ask, then the one after the push
        assert layer.waiting() == 0

    asyncio.run(scenario())


def test_a_push_to_another_node_leaves_the_pull_held_and_the_message_queued() -> None:
    async def scenario() -> None:
        link = _Link()
        layer = HeldPulls(link, hold_s=0.5)
        async with _client(layer) as client:
            pull = asyncio.create_task(_pull(client, MEMBER))
            while layer.waiting() == 0:
                await asyncio.sleep(0.01)
            await _push(client, OTHER)
            response, seconds = await pull
            assert _messages(response) == [] and seconds >= 0.5
            assert link.asks[MEMBER] == 1
            other, _ = await _pull(client, OTHER)  # the other node's message is there for it at once
        assert [m.metadata.dst_node_id for m in _messages(other)] == [OTHER]

    asyncio.run(scenario())


def test_a_push_while_flower_answers_the_first_ask_is_not_missed() -> None:
    async def scenario() -> None:
        link = _Link()
        link.gate = asyncio.Event()
        async with _client(HeldPulls(link, hold_s=LONG_HOLD_S)) as client:
            pull = asyncio.create_task(_pull(client, MEMBER))
            while link.asks[MEMBER] == 0:
                await asyncio.sleep(0.01)
            await _push(client, MEMBER)  # after Flower read the queue, before it answered
            link.gate.set()
            response, seconds = await pull
        assert len(_messages(response)) == 1 and seconds < LONG_HOLD_S / 3

    asyncio.run(scenario())


def test_a_refused_pull_and_a_pull_this_layer_does_not_know_are_answered_at_once() -> None:
    async def scenario() -> None:
        link = _Link()
        async with _client(HeldPulls(link, hold_s=LONG_HOLD_S)) as client:
            refused, seconds = await _pull(client, UNKNOWN)
            assert refused.status_code == 401 and seconds < LONG_HOLD_S / 3
            named = PullMessagesRequest(node=Node(node_id=MEMBER), message_ids=["m1"]).SerializeToString()
            started = time.monotonic()
            assert (await client.post(FLEET_PULL_PATH, content=named)).status_code == 200
            assert time.monotonic() - started < LONG_HOLD_S / 3
            started = time.monotonic()
            garbage = await client.post(FLEET_PULL_PATH, content=b"\xff\xff not protobuf")
            assert garbage.status_code == 400 and time.monotonic() - started < LONG_HOLD_S / 3  # Flower's refusal
        assert link.asks[UNKNOWN] == 1

    asyncio.run(scenario())


def test_a_push_flower_refused_wakes_nobody() -> None:
    async def scenario() -> None:
        link = _Link()
        link.fail_pushes = True
        layer = HeldPulls(link, hold_s=0.4)
        async with _client(layer) as client:
            pull = asyncio.create_task(_pull(client, MEMBER))
            while layer.waiting() == 0:
                await asyncio.sleep(0.01)
            assert (await _push(client, MEMBER)).status_code == 500
            _, seconds = await pull
        assert seconds >= 0.4 and link.asks[MEMBER] == 1

    asyncio.run(scenario())


def test_the_launchers_superlink_holds_pulls_unless_told_not_to(monkeypatch: pytest.MonkeyPatch) -> None:
    import flwr.superlink.main as superlink_main

    monkeypatch.setattr(superlink_main, "_get_middleware", superlink_main._get_middleware)  # restored after
    superlink.install()
    monkeypatch.delenv(superlink.HOLD_ENV, raising=False)
    layers = superlink_main._get_middleware()
    assert layers[0].cls is HeldPulls and layers[0].kwargs == {"hold_s": 3.0}
    monkeypatch.setenv(superlink.HOLD_ENV, "0")
    assert all(m.cls is not HeldPulls for m in superlink_main._get_middleware())
    for bad in ("soon", "-1", "45"):
        monkeypatch.setenv(superlink.HOLD_ENV, bad)
        with pytest.raises(SystemExit, match=superlink.HOLD_ENV):
            superlink.hold_seconds()
