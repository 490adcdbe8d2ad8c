"""The HTTP API of ``imagejury serve`` (FastAPI): the evaluation endpoints of SPEC.md.

``create_app(config, settings)`` wires the store, the auth table, metrics, the
embedded worker (unless API-only) and the webhook sender into one app. Routes are
thin: validate, scope to the caller's org, call the store; all judging happens in the
worker, so a request never waits on a model.

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
import hashlib
import json
import logging
import math
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field

from imagejury.core.config import EvaluatorConfig
from imagejury.core.schema import EMBEDDABLE, Evaluation, EvaluationRequest, JobClass, Status, parse_request
from imagejury.errors import InvalidMediaError, InvalidRequestError
from imagejury.service.auth import Principal, TokenTable, bearer_scheme, principal_from
from imagejury.service.metrics import Metrics
from imagejury.service.settings import ServerSettings
from imagejury.service.store import (
    Conflict,
    IdempotencyConflict,
    IdempotencyInProgress,
    QueueFull,
    Store,
    decode_cursor,
    encode_cursor,
    to_dt,
)
from imagejury.service.views import pending_evaluation, row_to_api, stored_request

log = logging.getLogger(__name__)

API_VERSION = "0.1.0"
IDEMPOTENCY_KEY_MAX = 255
_BLOCK = "(judges|action|gate_failures)"
EMBED_PATTERN = rf"^ *{_BLOCK}? *(, *{_BLOCK}? *)*$"
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces
FEEDBACK_REASON_MAX = 4_000

STATUS_INFO = {
    "pending": (False, "accepted and waiting for a worker"),
    "running": (False, "a worker holds it (leased); it returns to pending if that worker dies"),
    "completed": (True, "judged; the verdict fields are filled"),
    "failed": (True, "could not be judged; failure_code says why"),
}
JOB_CLASS_INFO = {
    "standard": "every judge of the task's preset; the larger CLIP (ViT-L-14) by default",
    "quick": "the cheaper judges (no no-reference IQA, no aesthetics); the smaller CLIP (ViT-B-32) by default",
}


# ---------------------------------------------------------------- response models (OpenAPI)
class EvaluationList(BaseModel):
    data: list[Evaluation]
    next_cursor: str | None = Field(None, description="pass as ?cursor= to get the next (older) page")
    has_more: bool


class JobClassOut(BaseModel):
    code: JobClass
    price: str = Field(description="price per evaluation, decimal string; frozen on the evaluation as `cost`")
    currency: str
    description: str


class JobClassList(BaseModel):
    data: list[JobClassOut]


class StatusOut(BaseModel):
    code: Status
    terminal: bool
    description: str


class StatusList(BaseModel):
    data: list[StatusOut]


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    is_positive: bool
    reason: str | None = Field(None, max_length=FEEDBACK_REASON_MAX)


class AssetOut(BaseModel):
    id: uuid.UUID
    url: str = Field(description="runflow://assets/{uuid}: use as generated_image_url or a reference image url")
    content_type: str
    size_bytes: int
    width: int
    height: int
    sha256: str
    created_at: str


class ErrorOut(BaseModel):
    detail: str
    errors: list[dict[str, Any]] | None = None


_ERR = {"model": ErrorOut}
_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {401: {**_ERR, "description": "missing or unknown token"}}


# ---------------------------------------------------------------- helpers
class ApiError(InvalidRequestError):
    """A client error answered with its HTTP status (4xx) and a JSON ``detail``."""

    def __init__(self, status: int, detail: str, errors: list[dict] | None = None, headers: dict | None = None) -> None:
        super().__init__(detail, errors)
        self.status, self.headers = status, headers
        self.errors = errors  # type: ignore[assignment]  # None: no "errors" key in the body


def _error_response(status: int, detail: str, errors: list | None = None, headers: dict | None = None) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (RFC 8259)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of the range of a JSON number this API accepts")
    return value


def strict_json_loads(body: bytes | str) -> Any:
    """JSON as RFC 8259 has it: ``NaN``, ``Infinity`` and numbers that overflow to them are
    refused (Python's json accepts them, and they would come back out as invalid JSON)."""
    return json.loads(body, parse_constant=_no_constant, parse_float=_finite_float)


async def _read_capped(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) more than ``limit`` bytes — never buffered past it."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"body: larger than the limit of {limit:,} bytes")
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise ApiError(413, f"body: larger than the limit of {limit:,} bytes")
    return bytes(buf)


def _embed(value: str | None) -> list[str] | None:
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",") if p.strip()]
    unknown = sorted(set(parts) - EMBEDDABLE)
    if unknown:
        raise ApiError(422, f"embed: unknown block(s) {unknown}; choose from {sorted(EMBEDDABLE)}")
    return parts


