"""Flower's BaseHTTPMiddleware layers run in the request's task (DirectDispatch): same answers; other APIs as before."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import flwr.superlink.main as superlink_main
import httpx
import pytest
from fastapi import HTTPException
from flwr.proto.message_pb2 import PullObjectRequest
from flwr.proto.runtime_pb2 import AcquireTaskRequest, PullTaskInputRequest
from flwr.supercore.error import http_error_translator
from flwr.supercore.object_store import ObjectStoreFactory
from flwr.supercore.protobuf.translation import ProtobufTranslationMiddleware
from flwr.superlink.routers.fleet.node_auth import NodeAuthMiddleware
from flwr.supernode.nodestate import NodeStateFactory
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from fedchain.deployment import supernode
from fedchain.deployment.asgi_layers import UNARY_PREFIXES, DirectDispatch, OnlyUnder, direct_middleware
from fedchain.deployment.superlink import FLEET_PREFIX, scoped_middleware

PROTOBUF = {"content-type": "application/protobuf"}
#: Calls a worker makes on its SuperNode, well formed or not: each gets Flower's own answer.
RUNTIME_CALLS = [
    ("/v1/runtime/acquire-task", AcquireTaskRequest().SerializeToString(), PROTOBUF),  # 200, no task
    ("/v1/runtime/pull-task-input", PullTaskInputRequest().SerializeToString(), PROTOBUF),  # 401, no task token
    ("/v1/runtime/pull-object", PullObjectRequest(object_id="ab" * 32).SerializeToString(), PROTOBUF),  # 401
    ("/v1/runtime/acquire-task", b"\xff\xff\xff", PROTOBUF),  # 400, not protobuf
    ("/v1/runtime/acquire-task", b"{}", {"content-type": "application/json"}),  # 415
    ("/v1/runtime/no-such-call", b"", PROTOBUF),  # 404
]


def _answers(app: Any, calls: list[tuple[str, bytes, dict[str, str]]]) -> list[tuple[int, str | None, bytes]]:
    async def send() -> list[tuple[int, str | None, bytes]]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as client:
            answers = []
            for path, body, headers in calls:
                response = await client.post(path, content=body, headers=headers)
                answers.append((response.status_code, response.headers.get("content-type"), response.content))
            return answers

    return asyncio.run(send())


def _runtime_api(*, direct: bool) -> Any:
    from flwr.supernode.main import create_app

    app = create_app(state_factory=NodeStateFactory(ObjectStoreFactory()), superexec_auth_secret=None)
    if direct:
        app.user_middleware = direct_middleware(app.user_middleware)
    return app


def test_flowers_runtime_api_answers_the_same_with_its_layers_run_directly() -> None:
    direct_app = _runtime_api(direct=True)
    assert [m.cls for m in direct_app.user_middleware] == [DirectDispatch, DirectDispatch]  # both of Flower's

    starlette = _answers(_runtime_api(direct=False), RUNTIME_CALLS)
    direct = _answers(direct_app, RUNTIME_CALLS)

    assert direct == starlette
    # What was compared: a protobuf answer and each of Flower's translated errors.
    assert [status for status, _, _ in direct] == [200, 401, 401, 400, 415, 404]
    assert direct[0][1] == "application/protobuf" and all(ct == "application/json" for _, ct, _ in direct[1:])


class _Echo(BaseHTTPMiddleware):
    """Reads the body before the app below does, as Flower's protobuf layer does; notes which call_next it got."""

    direct_calls: ClassVar[list[bool]] = []

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        request.state.seen = (await request.body())[:5]
        _Echo.direct_calls.append(isinstance(getattr(call_next, "__self__", None), DirectDispatch))
        response = await call_next(request)
        response.headers["x-layer"] = "ran"
        return response


async def _echo(request: Request) -> Response:
    return PlainTextResponse(f"{request.state.seen!r} {len(await request.body())}")


async def _fail(request: Request) -> Response:
    raise RuntimeError("the handler broke")


async def _stream(request: Request) -> Response:
    async def chunks() -> Any:
        for index in range(3):
            yield f"log {index}\n".encode()

    return StreamingResponse(chunks(), media_type="text/plain")


