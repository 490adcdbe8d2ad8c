"""The review page and the calibration summary: people label what the jury was unsure about.

``GET /review`` serves one self-contained page (its style and script inline, nothing from a
CDN). The page signs in with the org's bearer token (kept in the tab's sessionStorage),
reads ``GET /v1/review/queue`` and labels through the API's own
``PATCH /v1/evaluations/{id}/feedback``, so labels land where ``imagejury calibrate --db``
reads them. ``GET /v1/calibration`` says how many labels there are and how well each judge
agrees with them, so an operator sees when recalibrating is worth it.

Every query is scoped to the caller's org: another org's evaluations never appear.
This is a plain ``APIRouter``; its two dependencies read ``request.app.state`` (``store``,
``tokens``) like the rest of the service, so the app includes it with one line.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections import defaultdict
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, JSONResponse

from imagejury.core.verdict.action import LOW_CONFIDENCE
from imagejury.service.deps import PrincipalDep as Who
from imagejury.service.deps import StoreDep
from imagejury.service.schemas import AUTH_ERRORS, ERR
from imagejury.service.store import Store

#: most recent rows of an org the queue looks at (filters run over these, in Python)
SCAN_LIMIT = 5000
#: fewest labels of each class `imagejury calibrate` fits with (its --min-per-class default)
MIN_PER_CLASS = 8
PAGE = Path(__file__).resolve().parents[1] / "templates" / "review.html"

router = APIRouter()


@router.get("/review", response_class=HTMLResponse, include_in_schema=False)
def review_page() -> HTMLResponse:
    """The page itself needs no token: it asks for one and sends it with every API call."""
    return HTMLResponse(PAGE.read_text(encoding="utf-8"), headers={"Cache-Control": "no-store"})


def _rows(store: Store, org_id: str) -> list[sqlite3.Row]:
    with store.read() as conn:
        return conn.execute(
            "SELECT id, status, created_at, client_ref, result_json, feedback_is_positive, feedback_reason "
            "FROM evaluations WHERE org_id=? AND superseded_at IS NULL ORDER BY seq DESC LIMIT ?",
            (org_id, SCAN_LIMIT),
        ).fetchall()


def _borderline(judges: list[dict[str, Any]]) -> bool:
    """A judge unsure of its vote: a measurement inside its band, or a low confidence."""
    return any(
        float(j.get("confidence") or 0) < LOW_CONFIDENCE
        or any(m.get("borderline") for m in j.get("measurements") or [])
        for j in judges
    )


def queue_item(row: sqlite3.Row) -> dict[str, Any]:
    """What the page shows of one evaluation: the verdict, each judge's reasoning and scores."""
    ev = json.loads(row["result_json"] or "{}")
    judges = ev.get("judges") or []
    url = str(ev.get("generated_image_url") or "")
    return {
        "id": row["id"],
        "status": row["status"],
        "client_ref": row["client_ref"],
        "created_at": datetime.fromtimestamp(row["created_at"], timezone.utc).isoformat(),
        "task_type": ev.get("task_type"),
        "action": ev.get("primary_action_code"),
        "overall_passed": ev.get("overall_passed"),
        "weighted_pass_rate": ev.get("weighted_pass_rate"),
        "override_reason": ev.get("override_reason"),
        "top_issues": ev.get("top_issues") or [],
        "prompt": ev.get("generation_prompt"),
        # the thumbnail kept at evaluation time is added by the queue; else an http(s) image
        # is shown from where the client keeps it
        "image_url": url if url.startswith(("http://", "https://")) else None,
        "borderline": _borderline(judges),
        "judges": [
            {
                "name": j.get("name"),
                "passed": j.get("passed"),
                "confidence": j.get("confidence"),
                "reasoning": j.get("reasoning"),
                "evidence": (j.get("evidence") or [])[:6],
                "issues": [i.get("subcategory") for i in j.get("issues") or []],
                "measurements": j.get("measurements") or [],
            }
            for j in judges
        ],
        "feedback": None
        if row["feedback_is_positive"] is None
        else {"is_positive": bool(row["feedback_is_positive"]), "reason": row["feedback_reason"]},
    }


def _matches(item: dict[str, Any], f: dict[str, Any]) -> bool:
    created = item["created_at"][:10]
    return (
        (not f["action"] or item["action"] == f["action"])
        and (not f["status"] or item["status"] == f["status"])
        and (not f["task_type"] or item["task_type"] == f["task_type"])
        and (not f["judge"] or any(j["name"] == f["judge"] for j in item["judges"]))
        and (not f["issue"] or any(f["issue"] in j["issues"] for j in item["judges"]))
        and (f["since"] is None or created >= f["since"].isoformat())
        and (f["until"] is None or created <= f["until"].isoformat())
        and (f["labelled"] == "any" or (item["feedback"] is not None) == (f["labelled"] == "yes"))
    )


