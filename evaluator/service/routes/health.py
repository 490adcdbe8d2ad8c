"""Service endpoints: liveness, readiness and Prometheus metrics (no token needed)."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from imagejury.service.deps import ConfigDep, MetricsDep, SettingsDep, StoreDep, WorkerDep

log = logging.getLogger(__name__)
router = APIRouter(tags=["service"])


@router.get(
    "/healthz",
    summary="liveness: the process answers and the store opens",
    responses={200: {"description": "alive"}, 503: {"description": "the store cannot be read"}},
)
def healthz(store: StoreDep) -> JSONResponse:
    try:
        store.ping()
    except Exception as exc:  # noqa: BLE001
        return JSONResponse({"status": "error", "detail": f"store: {exc}"}, status_code=503)
    return JSONResponse({"status": "ok"})


def _external_workers(store: Any, settings: Any) -> tuple[bool, dict[str, Any]]:
    live = store.live_workers(within_s=max(15.0, settings.lease_seconds))
    ready = any(r["ready"] for r in live)
    body: dict[str, Any] = {
        "worker": "external",
        "ready": ready,
        "workers": [{"id": r["id"], "ready": bool(r["ready"]), "problems": json.loads(r["problems"])} for r in live],
    }
    if not live:
        body["detail"] = "no live worker: start `imagejury worker --db ...` against this store"
    return ready, body


@router.get(
    "/readyz",
    summary="readiness: a worker has loaded its models",
    responses={200: {"description": "ready"}, 503: {"description": "no ready worker (see problems)"}},
)
def readyz(store: StoreDep, settings: SettingsDep, config: ConfigDep, worker: WorkerDep) -> JSONResponse:
    body: dict[str, Any] = {"allow_missing_models": config.evaluation.allow_missing_models}
    if worker is not None:
        ready = worker.ready
        body.update(worker="embedded", warm=worker.warm_done, ready=ready, problems=worker.problems)
    else:
        ready, details = _external_workers(store, settings)
        body.update(details)
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
def metrics_endpoint(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
