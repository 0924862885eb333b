"""Held Fleet pulls: a SuperNode's poll that finds no message waits at the SuperLink for one.

Flower 1.42's Fleet API has no push: a SuperNode asks ``/v1/fleet/pull-messages`` in a loop, and
each ask costs the SuperLink (one Python process) a full HTTP request: TLS, Flower's middleware,
a node-auth signature check, a database read. With 10 members, these polls were 41 % of the
SuperLink's calls in a round (200 of ~490), and a message still waited for the member's next poll.

:class:`HeldPulls` is an outer ASGI layer of the launcher's SuperLink
(:mod:`fedchain.deployment.superlink`). A pull is handed to Flower's app as sent; if Flower answers
that there is no message for the node, the answer is held back until a ServerApp push
(``/v1/runtime/push-messages``) names that node as a destination, and the pull is then asked again
(same request, same signed headers), or until ``hold_s`` has passed, when Flower's empty answer
goes out. So every answer a SuperNode gets is one Flower's own code gave; a message reaches an
idle member within milliseconds of its push; an idle member costs one request per ``hold_s``.

What is not changed: authentication (each ask runs Flower's node-auth check, the signed timestamp
is reused for at most ``hold_s``, well inside Flower's 300 s window), which node gets which
message, and any other route. A Flower SuperNode that does not know about the hold sees an empty
pull that took ``hold_s`` (its HTTP read timeout is 30 s); fedchain's SuperNode
(:class:`fedchain.deployment.supernode.FleetCadence`) notices a held pull and asks again at once.

Example:
    >>> import asyncio
    >>> async def flower(scope, receive, send):  # stands in for Flower's app: an empty answer
    ...     await send({"type": "http.response.start", "status": 200, "headers": []})
    ...     await send({"type": "http.response.body", "body": b""})
    >>> layer = HeldPulls(flower, hold_s=0.05)
    >>> layer.waiting_nodes()
    0
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["FLEET_PULL_PATH", "HOLD_S", "RUNTIME_PUSH_PATH", "HeldPulls"]

#: Flower's routes: a SuperNode's poll; a ServerApp's push of instructions.
FLEET_PULL_PATH = "/v1/fleet/pull-messages"
RUNTIME_PUSH_PATH = "/v1/runtime/push-messages"
#: Longest a pull is held (seconds): well under Flower's 30 s client read timeout, and short
#: enough that a SuperLink shutting down (uvicorn waits for open requests) is not held up long.
HOLD_S = 3.0

Scope = MutableMapping[str, Any]
Event = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Event]]
Send = Callable[[Event], Awaitable[None]]


class HeldPulls:
    """ASGI middleware holding empty Fleet pulls until a push names the node (or ``hold_s``).

    Args:
        app: the next ASGI app (Flower's SuperLink app with its middleware).
        hold_s: the longest a pull with no message is held.
    """

    def __init__(self, app: Any, hold_s: float = HOLD_S) -> None:
        self._next = app
        self.hold_s = hold_s
        #: Pushes seen per destination node, and the pulls waiting for the next one.
        self._pushes: defaultdict[int, int] = defaultdict(int)
        self._waiting: defaultdict[int, set[asyncio.Future[None]]] = defaultdict(set)

    def waiting_nodes(self) -> int:
        """How many nodes have a pull held now."""
        return sum(1 for futures in self._waiting.values() if futures)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hold empty Fleet pulls; note the destinations of ServerApp pushes; pass the rest on."""
        if scope.get("type") == "http" and scope.get("method") == "POST":
            path = scope.get("path")
            if path == FLEET_PULL_PATH:
                await self._pull(scope, receive, send)
                return
            if path == RUNTIME_PUSH_PATH:
                await self._push(scope, receive, send)
                return
        await self._next(scope, receive, send)

    async def _pull(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        node_id = _pulling_node(body)
        if node_id is None:  # not a pull this layer understands: Flower answers it, unheld
            await self._next(scope, _replay(body, receive), send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.hold_s
        while True:
            pushes_before = self._pushes[node_id]
            answer = await _answer(self._next, scope, _replay(body, receive))
            left = deadline - loop.time()
            if left <= 0 or not _no_message(answer) or not await self._wait(node_id, pushes_before, left):
                break
        for event in answer:
            await send(event)

    async def _wait(self, node_id: int, pushes_before: int, seconds: float) -> bool:
        """Wait up to ``seconds`` for a push to ``node_id`` after ``pushes_before``; True if one came."""
        if self._pushes[node_id] != pushes_before:
            return True  # pushed while Flower was answering: ask again at once
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting = self._waiting[node_id]
        waiting.add(future)
        try:
            await asyncio.wait_for(future, seconds)
            return True
        except TimeoutError:
            return False
        finally:
            waiting.discard(future)
            if not waiting:
                del self._waiting[node_id]

    async def _push(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        status: list[int] = []

        async def noting_send(event: Event) -> None:
            if event.get("type") == "http.response.start":
                status.append(int(event.get("status", 0)))
            await send(event)

        await self._next(scope, _replay(body, receive), noting_send)
        if status and status[0] == 200:
            for node_id in _destinations(body):
                self._pushes[node_id] += 1
                for future in self._waiting.get(node_id, ()):
                    if not future.done():
                        future.set_result(None)


async def _read_body(receive: Receive) -> bytes:
    """The request's whole body (Fleet and ServerAppIo requests are single protobuf messages)."""
    parts = []
    while True:
        event = await receive()
        if event.get("type") != "http.request":
            break
        parts.append(bytes(event.get("body", b"")))
        if not event.get("more_body", False):
            break
    return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then the connection's own (disconnect) events."""
    sent = False

    async def replayed() -> Event:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _answer(app: Any, scope: Scope, receive: Receive) -> list[Event]:
    """Run ``app`` on the request and keep its response events instead of sending them."""
    events: list[Event] = []

    async def keep(event: Event) -> None:
        events.append(event)

    await app(scope, receive, keep)
    return events


def _pulling_node(body: bytes) -> int | None:
    from flwr.proto.fleet_pb2 import PullMessagesRequest
    from google.protobuf.message import DecodeError

    request = PullMessagesRequest()
    try:
        request.ParseFromString(body)
    except DecodeError:
        return None
    if not request.HasField("node") or request.message_ids:
        return None  # a pull of named messages is answered as asked, at once
    return int(request.node.node_id)


def _no_message(answer: list[Event]) -> bool:
    """Whether Flower's answer is a successful pull with no message in it."""
    from flwr.proto.fleet_pb2 import PullMessagesResponse
    from google.protobuf.message import DecodeError

    starts = [event for event in answer if event.get("type") == "http.response.start"]
    if len(starts) != 1 or starts[0].get("status") != 200:
        return False
    body = b"".join(bytes(event.get("body", b"")) for event in answer if event.get("type") == "http.response.body")
    response = PullMessagesResponse()
    try:
        response.ParseFromString(body)
    except DecodeError:
        return False
    return not response.messages_list and not response.HasField("reconnect")


def _destinations(body: bytes) -> set[int]:
    """The destination nodes of a ServerApp's pushed messages (none if the body is not such a push)."""
    from flwr.proto.runtime_pb2 import PushAppMessagesRequest
    from google.protobuf.message import DecodeError

    request = PushAppMessagesRequest()
    try:
        request.ParseFromString(body)
    except DecodeError:
        return set()
    return {int(message.metadata.dst_node_id) for message in request.messages_list}
