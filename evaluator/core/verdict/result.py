"""Turn judge results and the verdict into the API's ``Evaluation`` object."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from imagejury.core.schema import (
    ActionOut,
    Evaluation,
    EvaluationJudge,
    EvaluationRequest,
    GateFailureOut,
    JudgeIssueOut,
    MeasurementOut,
    new_id,
    utcnow,
)
from imagejury.core.verdict.action import Action
from imagejury.core.verdict.aggregate import Verdict
from imagejury.errors import ImagejuryError
from imagejury.judges.types import JudgeResult


@dataclass
class EvaluationMeta:
    """What the caller (library, batch, server) knows about an evaluation before judging."""

    id: str
    org_id: str | None = None
    source: str = "api"
    created_at: datetime = field(default_factory=utcnow)
    submitted_at: datetime = field(default_factory=utcnow)
    attempt_number: int = 1
    parent_evaluation_id: str | None = None
    cost: str = "0"
    links: dict = field(default_factory=dict)

    @classmethod
    def new(cls, request: EvaluationRequest | None = None, **kw: object) -> EvaluationMeta:
        return cls(id=str(new_id()), **kw)  # type: ignore[arg-type]


def _request_fields(req: EvaluationRequest) -> dict:
    return {
        "run_id": str(req.run_id) if req.run_id else None,
        "task_type": req.task_type,
        "task_description": req.task_description,
        "generation_prompt": req.generation_prompt,
        "generated_image_url": short_url(req.generated_image_url),
        "input_attributes": dict(req.input_attributes or {}),
        "evaluation_instructions": req.evaluation_instructions,
        "reference_images": [
            {"url": short_url(r.url), "kind": r.kind, "description": r.description}
            for r in (req.reference_images or [])
        ],
        "client_ref": req.client_ref,
        "callback_url": req.callback_url,
        "job_class": job_class_of(req),
    }


#: data: URIs longer than this are echoed shortened
ECHO_MAX = 256


def short_url(url: str) -> str:
    """Echo data URIs shortened: a 12 MB string in every response helps nobody."""
    if url.startswith("data:") and len(url) > ECHO_MAX:
        head = url.split(",", 1)[0]
        return f"{head},<{len(url)} chars elided>"
    return url


def job_class_of(req: EvaluationRequest) -> str:
    """The request's job class as a plain string ("standard" when unset)."""
    jc = req.job_class
    return getattr(jc, "value", jc) or "standard"


def _base(req: EvaluationRequest, meta: EvaluationMeta, started: float) -> dict:
    now = utcnow()
    return {
        "id": meta.id,
        "org_id": meta.org_id,
        "source": meta.source,
        "created_at": meta.created_at,
        "updated_at": now,
        "submitted_at": meta.submitted_at,
        "completed_at": now,
        "attempt_number": meta.attempt_number,
        "parent_evaluation_id": meta.parent_evaluation_id,
        "cost": meta.cost,
        "links": meta.links or {"self": f"/v1/evaluations/{meta.id}"},
        "eval_duration_ms": int(round((time.perf_counter() - started) * 1000)),
        **_request_fields(req),
    }


def build_evaluation(
    req: EvaluationRequest,
    meta: EvaluationMeta,
    results: Sequence[JudgeResult],
    verdict: Verdict,
    action: Action,
    started: float,
) -> Evaluation:
    now = utcnow()
    judges = []
    for r in results:
        jid = str(new_id())
        judges.append(
            EvaluationJudge(
                id=jid,
                evaluation_id=meta.id,
                name=r.name,
                description=r.description,
                category=r.category,
                passed=r.passed,
                confidence=round(float(r.confidence), 4),
                weight=round(float(r.weight), 4),
                reasoning=r.reasoning,
                evidence=list(r.evidence),
                sub_point_results=dict(r.sub_point_results),
                sub_points_evaluated=int(r.sub_points_evaluated),
                measurements=[MeasurementOut(**m.as_json()) for m in r.measurements],
                decision_rule=r.decision_rule,
                created_at=now,
                issues=[
                    JudgeIssueOut(
                        id=str(new_id()),
                        evaluation_id=meta.id,
                        evaluation_judge_id=jid,
                        category=r.category,
                        subcategory=i.subcategory,
                        detail=i.detail,
                        created_at=now,
                    )
                    for i in r.issues
                ],
            )
        )
    gates = [
        GateFailureOut(
            id=str(new_id()),
            evaluation_id=meta.id,
            output_key=g.output_key,
            module=g.module,
            reason=g.reason,
            created_at=now,
        )
        for _, g in verdict.gate_failures
    ]
    return Evaluation(
        **_base(req, meta, started),
        status="completed",
        overall_passed=verdict.overall_passed,
        weighted_pass_rate=verdict.weighted_pass_rate,
        override_reason=verdict.override_reason,
        top_issues=verdict.top_issues,
        top_strengths=verdict.top_strengths,
        check_summary=verdict.check_summary,
        analysis_modules_executed=verdict.analysis_modules_executed,
        primary_action_code=action.primary_action,
        judges=judges,
        gate_failures=gates,
        action=ActionOut(
            id=str(new_id()),
            evaluation_id=meta.id,
            primary_action=action.primary_action,
            failure_summary=action.failure_summary,
            improved_prompt=action.improved_prompt,
            created_at=now,
        ),
    )


def failed_evaluation(
    req: EvaluationRequest, meta: EvaluationMeta, error: ImagejuryError, started: float
) -> Evaluation:
    """A terminal ``failed`` evaluation: no verdict, the error's failure code and its detail."""
    code = error.failure_code.value
    return Evaluation(
        **_base(req, meta, started),
        status="failed",
        failure_code=error.failure_code,
        failure_message=error.detail,
        # not evaluated: no pass rate and no action, so dashboards do not count it as a 0% verdict
        overall_passed=False,
        weighted_pass_rate=None,
        override_reason=f"{code}: {error.detail}",
        top_issues=[f"{code}: {error.detail}"],
        top_strengths=[],
        check_summary={},
        analysis_modules_executed=0,
        primary_action_code=None,
        judges=[],
        gate_failures=[],
        action=None,
    )
