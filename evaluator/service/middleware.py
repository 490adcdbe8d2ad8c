"""HTTP middleware of the service: request latency per route into Prometheus."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from imagejury.service.api_errors import error_response
from imagejury.service.timeouts import BodyTimeoutMiddleware

log = logging.getLogger(__name__)


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


class LastResortMiddleware:
    """Answer an unexpected error with a logged 500 here, instead of letting it reach
    Starlette's ServerErrorMiddleware: that one re-raises after answering, and uvicorn
    then drops the client's keep-alive connection with the 500."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message.get("type") == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:  # half an answer is out: only closing the connection can end it
                raise
            log.error("unhandled error", exc_info=exc)
            await error_response(500, "internal error (logged on the server)")(scope, receive, send)


def install_middleware(app: FastAPI, body_timeout_s: float) -> None:
    # innermost first. The body timer sits inside the latency recorder: Starlette's
    # BaseHTTPMiddleware reads the body in a task group and would wrap the 408 into an
    # ExceptionGroup (a 500)
    app.add_middleware(LastResortMiddleware)
    app.add_middleware(BodyTimeoutMiddleware, timeout_s=body_timeout_s)
    app.middleware("http")(record_latency)
