"""The SuperLink as the launcher runs it: Flower's ``flower-superlink``, each HTTP layer only where it acts.

Flower 1.42's SuperLink serves the Fleet, Control and ServerAppIo APIs from one Starlette app with
eight middleware layers, seven of them ``BaseHTTPMiddleware`` (each an anyio task group and memory
stream per request, whatever it then does). Six act on one API only and pass every other request
straight on, after paying that cost: the four Control layers (no-cache headers on the login routes,
account authentication, license check, Control event log) act only on ``/v1/control/``, the Fleet
event log and SuperNode authentication only on ``/v1/fleet/``. In a federation nearly every
request is a Fleet or ServerAppIo call (polls, object pushes and pulls), and the SuperLink, one
Python process, is what a deployed round waits on (docs/architecture.md, "Where the rest of the time goes").

``python -m fedchain.deployment.superlink ARGS`` runs ``flower-superlink ARGS`` with two changes.
It holds a Fleet pull that finds no message until one is pushed for that node (up to
``FEDCHAIN_FLEET_HOLD_S``, default 3 s; :mod:`fedchain.deployment.held_pulls`). And it wraps those six
layers in :class:`OnlyUnder`, a plain ASGI wrapper that hands requests under the layer's
prefix to it and every other request to the next layer directly. Requests the layer acts on go
through it unchanged, so authentication, node authentication, error translation and protobuf
translation are exactly Flower's; only the pass-through cost goes. The layers that do act on
Fleet and ServerAppIo calls (error and protobuf translation, SuperNode authentication, the Fleet
event log) run there in the request's own task, without Starlette's per-layer task and stream
(:mod:`fedchain.deployment.asgi_layers`).

Example:
    >>> from starlette.middleware import Middleware
    >>> from flwr.superlink.routers.fleet.middlewares import FleetEventLogMiddleware
    >>> [m.cls.__name__ for m in scoped_middleware([Middleware(FleetEventLogMiddleware)])]
    ['OnlyUnder']
"""

from __future__ import annotations

import os
import sys
from typing import Any

from fedchain.deployment.asgi_layers import OnlyUnder

__all__ = [
    "CONTROL_PREFIX",
    "FLEET_PREFIX",
    "HOLD_ENV",
    "OnlyUnder",
    "hold_seconds",
    "install",
    "main",
    "scoped_middleware",
]

#: Environment variable: seconds an empty Fleet pull is held (:mod:`fedchain.deployment.held_pulls`).
HOLD_ENV = "FEDCHAIN_FLEET_HOLD_S"
MAX_HOLD_S = 20.0
#: Path prefixes of Flower's Control and Fleet routers.
CONTROL_PREFIX = "/v1/control/"
FLEET_PREFIX = "/v1/fleet/"


def _layer_prefixes() -> dict[type, str]:
    from flwr.superlink.routers.control.middlewares import (
        ControlAuthenticationMiddleware,
        ControlEventLogMiddleware,
        ControlLicenseMiddleware,
        ControlSensitiveResponseMiddleware,
    )
    from flwr.superlink.routers.fleet.middlewares import FleetEventLogMiddleware
    from flwr.superlink.routers.fleet.node_auth import NodeAuthMiddleware

    return {
        ControlSensitiveResponseMiddleware: CONTROL_PREFIX,
        ControlAuthenticationMiddleware: CONTROL_PREFIX,
        ControlLicenseMiddleware: CONTROL_PREFIX,
        ControlEventLogMiddleware: CONTROL_PREFIX,
        FleetEventLogMiddleware: FLEET_PREFIX,
        # Flower's own test is ``request.url.path.startswith("/v1/fleet/")``, and Starlette builds
        # ``url.path`` from ``scope["path"]``, what OnlyUnder tests: every Fleet call still meets it.
        NodeAuthMiddleware: FLEET_PREFIX,
    }


def scoped_middleware(layers: list[Any]) -> list[Any]:
    """Flower's middleware list with each single-API layer wrapped in :class:`OnlyUnder` (same order)."""
    from starlette.middleware import Middleware

    prefixes = _layer_prefixes()
    scoped = []
    for layer in layers:
        prefix = prefixes.get(layer.cls)
        if prefix is None or layer.args or layer.kwargs:
            scoped.append(layer)
        else:
            scoped.append(Middleware(OnlyUnder, middleware_class=layer.cls, prefix=prefix))
    return scoped


def hold_seconds() -> float:
    """How long the SuperLink holds an empty Fleet pull: ``FEDCHAIN_FLEET_HOLD_S``, default ``HOLD_S``; 0 = never."""
    from fedchain.deployment.held_pulls import HOLD_S

    raw = os.environ.get(HOLD_ENV, "")
    try:
        value = float(raw) if raw else HOLD_S
    except ValueError:
        raise SystemExit(
            f"{HOLD_ENV}={raw!r} is not a number of seconds; set it to e.g. 3, or 0 to answer pulls at once"
        ) from None
    if not 0 <= value <= MAX_HOLD_S:
        raise SystemExit(
            f"{HOLD_ENV}={raw!r} is outside 0..{MAX_HOLD_S:g} s (Flower's SuperNodes time out a call after 30 s)"
        )
    return value


def install() -> None:
    """Make Flower's SuperLink app hold empty Fleet pulls and use :func:`scoped_middleware` (this process only)."""
    import flwr.superlink.main as superlink_main

    flower_layers = superlink_main._get_middleware
    if getattr(flower_layers, "fedchain_scoped", False):
        return

    def layers() -> list[Any]:
        from starlette.middleware import Middleware

        from fedchain.deployment.asgi_layers import direct_middleware
        from fedchain.deployment.held_pulls import HeldPulls

        hold_s = hold_seconds()
        held = [Middleware(HeldPulls, hold_s=hold_s)] if hold_s > 0 else []
        return held + direct_middleware(scoped_middleware(flower_layers()))

    layers.fedchain_scoped = True  # type: ignore[attr-defined]
    superlink_main._get_middleware = layers


def main(argv: list[str] | None = None) -> None:
    """Run ``flower-superlink`` with ``argv`` (default: this process's arguments), layers scoped."""
    install()
    from flwr.superlink.cli import flower_superlink

    sys.argv = ["flower-superlink", *(sys.argv[1:] if argv is None else argv)]
    flower_superlink()


if __name__ == "__main__":
    main()
