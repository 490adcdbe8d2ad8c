"""HTTP middleware of the service: request latency per route into Prometheus."""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from imagejury.service.timeouts import BodyTimeoutMiddleware


async def record_latency(request: Request, call_next: Any) -> Response:
    """Observe every request's latency under its route template (not the raw path)."""
    t0 = time.perf_counter()
    status = 500
    try:
        response = await call_next(request)
        status = response.status_code
        return response
    finally:
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        request.app.state.metrics.http_latency.labels(request.method, path, str(status)).observe(
            time.perf_counter() - t0
        )


def install_middleware(app: FastAPI, body_timeout_s: float) -> None:
    # the body timer sits inside the latency recorder: Starlette's BaseHTTPMiddleware reads
    # the body in a task group and would wrap the 408 into an ExceptionGroup (a 500)
    app.add_middleware(BodyTimeoutMiddleware, timeout_s=body_timeout_s)
    app.middleware("http")(record_latency)
