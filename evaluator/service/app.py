"""The HTTP API of ``imagejury serve`` (FastAPI): the evaluation endpoints of SPEC.md.

Assembled the way FastAPI's full-stack template does it: ``create_app`` builds the
parts (store, auth table, metrics, admission, the embedded worker unless API-only,
the webhook sender), puts them on ``app.state``, installs middleware and exception
handlers and includes one router per module of ``service/routes``; the routes read
the parts through the ``Annotated`` dependencies of ``service/deps.py``.

Choices where SPEC.md is silent (documented in the OpenAPI descriptions as well):
- ``GET /v1/evaluations/{id}`` without ``embed`` includes every nested block; with
  ``embed`` the blocks not named are ``null``.
- ``GET /v1/evaluations`` answers ``{"data": [...], "next_cursor": str|null,
  "has_more": bool}``, newest first; pass ``cursor=next_cursor`` for the next page.
- errors are ``{"detail": "<field>: <message>; ...", "errors": [...]}``.
- an Idempotency-Key replay answers 200 (not 202) with ``Idempotent-Replayed: true``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from imagejury.core.config import EvaluatorConfig
from imagejury.service.admission import Admission
from imagejury.service.api_errors import install_error_handlers
from imagejury.service.auth import TokenTable
from imagejury.service.metrics import Metrics
from imagejury.service.middleware import install_middleware
from imagejury.service.openapi import install_openapi
from imagejury.service.routes import assets, docs, evaluations, health, meta, review
from imagejury.service.settings import ServerSettings
from imagejury.service.store import Store

log = logging.getLogger(__name__)

API_VERSION = "0.1.0"
HOUSEKEEPING_INTERVAL_S = 600
DESCRIPTION = (
    "Self-hosted image evaluation: the evaluation endpoints of the hosted API (see SPEC.md), "
    "served from your own box. Org ids: uuid5(NAMESPACE_URL, 'imagejury:org:' + org name)."
)


def create_app(
    config: EvaluatorConfig | None = None,
    settings: ServerSettings | None = None,
    *,
    store: Store | None = None,
    evaluator: Any | None = None,
) -> FastAPI:
    """Build the service. ``settings`` default to ``config.server`` + environment."""
    config = config or EvaluatorConfig()
    settings = settings or ServerSettings.load(config.server)
    app = FastAPI(
        title="imagejury evaluation API",
        version=API_VERSION,
        description=DESCRIPTION,
        lifespan=_lifespan,
        docs_url=None,  # served by routes/docs.py from local files, not from a CDN
        redoc_url=None,
    )
    _build_state(
        app,
        config,
        settings,
        store or Store(settings.db_path, synchronous=settings.sqlite_synchronous, pool_size=settings.sqlite_pool_size),
        evaluator,
    )
    install_middleware(app, settings.request_body_timeout_s)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(meta.router)  # before evaluations: /job-classes is not an {evaluation_id}
    app.include_router(evaluations.router)
    app.include_router(assets.router)
    app.include_router(docs.router)
    app.include_router(review.router)  # /review and /v1/calibration
    install_openapi(app)
    return app


def _build_state(app: FastAPI, config: EvaluatorConfig, settings: ServerSettings, store: Store, evaluator: Any) -> None:
    """The parts every route and the lifespan read from ``app.state``."""
    from imagejury.service.webhooks import WebhookSender
    from imagejury.service.worker import Worker

    metrics = Metrics(store.status_counts)
    tokens = TokenTable(settings.org_for_token())
    if not len(tokens):
        log.warning("no API tokens configured (IMAGEJURY_TOKENS or [server.tokens]): every API call will get 401")
    sender = WebhookSender(store, settings, metrics)
    worker = None
    if settings.embedded_worker:
        worker = Worker(store, settings, config, metrics=metrics, evaluator=evaluator, on_result=sender.wake)
    state = app.state
    state.config, state.settings, state.store, state.metrics, state.tokens = config, settings, store, metrics, tokens
    state.sender, state.worker = sender, worker
    wake = worker.wake if worker is not None else None
    state.admission = Admission(store, settings, metrics, wake, strict=config.evaluation.strict)


async def _housekeeping(store: Store, ttl_s: float) -> None:
    """Forget idempotency keys older than their TTL, every 10 minutes."""
    while True:
        try:
            n = await run_in_threadpool(store.purge_expired_keys, ttl_s)
            if n:
                log.info("forgot %d expired idempotency key(s)", n)
        except Exception:  # noqa: BLE001 - retried at the next tick
            log.exception("idempotency key purge failed")
        await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the webhook sender, the embedded worker and housekeeping; stop them at exit."""
    state = app.state
    state.settings.assets_path.mkdir(parents=True, exist_ok=True)
    state.sender.start()
    if state.worker is not None:
        state.worker.start()
    housekeeping = asyncio.create_task(_housekeeping(state.store, state.settings.idempotency_ttl_s))
    log.info("imagejury API ready (worker %s)", "embedded" if state.worker else "external")
    try:
        yield
    finally:
        housekeeping.cancel()
        if state.worker is not None:
            await run_in_threadpool(state.worker.stop)
        await run_in_threadpool(state.sender.stop)