#: documented in OpenAPI; the value is read and checked by ``_idempotency_key``
IDEMPOTENCY_HEADER = Header(
    None,
    alias="Idempotency-Key",
    description="retry-safe submission: the same key and body return the same evaluation (kept 24 h); "
    "the same key with another body is 422; while the first request is still being admitted, 409",
    max_length=IDEMPOTENCY_KEY_MAX,
    pattern=r"^[!-~]+$",
)


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not _KEY_RE.match(key):
        raise ApiError(
            422, f"Idempotency-Key: must be 1-{IDEMPOTENCY_KEY_MAX} printable ASCII characters without spaces"
        )
    return key


def _body_hash(data: Any) -> str:
    canon = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canon.encode()).hexdigest()


_EXT = {"JPEG": ("jpg", "image/jpeg"), "PNG": ("png", "image/png"), "WEBP": ("webp", "image/webp")}


# ---------------------------------------------------------------- the app
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
    store = store or Store(settings.db_path, synchronous=settings.sqlite_synchronous)
    metrics = Metrics(store.status_counts)
    tokens = TokenTable(settings.org_for_token())
    if not len(tokens):
        log.warning("no API tokens configured (IMAGEJURY_TOKENS or [server.tokens]): every API call will get 401")

    from imagejury.service.webhooks import WebhookSender
    from imagejury.service.worker import Worker

    sender = WebhookSender(store, settings, metrics)
    worker: Worker | None = None
    if settings.embedded_worker:
        worker = Worker(store, settings, config, metrics=metrics, evaluator=evaluator, on_result=sender.wake)

    async def _housekeeping() -> None:
        """Forget idempotency keys older than their TTL, every 10 minutes."""
        while True:
            try:
                n = await run_in_threadpool(store.purge_expired_keys, settings.idempotency_ttl_s)
                if n:
                    log.info("forgot %d expired idempotency key(s)", n)
            except Exception:  # noqa: BLE001 - retried at the next tick
                log.exception("idempotency key purge failed")
            await asyncio.sleep(600)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.assets_path.mkdir(parents=True, exist_ok=True)
        sender.start()
        if worker is not None:
            worker.start()
        housekeeping = asyncio.create_task(_housekeeping())
        log.info("imagejury API ready (db %s, worker %s)", settings.db_path, "embedded" if worker else "external")
        try:
            yield
        finally:
            housekeeping.cancel()
            if worker is not None:
                await run_in_threadpool(worker.stop)
            await run_in_threadpool(sender.stop)

    app = FastAPI(
        title="imagejury evaluation API",
        version=API_VERSION,
        description="Self-hosted image evaluation: the evaluation endpoints of the hosted API (see SPEC.md), "
        "served from your own box. Org ids: uuid5(NAMESPACE_URL, 'imagejury:org:' + org name).",
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.settings = settings
    app.state.config = config
    app.state.tokens = tokens
    app.state.metrics = metrics
    app.state.worker = worker
    app.state.sender = sender

    # -- errors ------------------------------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error_response(exc.status, exc.detail, exc.errors, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:] or e['loc'])}: {e['msg']}" for e in errors)
        return _error_response(422, detail or "invalid request", errors)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc)
        return _error_response(500, "internal error (logged on the server)")

    @app.middleware("http")
    async def _timing(request: Request, call_next: Any) -> Response:
        t0 = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")
            metrics.http_latency.labels(request.method, path, str(status)).observe(time.perf_counter() - t0)

    def principal(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme)
    ) -> Principal:
        return principal_from(request, credentials)

    # -- service endpoints -------------------------------------------------------------------
    @app.get(
        "/healthz",
        tags=["service"],
        summary="liveness: the process answers and the store opens",
        responses={200: {"description": "alive"}, 503: {"description": "the store cannot be read"}},
    )
    def healthz() -> JSONResponse:
        try:
            store.ping()
        except Exception as exc:  # noqa: BLE001
            return JSONResponse({"status": "error", "detail": f"store: {exc}"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get(
        "/readyz",
        tags=["service"],
        summary="readiness: a worker has loaded its models",
        responses={200: {"description": "ready"}, 503: {"description": "no ready worker (see problems)"}},
    )
    def readyz() -> JSONResponse:
        body: dict[str, Any] = {"allow_missing_models": config.evaluation.allow_missing_models}
        if worker is not None:
            body.update(worker="embedded", warm=worker.warm_done, ready=worker.ready, problems=worker.problems)
            ready = worker.ready
        else:
            live = store.live_workers(within_s=max(15.0, settings.lease_seconds))
            ready = any(r["ready"] for r in live)
            body.update(
                worker="external",
                ready=ready,
                workers=[
                    {"id": r["id"], "ready": bool(r["ready"]), "problems": json.loads(r["problems"])} for r in live
                ],
            )
            if not live:
                body["detail"] = "no live worker: start `imagejury worker --db ...` against this store"
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["service"], summary="Prometheus metrics", response_class=PlainTextResponse)
    def metrics_endpoint() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    # -- evaluations ---------------------------------------------------------------------------
    def _admit(org_id: str, body: bytes, key: str | None) -> tuple[int, dict[str, Any], dict[str, str]]:
        try:
            data = strict_json_loads(body)
        except RecursionError:
            raise ApiError(422, "body: not valid JSON (nested too deeply)") from None
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, NaN/Infinity, a 5,000-digit integer
            raise ApiError(422, f"body: not valid JSON ({exc})") from None
        try:
            req = parse_request(data, allow_loopback_callbacks=settings.allow_loopback_callbacks)
        except InvalidRequestError as exc:
            raise ApiError(422, exc.detail, exc.errors) from None
        if req.callback_url and settings.webhook_key is None:
            raise ApiError(
                422,
                "callback_url: this server has no webhook signing secret configured "
                "(IMAGEJURY_WEBHOOK_SECRET or [server].webhook_secret), so it cannot send signed callbacks",
            )
        if key is not None:
            try:
                res = store.reserve_key(
                    org_id, key, _body_hash(data), ttl_s=settings.idempotency_ttl_s, stale_s=settings.admission_stale_s
                )
            except IdempotencyConflict:
                raise ApiError(422, "Idempotency-Key: already used with a different request body") from None
            except IdempotencyInProgress:
                raise ApiError(
                    409,
                    "Idempotency-Key: a request with this key is still being admitted; retry shortly",
                    headers={"Retry-After": "1"},
                ) from None
            if not res.new:
                row = store.get(org_id, res.evaluation_id or "")
                if row is None:
                    raise ApiError(409, "Idempotency-Key: the evaluation of this key is gone")
                return 200, row_to_api(row, None), {"Idempotent-Replayed": "true"}
        try:
            return _insert(org_id, req, key=key)
        except BaseException:
            if key is not None:
                store.release_key(org_id, key)
            raise

    def _insert(
        org_id: str, req: EvaluationRequest, *, key: str | None = None, parent: Any = None
    ) -> tuple[int, dict, dict]:
        job_class = req.job_class.value
        cost = settings.prices.get(job_class, "0")
        evaluation_id = str(uuid.uuid4())
        now = time.time()
        attempt = (parent["attempt_number"] + 1) if parent is not None else 1
        parent_id = parent["id"] if parent is not None else None
        pending = pending_evaluation(
            req,
            evaluation_id=evaluation_id,
            org_id=org_id,
            created_at=now,
            cost=cost,
            attempt_number=attempt,
            parent_id=parent_id,
        )
        try:
            store.admit(
                evaluation_id=evaluation_id,
                org_id=org_id,
                request_json=req.model_dump_json(),
                result_json=pending.model_dump_json(),
                job_class=job_class,
                client_ref=req.client_ref,
                run_id=str(req.run_id) if req.run_id else None,
                cost=cost,
                job_timeout_s=settings.job_timeout_s,
                max_queue_depth=settings.max_queue_depth,
                idempotency_key=key,
                parent_id=parent_id,
                attempt_number=attempt,
                now=now,
            )
        except QueueFull as exc:
            metrics.submissions.labels("queue_full").inc()
            raise ApiError(
                429,
                f"the queue is full ({exc.depth} evaluations pending); retry later",
                headers={"Retry-After": str(settings.retry_after_s)},
            ) from None
        except IdempotencyInProgress:
            raise ApiError(
                409,
                "Idempotency-Key: a request with this key is still being admitted; retry shortly",
                headers={"Retry-After": "1"},
            ) from None
        metrics.submissions.labels("accepted").inc()
        if worker is not None:
            worker.wake()
        row = store.get(org_id, evaluation_id)
        return 202, row_to_api(row, None), {"Location": f"/v1/evaluations/{evaluation_id}"}

    _request_schema = {"$ref": "#/components/schemas/EvaluationRequest"}

    @app.post(
        "/v1/evaluations",
        tags=["evaluations"],
        status_code=202,
        response_model=Evaluation,
        summary="Submit an image for evaluation (202, pending)",
        responses={
            200: {
                "model": Evaluation,
                "description": "Idempotency-Key replay: the evaluation created by the first request",
            },
            409: {**_ERR, "description": "a request with this Idempotency-Key is still being admitted"},
            413: {**_ERR, "description": "body too large"},
            422: {
                **_ERR,
                "description": "invalid request (each message names its field), or an Idempotency-Key reused with a different body",
            },
            429: {**_ERR, "description": "queue full; see Retry-After"},
            **_AUTH_ERRORS,
        },
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _request_schema}}}},
    )
    async def submit(
        request: Request,
        who: Principal = Depends(principal),
        idempotency_key: str | None = IDEMPOTENCY_HEADER,
    ) -> JSONResponse:
        key = _idempotency_key(request)
        body = await _read_capped(request, settings.max_body_bytes)
        status, data, headers = await run_in_threadpool(_admit, who.org_id, body, key)
        return JSONResponse(data, status_code=status, headers=headers)

    @app.get(
        "/v1/evaluations",
        tags=["evaluations"],
        response_model=EvaluationList,
        summary="List evaluations, newest first",
        responses={422: _ERR, **_AUTH_ERRORS},
    )
    def list_evaluations(
        who: Principal = Depends(principal),
        status: Status | None = Query(None),
        client_ref: str | None = Query(None, max_length=255),
        run_id: uuid.UUID | None = Query(None),
        cursor: str | None = Query(
            None, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="next_cursor of the previous page (opaque)"
        ),
        limit: int = Query(20, ge=1, le=100),
        embed: str | None = Query(
            None, pattern=EMBED_PATTERN, description="comma-separated: judges,action,gate_failures (default: all)"
        ),
    ) -> JSONResponse:
        blocks = _embed(embed)
        before = None
        if cursor is not None:
            try:
                before = decode_cursor(cursor)
            except ValueError as exc:
                raise ApiError(422, f"cursor: {exc}") from None
        rows = store.list(
            who.org_id,
            status=status.value if status else None,
            client_ref=client_ref,
            run_id=str(run_id) if run_id else None,
            before_seq=before,
            limit=limit + 1,
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return JSONResponse(
            {
                "data": [row_to_api(r, blocks, _parent(who.org_id, r)) for r in rows],
                "next_cursor": encode_cursor(rows[-1]["seq"]) if more and rows else None,
                "has_more": more,
            }
        )

    @app.get(
        "/v1/evaluations/job-classes",
        tags=["evaluations"],
        response_model=JobClassList,
        summary="Job classes and their prices (the operator's figures)",
        responses=_AUTH_ERRORS,
    )
    def job_classes(who: Principal = Depends(principal)) -> JSONResponse:
        data = [
            {
                "code": jc.value,
                "price": settings.prices.get(jc.value, "0"),
                "currency": settings.currency,
                "description": JOB_CLASS_INFO[jc.value],
            }
            for jc in JobClass
        ]
        return JSONResponse({"data": data})

    @app.get(
        "/v1/evaluations/statuses",
        tags=["evaluations"],
        response_model=StatusList,
        summary="The evaluation status enum",
        responses=_AUTH_ERRORS,
    )
    def statuses(who: Principal = Depends(principal)) -> JSONResponse:
        return JSONResponse(
            {
                "data": [
                    {"code": s.value, "terminal": STATUS_INFO[s.value][0], "description": STATUS_INFO[s.value][1]}
                    for s in Status
                ]
            }
        )

    def _parent(org_id: str, row: Any) -> Any:
        return store.get(org_id, row["parent_id"]) if row["parent_id"] else None

    def _row_or_404(org_id: str, evaluation_id: uuid.UUID) -> Any:
        row = store.get(org_id, str(evaluation_id))
        if row is None:  # another org's evaluation is "not found" too: its existence is not revealed
            raise ApiError(404, f"evaluation {evaluation_id} not found")
        return row

    @app.get(
        "/v1/evaluations/{evaluation_id}",
        tags=["evaluations"],
        response_model=Evaluation,
        summary="Get one evaluation (poll until status is completed or failed)",
        responses={404: _ERR, 422: _ERR, **_AUTH_ERRORS},
    )
    def get_evaluation(
        evaluation_id: uuid.UUID,
        who: Principal = Depends(principal),
        embed: str | None = Query(
            None,
            pattern=EMBED_PATTERN,
            description="comma-separated: judges,action,gate_failures; blocks not named are null (default: all)",
        ),
    ) -> JSONResponse:
        blocks = _embed(embed)
        row = _row_or_404(who.org_id, evaluation_id)
        return JSONResponse(row_to_api(row, blocks, _parent(who.org_id, row)))

    @app.patch(
        "/v1/evaluations/{evaluation_id}/feedback",
        tags=["evaluations"],
        response_model=Evaluation,
        summary="Record feedback on an evaluation",
        responses={400: {**_ERR, "description": "body is not JSON"}, 404: _ERR, 422: _ERR, **_AUTH_ERRORS},
    )
    def feedback(evaluation_id: uuid.UUID, body: FeedbackIn, who: Principal = Depends(principal)) -> JSONResponse:
        if not store.set_feedback(who.org_id, str(evaluation_id), body.is_positive, body.reason):
            raise ApiError(404, f"evaluation {evaluation_id} not found")
        row = _row_or_404(who.org_id, evaluation_id)
        return JSONResponse(row_to_api(row, None, _parent(who.org_id, row)))

    @app.post(
        "/v1/evaluations/{evaluation_id}/reevaluate",
        tags=["evaluations"],
        status_code=202,
        response_model=Evaluation,
        summary="Evaluate the same request again: attempt n+1, the parent becomes superseded",
        responses={
            404: _ERR,
            409: {**_ERR, "description": "the evaluation is not finished or already superseded"},
            422: _ERR,
            429: _ERR,
            **_AUTH_ERRORS,
        },
    )
    def reevaluate(
        evaluation_id: uuid.UUID,
        request: Request,
        who: Principal = Depends(principal),
        idempotency_key: str | None = IDEMPOTENCY_HEADER,
    ) -> JSONResponse:
        key = _idempotency_key(request)
        parent = _row_or_404(who.org_id, evaluation_id)
        if key is not None:
            try:
                res = store.reserve_key(
                    who.org_id,
                    key,
                    _body_hash({"reevaluate": str(evaluation_id)}),
                    ttl_s=settings.idempotency_ttl_s,
                    stale_s=settings.admission_stale_s,
                )
            except IdempotencyConflict:
                raise ApiError(422, "Idempotency-Key: already used with a different request") from None
            except IdempotencyInProgress:
                raise ApiError(409, "Idempotency-Key: a request with this key is still being admitted") from None
            if not res.new:
                row = store.get(who.org_id, res.evaluation_id or "")
                if row is not None:
                    return JSONResponse(
                        row_to_api(row, None, parent), status_code=200, headers={"Idempotent-Replayed": "true"}
                    )
        if parent["status"] not in ("completed", "failed"):
            if key is not None:
                store.release_key(who.org_id, key)
            raise ApiError(
                409, f"evaluation {evaluation_id} is {parent['status']}; re-evaluate it once it has finished"
            )
        try:
            req = stored_request(parent["request_json"])
            status, data, headers = _insert(who.org_id, req, key=key, parent=parent)
        except Conflict:
            if key is not None:
                store.release_key(who.org_id, key)
            raise ApiError(
                409, f"evaluation {evaluation_id} is already superseded; re-evaluate its latest attempt"
            ) from None
        except BaseException:
            if key is not None:
                store.release_key(who.org_id, key)
            raise
        data["parent_evaluation"] = row_to_api(store.get(who.org_id, str(evaluation_id)), ())
        return JSONResponse(data, status_code=status, headers=headers)

    # -- assets ------------------------------------------------------------------------------------
    @app.post(
        "/v1/asset-uploads",
        tags=["assets"],
        status_code=201,
        response_model=AssetOut,
        summary="Upload an image; use the returned runflow://assets/{uuid} as an image URL",
        responses={413: _ERR, 415: _ERR, 422: _ERR, **_AUTH_ERRORS},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {"file": {"type": "string", "format": "binary"}},
                        }
                    },
                    "image/png": {"schema": {"type": "string", "format": "binary"}},
                    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                    "image/webp": {"schema": {"type": "string", "format": "binary"}},
                },
            }
        },
    )
    async def upload_asset(request: Request, who: Principal = Depends(principal)) -> JSONResponse:
        limit = config.media.max_bytes + 64 * 1024  # multipart framing on top of the image cap
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = await _read_capped(request, limit)
        if ctype == "multipart/form-data":
            request._body = body  # noqa: SLF001 - let Starlette's form parser read what we already capped
            try:
                form = await request.form(max_files=1, max_fields=8)
            except Exception as exc:  # noqa: BLE001 - malformed multipart is the client's error
                raise ApiError(422, f"body: malformed multipart form ({type(exc).__name__})") from None
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise ApiError(422, "file: a multipart field named 'file' with the image is required")
            data = await upload.read()
            await form.close()
        elif ctype.startswith("image/") or ctype == "application/octet-stream":
            data = body
        else:
            raise ApiError(
                415,
                "content-type: send multipart/form-data with a 'file' field, or the image bytes as image/png, image/jpeg or image/webp",
            )
        return JSONResponse(await run_in_threadpool(_store_asset, who.org_id, data), status_code=201)

    def _store_asset(org_id: str, data: bytes) -> dict[str, Any]:
        from imagejury.core.intake.media import MediaLimits, decode_image_bytes

        m = config.media
        try:
            decoded = decode_image_bytes(
                data, MediaLimits(max_pixels=m.max_pixels, max_bytes=m.max_bytes), source_kind="asset", field="file"
            )
        except InvalidMediaError as exc:
            raise ApiError(422, exc.detail) from None
        ext, ctype = _EXT[decoded.format]
        asset_id = str(uuid.uuid4())
        folder = settings.assets_path / org_id
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{asset_id}.{ext}"
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)
        created = store.add_asset(asset_id, org_id, str(path.resolve()), ctype, len(data), decoded.key)
        w, h = decoded.original_size
        return {
            "id": asset_id,
            "url": f"runflow://assets/{asset_id}",
            "content_type": ctype,
            "size_bytes": len(data),
            "width": w,
            "height": h,
            "sha256": decoded.key,
            "created_at": to_dt(created).isoformat().replace("+00:00", "Z"),
        }  # type: ignore[union-attr]

    # -- OpenAPI: the request body schema is ours, not FastAPI's (we parse the body ourselves) --
    def custom_openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        req = EvaluationRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, sub in req.pop("$defs", {}).items():
            comps.setdefault(name, sub)
        comps["EvaluationRequest"] = req
        # ?embed= leaves the blocks it does not name null: say so in the document
        props = comps.get("Evaluation", {}).get("properties", {})
        for block in ("judges", "gate_failures"):
            if block in props and "anyOf" not in props[block]:
                orig = props[block]
                props[block] = {
                    "anyOf": [{k: v for k, v in orig.items() if k not in ("title", "description")}, {"type": "null"}],
                    "title": orig.get("title", block),
                    "description": "null when ?embed= does not name it",
                }
        for path in schema.get("paths", {}).values():
            for op in path.values():
                if isinstance(op, dict) and "security" not in op and op.get("tags") != ["service"]:
                    op.setdefault("security", [{"HTTPBearer": []}])
        app.openapi_schema = schema
        return schema

    app.openapi = custom_openapi  # type: ignore[method-assign]
    return app