def _app() -> Starlette:
    return Starlette(
        routes=[
            Route("/v1/fleet/echo", _echo, methods=["POST"]),
            Route("/v1/runtime/fail", _fail, methods=["POST"]),
            Route("/v1/control/stream-logs", _stream, methods=["POST"]),
        ],
        middleware=direct_middleware(
            [Middleware(BaseHTTPMiddleware, dispatch=http_error_translator), Middleware(_Echo)]
        ),
    )


def test_a_direct_layer_hands_on_the_body_it_read_and_its_request_state() -> None:
    _Echo.direct_calls.clear()
    ((status, _, body),) = _answers(_app(), [("/v1/fleet/echo", b"hello world", {})])
    assert (status, body) == (200, b"b'hello' 11")  # the state the layer set, and the whole body again
    assert _Echo.direct_calls == [True]


def test_an_exception_below_reaches_flowers_error_translation_as_from_starlettes_call_next() -> None:
    ((status, content_type, body),) = _answers(_app(), [("/v1/runtime/fail", b"", {})])
    assert (status, content_type) == (500, "application/json")
    assert b"the handler broke" not in body  # Flower's generic answer, the details only in its log


def test_other_apis_keep_starlettes_streaming_layer() -> None:
    _Echo.direct_calls.clear()
    ((status, _, body),) = _answers(_app(), [("/v1/control/stream-logs", b"", {})])
    assert (status, body) == (200, b"log 0\nlog 1\nlog 2\n")
    assert _Echo.direct_calls == [False]  # Starlette's own call_next: the stream is not buffered


def test_flowers_superlink_layers_that_act_on_fleet_or_serverappio_calls_run_directly_in_order() -> None:
    flower_layers = superlink_main._get_middleware()
    layers = direct_middleware(scoped_middleware(flower_layers))

    assert len(layers) == len(flower_layers)
    direct = [m.kwargs["middleware_class"] for m in layers if m.cls is DirectDispatch]
    assert direct == [BaseHTTPMiddleware, ProtobufTranslationMiddleware]
    assert all(m.kwargs["prefixes"] == UNARY_PREFIXES for m in layers if m.cls is DirectDispatch)
    scoped = [m.kwargs["prefix"] for m in layers if m.cls is OnlyUnder]
    assert scoped.count(FLEET_PREFIX) == 2  # SuperNode authentication and the Fleet event log, run directly ...
    for layer in layers:
        if layer.cls is OnlyUnder and layer.kwargs["prefix"] == FLEET_PREFIX:
            assert isinstance(layer.kwargs["middleware_class"](_app()), DirectDispatch)
        elif layer.cls is OnlyUnder:  # ... the Control layers as Starlette runs them (streams)
            assert issubclass(layer.kwargs["middleware_class"], BaseHTTPMiddleware)


def test_supernode_authentication_run_directly_still_refuses_an_unsigned_fleet_call() -> None:
    class _ProtobufRequest(BaseHTTPMiddleware):  # where Flower's protobuf layer sets the parsed request
        async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
            from flwr.proto.fleet_pb2 import PullMessagesRequest

            request.state.protobuf_request = PullMessagesRequest()
            return await call_next(request)

    async def ok(request: Request) -> Response:
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[Route("/v1/fleet/pull-messages", ok, methods=["POST"])],
        middleware=direct_middleware(
            [
                Middleware(_ProtobufRequest),
                Middleware(OnlyUnder, middleware_class=NodeAuthMiddleware, prefix=FLEET_PREFIX),
            ]
        ),
    )
    with pytest.raises(HTTPException) as refused:  # Flower's check, raised through the direct layers
        _answers(app, [("/v1/fleet/pull-messages", b"", {})])
    assert refused.value.status_code == 401


def test_the_supernode_runs_its_runtime_apis_layers_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    import flwr.supernode.main as supernode_main

    monkeypatch.setattr(supernode_main, "create_app", supernode_main.create_app)  # restored after
    supernode.install_direct_layers()
    supernode.install_direct_layers()  # twice: wrapped once
    app = supernode_main.create_app(state_factory=NodeStateFactory(ObjectStoreFactory()))
    assert [m.cls for m in app.user_middleware] == [DirectDispatch, DirectDispatch]
