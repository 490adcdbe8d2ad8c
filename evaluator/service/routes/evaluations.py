"""The evaluation endpoints of SPEC.md: submit, list, get, feedback, re-evaluate.

Routes are thin: check the query, scope to the caller's org, call the store or the
admission; all judging happens in a worker, so a request never waits on a model."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from imagejury.core.schema import EMBEDDABLE, Evaluation, Status
from imagejury.service.admission import IDEMPOTENCY_KEY_MAX, check_idempotency_key
from imagejury.service.api_errors import ApiError
from imagejury.service.bodies import read_capped
from imagejury.service.deps import AdmissionDep, PrincipalDep, SettingsDep, StoreDep
from imagejury.service.schemas import AUTH_ERRORS, ERR, EvaluationList, FeedbackIn
from imagejury.service.store import Store, decode_cursor, encode_cursor
from imagejury.service.views import row_to_api

router = APIRouter(prefix="/v1/evaluations", tags=["evaluations"])

_BLOCK = "(judges|action|gate_failures)"
EMBED_PATTERN = rf"^ *{_BLOCK}? *(, *{_BLOCK}? *)*$"

#: documented in OpenAPI; the value is checked again by ``check_idempotency_key``
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="retry-safe submission: the same key and body return the same evaluation (kept 24 h); "
        "the same key with another body is 422; while the first request is still being admitted, 409",
        max_length=IDEMPOTENCY_KEY_MAX,
        pattern=r"^[!-~]+$",
    ),
]
Embed = Annotated[
    str | None,
    Query(pattern=EMBED_PATTERN, description="comma-separated: judges,action,gate_failures (default: all)"),
]
Cursor = Annotated[
    str | None,
    Query(max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="next_cursor of the previous page (opaque)"),
]


def _embed(value: str | None) -> list[str] | None:
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",") if p.strip()]
    unknown = sorted(set(parts) - EMBEDDABLE)
    if unknown:
        raise ApiError(422, f"embed: unknown block(s) {unknown}; choose from {sorted(EMBEDDABLE)}")
    return parts


def _cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        return decode_cursor(cursor)
    except ValueError as exc:
        raise ApiError(422, f"cursor: {exc}") from None


def _parent(store: Store, org_id: str, row: Any) -> Any:
    return store.get(org_id, row["parent_id"]) if row["parent_id"] else None


def _row_or_404(store: Store, org_id: str, evaluation_id: uuid.UUID) -> Any:
    row = store.get(org_id, str(evaluation_id))
    if row is None:  # another org's evaluation is "not found" too: its existence is not revealed
        raise ApiError(404, f"evaluation {evaluation_id} not found")
    return row


@router.post(
    "",
    status_code=202,
    response_model=Evaluation,
    summary="Submit an image for evaluation (202, pending)",
    responses={
        200: {
            "model": Evaluation,
            "description": "Idempotency-Key replay: the evaluation created by the first request",
        },
        409: {**ERR, "description": "a request with this Idempotency-Key is still being admitted"},
        413: {**ERR, "description": "body too large"},
        422: {
            **ERR,
            "description": "invalid request (each message names its field), or an Idempotency-Key reused with a different body",
        },
        429: {**ERR, "description": "queue full; see Retry-After"},
        **AUTH_ERRORS,
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EvaluationRequest"}}},
        }
    },
)
async def submit(
    request: Request,
    who: PrincipalDep,
    settings: SettingsDep,
    admission: AdmissionDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    key = check_idempotency_key(request.headers.get("idempotency-key"))
    body = await read_capped(request, settings.max_body_bytes)
    status, data, headers = await run_in_threadpool(admission.submit, who.org_id, body, key)
    return JSONResponse(data, status_code=status, headers=headers)


@router.get(
    "", response_model=EvaluationList, summary="List evaluations, newest first", responses={422: ERR, **AUTH_ERRORS}
)
def list_evaluations(
    who: PrincipalDep,
    store: StoreDep,
    status: Status | None = None,
    client_ref: Annotated[str | None, Query(max_length=255)] = None,
    run_id: uuid.UUID | None = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    embed: Embed = None,
) -> JSONResponse:
    blocks = _embed(embed)
    rows = store.list(
        who.org_id,
        status=status.value if status else None,
        client_ref=client_ref,
        run_id=str(run_id) if run_id else None,
        before_seq=_cursor(cursor),
        limit=limit + 1,
    )
    more, rows = len(rows) > limit, rows[:limit]
    return JSONResponse(
        {
            "data": [row_to_api(r, blocks, _parent(store, who.org_id, r)) for r in rows],
            "next_cursor": encode_cursor(rows[-1]["seq"]) if more and rows else None,
            "has_more": more,
        }
    )


@router.get(
    "/{evaluation_id}",
    response_model=Evaluation,
    summary="Get one evaluation (poll until status is completed or failed)",
    responses={404: ERR, 422: ERR, **AUTH_ERRORS},
)
def get_evaluation(
    evaluation_id: uuid.UUID,
    who: PrincipalDep,
    store: StoreDep,
    embed: Annotated[
        str | None,
        Query(
            pattern=EMBED_PATTERN,
            description="comma-separated: judges,action,gate_failures; blocks not named are null (default: all)",
        ),
    ] = None,
) -> JSONResponse:
    blocks = _embed(embed)
    row = _row_or_404(store, who.org_id, evaluation_id)
    return JSONResponse(row_to_api(row, blocks, _parent(store, who.org_id, row)))


@router.patch(
    "/{evaluation_id}/feedback",
    response_model=Evaluation,
    summary="Record feedback on an evaluation",
    responses={400: {**ERR, "description": "body is not JSON"}, 404: ERR, 422: ERR, **AUTH_ERRORS},
)
def feedback(evaluation_id: uuid.UUID, body: FeedbackIn, who: PrincipalDep, store: StoreDep) -> JSONResponse:
    if not store.set_feedback(who.org_id, str(evaluation_id), body.is_positive, body.reason):
        raise ApiError(404, f"evaluation {evaluation_id} not found")
    row = _row_or_404(store, who.org_id, evaluation_id)
    return JSONResponse(row_to_api(row, None, _parent(store, who.org_id, row)))


@router.post(
    "/{evaluation_id}/reevaluate",
    status_code=202,
    response_model=Evaluation,
    summary="Evaluate the same request again: attempt n+1, the parent becomes superseded",
    responses={
        404: ERR,
        409: {**ERR, "description": "the evaluation is not finished or already superseded"},
        422: ERR,
        429: ERR,
        **AUTH_ERRORS,
    },
)
def reevaluate(
    evaluation_id: uuid.UUID,
    request: Request,
    who: PrincipalDep,
    store: StoreDep,
    admission: AdmissionDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    key = check_idempotency_key(request.headers.get("idempotency-key"))
    parent = _row_or_404(store, who.org_id, evaluation_id)
    status, data, headers = admission.reevaluate(who.org_id, parent, key)
    return JSONResponse(data, status_code=status, headers=headers)
