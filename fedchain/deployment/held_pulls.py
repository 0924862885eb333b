"""Held pulls: a poll that finds nothing yet waits at the SuperLink for the push it waits for.

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
    >>> layer.waiting()
    0
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from fedchain.deployment.asgi_layers import replay_body

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


@dataclass(frozen=True)
class _Pull:
    """A route whose empty answers are held: what it waits for, and how Flower says "nothing yet"."""

    key: Callable[[bytes], str | None]  # from the request body (None: answer it unheld)
    nothing_yet: Callable[[list[Event]], bool]  # from Flower's answer


class HeldPulls:
    """ASGI middleware holding pulls that find nothing yet until a push stores it (or ``hold_s``).

    Args:
        app: the next ASGI app (Flower's SuperLink app with its middleware).
        hold_s: the longest a pull is held.
    """

    def __init__(self, app: Any, hold_s: float = HOLD_S) -> None:
        self._next = app
        self.hold_s = hold_s
        self._pulls: dict[str, _Pull] = {FLEET_PULL_PATH: _Pull(_pulling_node, _no_message)}
        self._pushes: dict[str, Callable[[bytes], set[str]]] = {RUNTIME_PUSH_PATH: _destinations}
        #: The pulls waiting, by what they wait for ("node:<id>").
        self._waiting: defaultdict[str, set[asyncio.Future[None]]] = defaultdict(set)

    def waiting(self) -> int:
        """How many pulls are held now."""
        return sum(len(futures) for futures in self._waiting.values())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hold pulls that find nothing yet; release them on the pushes they wait for; pass the rest on."""
        if scope.get("type") == "http" and scope.get("method") == "POST":
            path = str(scope.get("path"))
            if path in self._pulls:
                await self._pull(self._pulls[path], scope, receive, send)
                return
            if path in self._pushes:
                await self._push(self._pushes[path], scope, receive, send)
                return
        await self._next(scope, receive, send)

    async def _pull(self, route: _Pull, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        key = route.key(body)
        if key is None:  # not a pull this layer understands: Flower answers it, unheld
            await self._next(scope, replay_body(body, receive), send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.hold_s
        while True:
            # Waiting starts before Flower is asked, so a push that lands meanwhile is not missed.
            pushed: asyncio.Future[None] = loop.create_future()
            self._waiting[key].add(pushed)
            try:
                answer = await _answer(self._next, scope, replay_body(body, receive))
                left = deadline - loop.time()
                if left <= 0 or not route.nothing_yet(answer):
                    break
                try:
                    await asyncio.wait_for(pushed, left)
                except TimeoutError:
                    break
            finally:
                self._forget(key, pushed)
        for event in answer:
            await send(event)

    def _forget(self, key: str, future: asyncio.Future[None]) -> None:
        waiting = self._waiting.get(key)
        if waiting is not None:
            waiting.discard(future)
            if not waiting:
                del self._waiting[key]

    async def _push(self, keys: Callable[[bytes], set[str]], scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        status: list[int] = []

        async def noting_send(event: Event) -> None:
            if event.get("type") == "http.response.start":
                status.append(int(event.get("status", 0)))
            await send(event)

        await self._next(scope, replay_body(body, receive), noting_send)
        if status and status[0] == 200:  # Flower stored it: release the pulls waiting for it
            for key in keys(body):
                for future in self._waiting.get(key, ()):
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


async def _answer(app: Any, scope: Scope, receive: Receive) -> list[Event]:
    """Run ``app`` on the request and keep its response events instead of sending them."""
    events: list[Event] = []

    async def keep(event: Event) -> None:
        events.append(event)

    await app(scope, receive, keep)
    return events


def _parsed(message_class: type[Any], body: bytes | None) -> Any | None:
    """``body`` parsed as ``message_class`` (a protobuf message), None if it is absent or does not parse."""
    from google.protobuf.message import DecodeError

    if body is None:
        return None
    message = message_class()
    try:
        message.ParseFromString(body)
    except DecodeError:
        return None
    return message


def _ok_body(answer: list[Event]) -> bytes | None:
    """The body of a 200 answer (None for any other status)."""
    starts = [event for event in answer if event.get("type") == "http.response.start"]
    if len(starts) != 1 or starts[0].get("status") != 200:
        return None
    return b"".join(bytes(event.get("body", b"")) for event in answer if event.get("type") == "http.response.body")


def _pulling_node(body: bytes) -> str | None:
    from flwr.proto.fleet_pb2 import PullMessagesRequest

    request = _parsed(PullMessagesRequest, body)
    if request is None or not request.HasField("node") or request.message_ids:
        return None  # a pull of named messages is answered as asked, at once
    return f"node:{int(request.node.node_id)}"


def _no_message(answer: list[Event]) -> bool:
    """Whether Flower's answer is a successful pull with no message in it."""
    from flwr.proto.fleet_pb2 import PullMessagesResponse

    response = _parsed(PullMessagesResponse, _ok_body(answer))
    return response is not None and not response.messages_list and not response.HasField("reconnect")


def _destinations(body: bytes) -> set[str]:
    """The destination nodes of a ServerApp's pushed messages (none if the body is not such a push)."""
    from flwr.proto.runtime_pb2 import PushAppMessagesRequest

    request = _parsed(PushAppMessagesRequest, body)
    return {f"node:{int(m.metadata.dst_node_id)}" for m in request.messages_list} if request is not None else set()
