"""The launcher's SuperLink: Flower's HTTP layers, the single-API ones scoped to their API's paths."""

from __future__ import annotations

import asyncio
from typing import Any

import flwr.superlink.main as superlink_main
import httpx
import pytest
from fastapi import HTTPException
from flwr.supercore.protobuf.translation import ProtobufTranslationMiddleware
from flwr.superlink.routers.control.middlewares import (
    ControlAuthenticationMiddleware,
    ControlEventLogMiddleware,
    ControlLicenseMiddleware,
    ControlSensitiveResponseMiddleware,
)
from flwr.superlink.routers.fleet.middlewares import FleetEventLogMiddleware
from flwr.superlink.routers.fleet.node_auth import NodeAuthMiddleware
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from fedchain.deployment.superlink import CONTROL_PREFIX, FLEET_PREFIX, OnlyUnder, scoped_middleware

SEEN: list[str] = []


class _Recording(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        SEEN.append(request.url.path)
        response = await call_next(request)
        response.headers["x-layer"] = "ran"
        return response


def test_every_single_api_layer_of_flowers_list_is_scoped_and_the_rest_kept_in_order() -> None:
    flower_layers = superlink_main._get_middleware()
    scoped = scoped_middleware(flower_layers)

    assert len(scoped) == len(flower_layers)
    wrapped = {m.kwargs["middleware_class"]: m.kwargs["prefix"] for m in scoped if m.cls is OnlyUnder}
    assert wrapped == {
        ControlSensitiveResponseMiddleware: CONTROL_PREFIX,
        ControlAuthenticationMiddleware: CONTROL_PREFIX,
        ControlLicenseMiddleware: CONTROL_PREFIX,
        ControlEventLogMiddleware: CONTROL_PREFIX,
        FleetEventLogMiddleware: FLEET_PREFIX,
        NodeAuthMiddleware: FLEET_PREFIX,
    }
    kept = [m.cls for m in scoped if m.cls is not OnlyUnder]
    # Error translation and protobuf translation act on every API: untouched.
    assert kept == [m.cls for m in flower_layers if m.cls not in wrapped]
    assert BaseHTTPMiddleware in kept and ProtobufTranslationMiddleware in kept
    # Same order: each scoped layer sits where Flower put the layer it wraps.
    assert [m.kwargs.get("middleware_class", m.cls) for m in scoped] == [m.cls for m in flower_layers]


def test_a_scoped_layer_runs_for_its_paths_only() -> None:
    async def ok(request: Request) -> Response:
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[Route("/v1/control/list-runs", ok, methods=["POST"]), Route("/v1/fleet/pull", ok, methods=["POST"])],
        middleware=[Middleware(OnlyUnder, middleware_class=_Recording, prefix=CONTROL_PREFIX)],
    )
    SEEN.clear()

    async def post_both() -> tuple[Any, Any]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://superlink") as client:
            return await client.post("/v1/control/list-runs"), await client.post("/v1/fleet/pull")

    control, fleet = asyncio.run(post_both())
    assert (control.status_code, control.text, control.headers.get("x-layer")) == (200, "ok", "ran")
    assert (fleet.status_code, fleet.text, fleet.headers.get("x-layer")) == (200, "ok", None)
    assert SEEN == ["/v1/control/list-runs"]


class _ProtobufRequest(BaseHTTPMiddleware):
    """Stands where Flower's protobuf translation sets ``request.state.protobuf_request``."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        from flwr.proto.fleet_pb2 import PullMessagesRequest

        request.state.protobuf_request = PullMessagesRequest()
        return await call_next(request)


def test_scoped_supernode_authentication_still_refuses_an_unsigned_fleet_call() -> None:
    async def ok(request: Request) -> Response:
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[
            Route("/v1/fleet/pull-messages", ok, methods=["POST"]),
            Route("/v1/serverappio/pull-messages", ok, methods=["POST"]),
        ],
        middleware=[
            Middleware(_ProtobufRequest),
            Middleware(OnlyUnder, middleware_class=NodeAuthMiddleware, prefix=FLEET_PREFIX),
        ],
    )

    async def post(path: str) -> Any:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://superlink") as client:
            return await client.post(path)

    # Flower's own check runs on the Fleet call: no signed timestamp, refused (Flower's error
    # translation layer, not in this app, turns the exception into the 401 response).
    with pytest.raises(HTTPException) as refused:
        asyncio.run(post("/v1/fleet/pull-messages"))
    assert refused.value.status_code == 401
    # Another API is not a SuperNode's: Flower's layer would have passed it on unchecked, as here.
    serverappio = asyncio.run(post("/v1/serverappio/pull-messages"))
    assert (serverappio.status_code, serverappio.text) == (200, "ok")
