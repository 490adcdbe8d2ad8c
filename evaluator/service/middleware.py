"""HTTP middleware of the service: request latency per route into Prometheus."""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response


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


def install_middleware(app: FastAPI) -> None:
    app.middleware("http")(record_latency)
