"""The HTTP application: health and readiness now, the provisioning API later.

`create_api` builds a FastAPI app from what the routes need, passed in by
`b2bua.app` (the wiring); routes read them from `request.app.state`. New
routers are added with `api.include_router(...)` inside `create_api`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from b2bua.config import Config

# FastAPI's native OpenTelemetry support (recent versions) looks for configured
# providers on every request; b2bua's metrics are its own Prometheus registry.
_NO_NATIVE_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)


def create_api(
    config: Config,
    *,
    is_ready: Callable[[], bool] = lambda: True,
    store: Any = None,
    registry: CollectorRegistry | None = None,
    exposition: Callable[[], bytes] | None = None,
) -> FastAPI:
    """Build the HTTP app.

    `is_ready` says whether the node should receive traffic (listeners bound,
    store open, not draining); `store` is the opened store, or None while no
    store module exists; `registry` is served at `/metrics` when given, or what
    `exposition` returns instead (several SIP workers' metrics added up).
    """
    api = FastAPI(title="b2bua", version="0.1.0", **_NO_NATIVE_TELEMETRY)
    api.state.config = config
    api.state.store = store
    api.state.is_ready = is_ready

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process serves HTTP."""
        return {"status": "ok"}

    @api.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: 200 while the node takes calls, 503 while starting or draining."""
        if request.app.state.is_ready():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready"}, status_code=503)

    if registry is not None:

        @api.get("/metrics", include_in_schema=False)
        async def metrics() -> Response:
            """Prometheus text format; async so collectors read engine state on the loop."""
            text = exposition() if exposition is not None else generate_latest(registry)
            return Response(text, media_type=CONTENT_TYPE_LATEST)

    return api
