"""Stored evaluation rows ↔ the API's ``Evaluation``: shared by the routes, the worker and webhooks.

Each row keeps the evaluation's JSON (the pending object from admission, then the
result from the worker) in ``result_json``; the fields that change later — status
while leased, ``superseded_at``, feedback, ``updated_at`` — live in columns and are
laid over it here, so every reader sees one consistent object.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from imagejury.core.schema import ALLOW_LOOPBACK_CALLBACKS, Evaluation, EvaluationRequest, Source, Status
from imagejury.core.verdict.result import EvaluationMeta, short_url
from imagejury.service.store import to_dt


def links_for(evaluation_id: str) -> dict[str, str]:
    return {
        "self": f"/v1/evaluations/{evaluation_id}",
        "feedback": f"/v1/evaluations/{evaluation_id}/feedback",
        "reevaluate": f"/v1/evaluations/{evaluation_id}/reevaluate",
    }


def stored_request(request_json: str) -> EvaluationRequest:
    """A request read back from the store (validated at admission; callbacks re-checked at send)."""
    return EvaluationRequest.model_validate_json(request_json, context={ALLOW_LOOPBACK_CALLBACKS: True})


def pending_evaluation(
    req: EvaluationRequest,
    *,
    evaluation_id: str,
    org_id: str,
    created_at: float,
    cost: str,
    attempt_number: int,
    parent_id: str | None,
) -> Evaluation:
    ev = Evaluation.from_request(
        req,
        source=Source.api,
        id=evaluation_id,  # type: ignore[arg-type]
        now=to_dt(created_at),
        org_id=org_id,
        cost=cost,
        attempt_number=attempt_number,
        parent_evaluation_id=parent_id,
        links=links_for(evaluation_id),
    )
    refs = [{**r, "url": short_url(r.get("url", ""))} for r in ev.reference_images]
    return ev.model_copy(update={"generated_image_url": short_url(ev.generated_image_url), "reference_images": refs})


def meta_for(row: Any, org_id: str) -> EvaluationMeta:
    """What the pipeline needs to know about a claimed job to build its result."""
    return EvaluationMeta(
        id=row.id,
        org_id=org_id,
        source="api",
        created_at=to_dt(row.created_at),  # type: ignore[arg-type]
        submitted_at=to_dt(row.created_at),  # type: ignore[arg-type]
        attempt_number=row.attempt_number,
        parent_evaluation_id=row.parent_id,
        cost=row.cost,
        links=links_for(row.id),
    )


def row_to_evaluation(row: sqlite3.Row) -> Evaluation:
    ev = Evaluation.model_validate_json(row["result_json"])
    update: dict[str, Any] = {
        "status": Status(row["status"]),
        "updated_at": to_dt(row["updated_at"]),
        "superseded_at": to_dt(row["superseded_at"]),
        "feedback_is_positive": None if row["feedback_is_positive"] is None else bool(row["feedback_is_positive"]),
        "feedback_reason": row["feedback_reason"],
    }
    return ev.model_copy(update=update)


def row_to_api(row: sqlite3.Row, embed: Iterable[str] | None, parent: sqlite3.Row | None = None) -> dict[str, Any]:
    data = row_to_evaluation(row).to_api(embed)
    data["parent_evaluation"] = row_to_evaluation(parent).to_api(()) if parent is not None else None
    return data
