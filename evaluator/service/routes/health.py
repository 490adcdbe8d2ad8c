"""Service endpoints: liveness, readiness and Prometheus metrics.

No token is needed to ask whether the service is alive or ready; the details of
``/readyz`` (workers, their hosts and model problems) are shown only to a caller with a
valid token, and never with filesystem paths (a path names users, mounts and caches)."""

from __future__ import annotations

import json
import logging
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials

from imagejury.service.auth import bearer_scheme
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
    except Exception:  # noqa: BLE001 - the reason goes to the log, not to an unauthenticated caller
        log.exception("healthz: the store cannot be read")
        return JSONResponse(
            {"status": "error", "detail": "store: cannot be read (see the server log)"}, status_code=503
        )
    return JSONResponse({"status": "ok"})


#: an absolute POSIX path or a home-relative one, up to whitespace, a quote or a separator
_PATH = re.compile(r"(?<![\w.:/])(?:~|/)[^\s'\",;)]*")


def without_paths(text: str) -> str:
    """``text`` with every filesystem path shortened to its last part (``.../name``)."""
    return _PATH.sub(lambda m: ".../" + m.group(0).rstrip("/").rsplit("/", 1)[-1], text)


def _problems(problems: dict[str, str]) -> dict[str, str]:
    return {k: without_paths(str(v)) for k, v in problems.items()}


def _is_known_caller(request: Request, credentials: HTTPAuthorizationCredentials | None) -> bool:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        return False
    return request.app.state.tokens.lookup(credentials.credentials) is not None


def _external_workers(store: Any, settings: Any) -> tuple[bool, dict[str, Any]]:
    live = store.live_workers(within_s=max(15.0, settings.lease_seconds))
    ready = any(r["ready"] for r in live)
    body: dict[str, Any] = {
        "worker": "external",
        "ready": ready,
        "workers": [
            {"id": r["id"], "ready": bool(r["ready"]), "problems": _problems(json.loads(r["problems"]))} for r in live
        ],
    }
    if not live:
        body["detail"] = "no live worker: start `imagejury worker --db ...` against this store"
    return ready, body


@router.get(
    "/readyz",
    summary="readiness: a worker has loaded its models (details with a valid token)",
    responses={200: {"description": "ready"}, 503: {"description": "no ready worker (details: send a token)"}},
)
def readyz(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    config: ConfigDep,
    worker: WorkerDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> JSONResponse:
    body: dict[str, Any] = {"allow_missing_models": config.evaluation.allow_missing_models}
    if worker is not None:
        ready = worker.ready
        body.update(worker="embedded", warm=worker.warm_done, ready=ready, problems=_problems(worker.problems))
    else:
        ready, details = _external_workers(store, settings)
        body.update(details)
    status = 200 if ready else 503
    if not _is_known_caller(request, credentials):
        return JSONResponse({"status": "ready" if ready else "not_ready"}, status_code=status)
    return JSONResponse({"status": "ready" if ready else "not_ready", **body}, status_code=status)


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
def metrics_endpoint(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
