"""Flower's HTTP layers per request: Starlette's ``BaseHTTPMiddleware`` vs fedchain's ``DirectDispatch``.

Flower's own SuperNode Runtime API (``flwr.supernode.main.create_app``: its routes, its error and
protobuf translation layers) answers ``acquire-task`` calls, as a member worker sends them, through
``httpx``'s in-process ASGI transport: once as Flower builds it (the baseline), once with its
layers run by :class:`fedchain.deployment.asgi_layers.DirectDispatch`. Alternating repeats of
``CALLS`` calls each; the figure is the mean time per call. Network, TLS and the HTTP server are
left out on purpose: what differs between the two is the layers alone. Target: ratio <= 0.8.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

CALLS = 400
REPEATS = 3
TARGET_RATIO = 0.8


def _runtime_api(*, direct: bool) -> Any:
    from flwr.supercore.object_store import ObjectStoreFactory
    from flwr.supernode.main import create_app
    from flwr.supernode.nodestate import NodeStateFactory

    from fedchain.deployment.asgi_layers import direct_middleware

    app = create_app(state_factory=NodeStateFactory(ObjectStoreFactory()), superexec_auth_secret=None)
    if direct:
        app.user_middleware = direct_middleware(app.user_middleware)
    return app


def _ms_per_call(app: Any) -> float:
    import httpx
    from flwr.proto.runtime_pb2 import AcquireTaskRequest

    body = AcquireTaskRequest().SerializeToString()
    headers = {"content-type": "application/protobuf"}

    async def calls() -> float:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://supernode") as client:
            for _ in range(20):  # warm-up
                (await client.post("/v1/runtime/acquire-task", content=body, headers=headers)).raise_for_status()
            started = time.perf_counter()
            for _ in range(CALLS):
                (await client.post("/v1/runtime/acquire-task", content=body, headers=headers)).raise_for_status()
            return (time.perf_counter() - started) / CALLS * 1000

    return asyncio.run(calls())


def run(out_dir: Path) -> None:
    """Measure both, alternating; print the ratio and write ``http_layers.json``."""
    starlette, direct = [], []
    for _ in range(REPEATS):
        starlette.append(_ms_per_call(_runtime_api(direct=False)))
        direct.append(_ms_per_call(_runtime_api(direct=True)))
    base, ours = statistics.mean(starlette), statistics.mean(direct)
    ratio = ours / base
    print(
        f"http_layers: Flower's SuperNode Runtime API, acquire-task: Starlette's layers {base:.3f} ms/call, "
        f"run directly {ours:.3f} ms/call -> ratio {ratio:.2f} (target <= {TARGET_RATIO})"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "http_layers",
        "method": f"mean ms per acquire-task call, {REPEATS} alternating runs of {CALLS} calls (httpx ASGI transport)",
        "starlette_ms": [round(v, 4) for v in starlette],
        "direct_ms": [round(v, 4) for v in direct],
        "ratio": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "met": ratio <= TARGET_RATIO,
    }
    (out_dir / "http_layers.json").write_text(json.dumps(result, indent=2) + "\n")
