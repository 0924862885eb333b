"""ASGI wrappers around Flower's HTTP layers: one only where it acts, one without Starlette's per-layer task.

:class:`OnlyUnder` hands a layer only the requests under its path prefix (the SuperLink's
single-API layers, :mod:`fedchain.deployment.superlink`); :class:`DirectDispatch` runs a
``BaseHTTPMiddleware`` layer's own ``dispatch`` in the request's task.

Flower 1.42's HTTP servers (the SuperLink, and each SuperNode's Runtime API that the member worker
talks to) put every request through Starlette ``BaseHTTPMiddleware`` layers: Flower's error
translator and protobuf translation on every call, SuperNode authentication on Fleet calls.
Starlette runs the app below each such layer in an anyio task of its own and streams its response
back through a memory stream. Measured here (``httpx`` against a one-route Starlette app in the
same process, this 2-core machine): 0.6-0.7 ms a request without layers, 3.7-4.2 ms with three
pass-through ones, so about 1 ms per layer per request; a Fleet call met four such layers on the
SuperLink, a ServerAppIo call two, a worker's call on its SuperNode two.

:class:`DirectDispatch` runs the same layer's ``dispatch`` (Flower's code, unchanged) with a
``call_next`` that awaits the app below in the same task and hands back its response whole. That
is the only difference: the response is buffered instead of streamed, so it is used only where
responses are unary protobuf messages that Flower's own translation layer builds whole anyway,
the Fleet and Runtime APIs (:data:`UNARY_PREFIXES`); any other request (the Control API's log and
event streams) goes through Starlette's streaming layer as before. A body the layer read is
handed again to the app below, as Starlette does; an exception raised below reaches the layer's
``dispatch`` as it does from Starlette's ``call_next``.

Example::

    app.user_middleware = direct_middleware(app.user_middleware)  # before the app serves its first request
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["UNARY_PREFIXES", "DirectDispatch", "OnlyUnder", "direct_middleware", "replay_body"]

#: Paths whose every response is one protobuf message (Flower 1.42: the Fleet API, and the Runtime
#: API of the SuperLink and of each SuperNode).
UNARY_PREFIXES = ("/v1/fleet/", "/v1/runtime/")


class OnlyUnder:
    """ASGI middleware: ``middleware_class`` for HTTP requests under ``prefix``, the next app for the rest.

    Args:
        app: the next ASGI app (what Starlette passes).
        middleware_class: the layer to scope, built around ``app``.
        prefix: the request paths it acts on.
    """

    def __init__(self, app: Any, middleware_class: Callable[[Any], Any], prefix: str) -> None:
        self._next = app
        self._layer = middleware_class(app)
        self._prefix = prefix

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Hand the request to the layer when it is under the prefix, else to the next app."""
        if scope.get("type") == "http" and str(scope.get("path", "")).startswith(self._prefix):
            await self._layer(scope, receive, send)
        else:
            await self._next(scope, receive, send)


class DirectDispatch:
    """ASGI middleware: a ``BaseHTTPMiddleware`` layer whose ``call_next`` runs in the request's task.

    Args:
        app: the next ASGI app (what Starlette passes).
        middleware_class: Flower's layer (``BaseHTTPMiddleware`` or a subclass), built around
            ``app`` with ``options``; it serves every request outside ``prefixes`` as Starlette would.
        prefixes: paths whose responses are unary (buffering them changes nothing but speed).
        options: the layer's own arguments (``dispatch=`` for a plain ``BaseHTTPMiddleware``).
    """

    def __init__(
        self,
        app: ASGIApp,
        middleware_class: Callable[..., Any],
        prefixes: tuple[str, ...] = UNARY_PREFIXES,
        **options: Any,
    ) -> None:
        self._next = app
        self._layer = middleware_class(app, **options)
        self._dispatch = self._layer.dispatch_func
        self._prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the layer's ``dispatch`` directly for a unary request, else the layer as Starlette does."""
        if scope.get("type") != "http" or not str(scope.get("path", "")).startswith(self._prefixes):
            await self._layer(scope, receive, send)
            return
        from starlette.requests import Request

        response = await self._dispatch(Request(scope, receive), self._call_next)
        await response(scope, receive, send)

    async def _call_next(self, request: Any) -> Any:
        """The app below, run to its end with ``request``; its response, whole."""
        from starlette.responses import Response

        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self._next(request.scope, _replaying(request), capture)
        if not start:
            raise RuntimeError("No response returned.")  # what Starlette's call_next raises
        response = Response(b"".join(chunks), status_code=start["status"])
        response.raw_headers = list(start.get("headers", []))
        return response


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then the connection's own events (a disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _replaying(request: Any) -> Receive:
    """``request``'s receive channel, first handing out the body the layer already read (if it did)."""
    body: bytes | None = getattr(request, "_body", None)
    return request.receive if body is None else replay_body(body, request.receive)


def direct_middleware(layers: list[Any], prefixes: tuple[str, ...] = UNARY_PREFIXES) -> list[Any]:
    """Starlette's middleware list with each ``BaseHTTPMiddleware`` layer run by :class:`DirectDispatch`.

    A layer that fedchain's SuperLink already scopes to one API (``OnlyUnder``, see
    :mod:`fedchain.deployment.superlink`) is run directly when its API is one of ``prefixes``; other
    entries are kept as they are, in the same order.
    """
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware

    def is_base_http(cls: Any) -> bool:
        return isinstance(cls, type) and issubclass(cls, BaseHTTPMiddleware)

    direct = []
    for layer in layers:
        if layer.args:
            direct.append(layer)
        elif is_base_http(layer.cls):
            # mypy's ParamSpec check of Starlette's factory protocol rejects keyword-only use here.
            direct.append(Middleware(DirectDispatch, middleware_class=layer.cls, prefixes=prefixes, **layer.kwargs))  # type: ignore[arg-type]
        elif layer.cls is OnlyUnder and is_base_http(layer.kwargs.get("middleware_class")):
            prefix = layer.kwargs["prefix"]
            if not prefix.startswith(prefixes):
                direct.append(layer)
                continue
            inner = layer.kwargs["middleware_class"]

            def scoped(app: Any, inner: Any = inner, prefix: str = prefix) -> DirectDispatch:
                return DirectDispatch(app, middleware_class=inner, prefixes=(prefix,))

            direct.append(Middleware(OnlyUnder, middleware_class=scoped, prefix=prefix))
        else:
            direct.append(layer)
    return direct