def _priority(item: dict[str, Any]) -> int:
    """manual_review first, then borderline votes, then the rest."""
    if item["action"] == "manual_review":
        return 0
    return 1 if item["borderline"] else 2


@router.get(
    "/v1/review/queue",
    tags=["review"],
    summary="Evaluations to review: manual_review and borderline first",
    responses={422: ERR, **AUTH_ERRORS},
)
def review_queue(
    who: Who,
    store: StoreDep,
    action: str | None = Query(None, max_length=40),
    status: str | None = Query(None, max_length=20),
    judge: str | None = Query(None, max_length=80),
    issue: str | None = Query(None, max_length=80),
    task_type: str | None = Query(None, max_length=80),
    since: date | None = Query(None, description="created on or after (YYYY-MM-DD, UTC)"),
    until: date | None = Query(None, description="created on or before (YYYY-MM-DD, UTC)"),
    labelled: str = Query("any", pattern="^(any|yes|no)$"),
    limit: int = Query(50, ge=1, le=500),
) -> JSONResponse:
    filters = dict(
        action=action,
        status=status,
        judge=judge,
        issue=issue,
        task_type=task_type,
        since=since,
        until=until,
        labelled=labelled,
    )
    items = [queue_item(r) for r in _rows(store, who.org_id)]
    chosen = [i for i in items if _matches(i, filters)]
    chosen.sort(key=_priority)  # stable: newest first inside each priority
    page = chosen[:limit]
    kept = store.thumbnails(who.org_id, [i["id"] for i in page])
    for item in page:
        if item["id"] in kept:
            item["image_url"] = "data:image/jpeg;base64," + base64.b64encode(kept[item["id"]]).decode()
    return JSONResponse(
        {
            "data": page,
            "counts": {
                "matching": len(chosen),
                "labelled": sum(1 for i in chosen if i["feedback"] is not None),
                "approved": sum(1 for i in chosen if i["feedback"] and i["feedback"]["is_positive"]),
                "rejected": sum(1 for i in chosen if i["feedback"] and not i["feedback"]["is_positive"]),
            },
            "options": _options(items),
            "scanned": len(items),
        }
    )


def _options(items: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The values the page's filters offer (from what this org has)."""
    return {
        "action": sorted({i["action"] for i in items if i["action"]}),
        "status": sorted({i["status"] for i in items if i["status"]}),
        "task_type": sorted({i["task_type"] for i in items if i["task_type"]}),
        "judge": sorted({j["name"] for i in items for j in i["judges"] if j["name"]}),
        "issue": sorted({c for i in items for j in i["judges"] for c in j["issues"] if c}),
    }


@router.get(
    "/v1/calibration",
    tags=["review"],
    summary="Labels so far and each judge's agreement with them",
    responses={**AUTH_ERRORS},
)
def calibration_summary(who: Who, store: StoreDep) -> JSONResponse:
    """Per judge: labelled evaluations it voted on (approved / rejected), how often its vote agreed
    with the label (accuracy and balanced accuracy), and whether `imagejury calibrate --db`
    has enough of each class to fit it. The verdict's own agreement is the baseline."""
    rows = [r for r in _rows(store, who.org_id) if r["feedback_is_positive"] is not None and r["status"] == "completed"]
    votes: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    verdicts: list[tuple[bool, bool]] = []
    for r in rows:
        ev = json.loads(r["result_json"] or "{}")
        label = bool(r["feedback_is_positive"])
        verdicts.append((bool(ev.get("overall_passed")), label))
        for j in ev.get("judges") or []:
            votes[str(j.get("name"))].append((bool(j.get("passed")), label))
    return JSONResponse(
        {
            "labels": len(rows),
            "approved": sum(1 for r in rows if r["feedback_is_positive"]),
            "rejected": sum(1 for r in rows if not r["feedback_is_positive"]),
            "verdict": _agreement(verdicts),
            "judges": {name: _agreement(pairs) for name, pairs in sorted(votes.items())},
            "min_per_class": MIN_PER_CLASS,
        }
    )


def _agreement(pairs: list[tuple[bool, bool]]) -> dict[str, Any]:
    pos = [v for v, label in pairs if label]
    neg = [v for v, label in pairs if not label]
    accuracy = sum(v == label for v, label in pairs) / len(pairs) if pairs else None
    balanced = 0.5 * (sum(pos) / len(pos) + sum(not v for v in neg) / len(neg)) if pos and neg else None
    return {
        "labelled": len(pairs),
        "approved": len(pos),
        "rejected": len(neg),
        "accuracy": None if accuracy is None else round(accuracy, 4),
        "balanced_accuracy": None if balanced is None else round(balanced, 4),
        "enough_to_calibrate": min(len(pos), len(neg)) >= MIN_PER_CLASS,
    }
