"""The API's request and evaluation shapes (pydantic v2), field for field as in ``docs/api/``.

Limits are SPEC.md's (which takes them from the reference page). Where the page is
silent — the child attributes of ``reference_images`` — the choice is written beside
the field. Unknown request fields are refused: a misspelt ``generation_promt``
silently ignored would quietly turn off prompt-adherence judging.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from enum import Enum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from imagejury.core.intake.netguard import validate_callback_url
from imagejury.errors import FailureCode, InvalidRequestError
from imagejury.judges.taxonomy import REFERENCE_KINDS, TASK_TYPES, known_values

# ---------------------------------------------------------------- limits (SPEC.md)
MAX_IMAGE_URL_CHARS = 12_000_000
TASK_TYPE_MAX = 100
TASK_DESCRIPTION_MAX = 4_000
GENERATION_PROMPT_MAX = 10_000
EVALUATION_INSTRUCTIONS_MAX = 4_000
MAX_REFERENCE_IMAGES = 4
CLIENT_REF_MAX = 255
JOB_CLASS_MAX = 50
CALLBACK_URL_MAX = 2_048
# reference_images children: the page shows {url, kind, description} with no limits;
# these are ours (same cap as the main image URL; kind as short as a job class; the
# description as long as the other free-text fields).
REFERENCE_KIND_MAX = 50
REFERENCE_DESCRIPTION_MAX = 4_000

#: the cost pattern of the reference page (needs Python's re: it uses a lookahead)
COST_PATTERN = r"^(?!^[-+.]*$)[+-]?0*\d*\.?\d*$"
_COST_RE = re.compile(COST_PATTERN)

#: the nested blocks ``?embed=`` may select
EMBEDDABLE = frozenset({"judges", "action", "gate_failures"})

#: validation-context key: admit http://localhost / 127.0.0.1 callbacks (local testing)
ALLOW_LOOPBACK_CALLBACKS = "allow_loopback_callbacks"


def new_id() -> uuid.UUID:
    """A fresh random id for an evaluation, judge row, issue, gate failure or action."""
    return uuid.uuid4()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# ---------------------------------------------------------------- enums
class JobClass(str, Enum):
    standard = "standard"
    quick = "quick"


class Status(str, Enum):
    pending = "pending"
    running = "running"
    completed = "completed"
    failed = "failed"


class Source(str, Enum):
    platform = "platform"
    api = "api"


# ---------------------------------------------------------------- shared field types
def _as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC (we only ever create aware ones)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _iso_z(value: datetime) -> str:
    return _as_utc(value).isoformat().replace("+00:00", "Z")


#: a UTC timestamp, serialised as ISO 8601 with a ``Z`` like the example response
UTCDateTime = Annotated[datetime, AfterValidator(_as_utc), PlainSerializer(_iso_z, return_type=str, when_used="json")]


def _check_cost(value: str) -> str:
    if not _COST_RE.match(value):
        raise ValueError(f"must be a decimal string like '0.012' (pattern {COST_PATTERN}); got {value[:40]!r}")
    return value


CostStr = Annotated[str, AfterValidator(_check_cost)]


# ---------------------------------------------------------------- request
class ReferenceImageIn(BaseModel):
    """One reference image: identity (face/person) or another kind (garment, product, style)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1, max_length=MAX_IMAGE_URL_CHARS, description="https:// URL, asset reference or data:image/... URI"
    )
    # The page shows ``kind`` in the example without saying whether it is required.
    # A missing kind is read as "identity", the comparison the page names first; it is
    # lower-cased and stripped so that "Identity " and "identity" plan the same judges.
    kind: str = Field(
        default="identity",
        min_length=1,
        max_length=REFERENCE_KIND_MAX,
        description="reference kind, case-insensitive; known kinds (aliases in brackets): "
        + known_values(REFERENCE_KINDS)
        + ". Another value is reported in check_summary.input_issues (refused under strict = true).",
        json_schema_extra={"examples": list(REFERENCE_KINDS)},
    )
    description: str | None = Field(default=None, max_length=REFERENCE_DESCRIPTION_MAX)

    @field_validator("kind")
    @classmethod
    def _normalise_kind(cls, value: str) -> str:
        value = value.strip().lower()
        if not value:
            raise ValueError("must not be blank")
        return value


class EvaluationRequest(BaseModel):
    """The body of ``POST /v1/evaluations``."""

    model_config = ConfigDict(extra="forbid")

    generated_image_url: str = Field(min_length=1, max_length=MAX_IMAGE_URL_CHARS)
    task_type: str = Field(
        min_length=1,
        max_length=TASK_TYPE_MAX,
        description="task type, case-insensitive; known types (aliases in brackets): "
        + known_values(TASK_TYPES)
        + ". Another value uses the image_generation preset and is reported in check_summary.input_issues "
        "(refused under strict = true).",
        json_schema_extra={"examples": list(TASK_TYPES)},
    )
    task_description: str | None = Field(default=None, max_length=TASK_DESCRIPTION_MAX)
    generation_prompt: str | None = Field(default=None, max_length=GENERATION_PROMPT_MAX)
    evaluation_instructions: str | None = Field(default=None, max_length=EVALUATION_INSTRUCTIONS_MAX)
    input_attributes: dict[str, Any] = Field(default_factory=dict)
    reference_images: list[ReferenceImageIn] = Field(default_factory=list, max_length=MAX_REFERENCE_IMAGES)
    run_id: uuid.UUID | None = None
    client_ref: str | None = Field(default=None, max_length=CLIENT_REF_MAX)
    job_class: JobClass = JobClass.standard
    callback_url: str | None = Field(default=None, max_length=CALLBACK_URL_MAX)

    @field_validator("task_type")
    @classmethod
    def _task_type_not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value

    @field_validator("input_attributes", mode="before")
    @classmethod
    def _attributes_null_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("reference_images", mode="before")
    @classmethod
    def _references_null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("job_class", mode="before")
    @classmethod
    def _job_class_length(cls, value: Any) -> Any:
        if isinstance(value, str) and len(value) > JOB_CLASS_MAX:
            raise ValueError(f"must be at most {JOB_CLASS_MAX} characters")
        return value

    @field_validator("callback_url")
    @classmethod
    def _callback_url_safe(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        allow = bool((info.context or {}).get(ALLOW_LOOPBACK_CALLBACKS, False))
        return validate_callback_url(value, allow_loopback=allow)


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem, each starting with the field path (``reference_images.4``)."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err.get("loc", ())) or "body"
        msg = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            msg = "unknown field (check the spelling; see the API's request fields)"
        lines.append(f"{loc}: {msg}")
    return "; ".join(lines)


def parse_request(data: Any, *, allow_loopback_callbacks: bool = False) -> EvaluationRequest:
    """Validate a request (dict, JSON str/bytes or an EvaluationRequest) or raise InvalidRequestError."""
    if isinstance(data, EvaluationRequest):
        data = data.model_dump()
    context = {ALLOW_LOOPBACK_CALLBACKS: allow_loopback_callbacks}
    try:
        if isinstance(data, (str, bytes, bytearray)):
            return EvaluationRequest.model_validate_json(data, context=context)
        return EvaluationRequest.model_validate(data, context=context)
    except ValidationError as exc:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
        raise InvalidRequestError(format_validation_error(exc), errors=errors) from None


# ---------------------------------------------------------------- response
class _Out(BaseModel):
    # forbid: a misspelt key in our own output is a bug we want to see at once
    model_config = ConfigDict(extra="forbid")


class JudgeIssueOut(_Out):
    id: uuid.UUID = Field(default_factory=new_id)
    evaluation_id: uuid.UUID
    evaluation_judge_id: uuid.UUID
    category: str
    subcategory: str
    detail: str
    created_at: UTCDateTime = Field(default_factory=utcnow)


class MeasurementOut(_Out):
    """One raw score a judge decided on (imagejury's addition to the API's judge object):
    enough to recompute the vote under other thresholds (``imagejury rescore``)."""

    name: str
    value: float | None
    threshold: float
    higher_is_better: bool
    units: str
    model: str = ""
    band: float | None = None
    band_source: str = ""
    decisive: bool = True
    passed: bool | None = None
    margin: float | None = None
    borderline: bool = False


class EvaluationJudge(_Out):
    id: uuid.UUID = Field(default_factory=new_id)
    evaluation_id: uuid.UUID
    name: str
    description: str | None = None
    category: str
    passed: bool
    confidence: float = Field(ge=0.0, le=1.0)
    weight: float = Field(ge=0.0)
    reasoning: str
    evidence: list[str] = Field(default_factory=list)
    sub_point_results: dict[str, Any] = Field(default_factory=dict)
    sub_points_evaluated: int = Field(default=0, ge=0)
    created_at: UTCDateTime = Field(default_factory=utcnow)
    issues: list[JudgeIssueOut] = Field(default_factory=list)
    # imagejury's additions: the raw scores and how they combine into ``passed``
    measurements: list[MeasurementOut] = Field(default_factory=list)
    decision_rule: str = "all"


class GateFailureOut(_Out):
    id: uuid.UUID = Field(default_factory=new_id)
    evaluation_id: uuid.UUID
    output_key: str
    module: str
    reason: str
    created_at: UTCDateTime = Field(default_factory=utcnow)


class ActionOut(_Out):
    id: uuid.UUID = Field(default_factory=new_id)
    evaluation_id: uuid.UUID
    primary_action: str
    failure_summary: str | None = None
    improved_prompt: str | None = None
    created_at: UTCDateTime = Field(default_factory=utcnow)


class Evaluation(_Out):
    """One evaluation as the API returns it: every key of ``response.example.json``
    plus ``status``, ``source``, ``failure_code``, ``job_class`` and ``failure_message``.

    Platform-only fields (org, model, flow, workflow, ``run``, ``model``) stay ``null``
    in a local engine unless the caller supplies them.
    """

    id: uuid.UUID = Field(default_factory=new_id)
    org_id: uuid.UUID | None = None
    run_id: uuid.UUID | None = None
    target_type_code: str | None = None
    model_id: uuid.UUID | None = None
    flow_id: uuid.UUID | None = None
    comfyui_workflow_id: uuid.UUID | None = None
    status: Status = Status.pending
    source: Source = Source.api
    job_class: JobClass = JobClass.standard
    failure_code: FailureCode | None = None
    failure_message: str | None = None

    task_type: str
    task_description: str | None = None
    generation_prompt: str | None = None
    generated_image_url: str
    input_attributes: dict[str, Any] = Field(default_factory=dict)
    evaluation_instructions: str | None = None
    reference_images: list[dict[str, Any]] = Field(default_factory=list)

    overall_passed: bool | None = None
    weighted_pass_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    override_reason: str | None = None
    top_issues: list[str] = Field(default_factory=list)
    top_strengths: list[str] = Field(default_factory=list)
    check_summary: dict[str, Any] = Field(default_factory=dict)
    analysis_modules_executed: int | None = Field(default=None, ge=0)
    primary_action_code: str | None = None

    parent_evaluation_id: uuid.UUID | None = None
    attempt_number: int = Field(default=1, ge=1)
    superseded_at: UTCDateTime | None = None
    eval_duration_ms: int | None = Field(default=None, ge=0)
    feedback_is_positive: bool | None = None
    feedback_reason: str | None = None

    created_at: UTCDateTime = Field(default_factory=utcnow)
    updated_at: UTCDateTime = Field(default_factory=utcnow)
    client_ref: str | None = None
    submitted_at: UTCDateTime | None = None
    completed_at: UTCDateTime | None = None
    callback_url: str | None = None
    cost: CostStr | None = None
    links: dict[str, Any] = Field(default_factory=dict)

    judges: list[EvaluationJudge] = Field(default_factory=list)
    gate_failures: list[GateFailureOut] = Field(default_factory=list)
    action: ActionOut | None = None
    run: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
    parent_evaluation: dict[str, Any] | None = None

    @classmethod
    def from_request(
        cls,
        request: EvaluationRequest,
        *,
        source: Source = Source.api,
        id: uuid.UUID | None = None,
        now: datetime | None = None,
        **fields: Any,
    ) -> Evaluation:
        """A ``pending`` evaluation echoing the request's fields."""
        now = _as_utc(now) if now else utcnow()
        return cls(
            id=id or new_id(),
            run_id=request.run_id,
            source=source,
            job_class=request.job_class,
            task_type=request.task_type,
            task_description=request.task_description,
            generation_prompt=request.generation_prompt,
            generated_image_url=request.generated_image_url,
            input_attributes=dict(request.input_attributes),
            evaluation_instructions=request.evaluation_instructions,
            reference_images=[r.model_dump() for r in request.reference_images],
            client_ref=request.client_ref,
            callback_url=request.callback_url,
            created_at=now,
            updated_at=now,
            submitted_at=now,
            **fields,
        )

    def to_api(self, embed: Iterable[str] | None = None) -> dict[str, Any]:
        """The API JSON (a dict of JSON types). ``embed`` names the nested blocks to
        include (``judges``, ``action``, ``gate_failures``); None includes all. A block
        not embedded is ``null``, so clients can tell "not asked for" from "empty".
        """
        data = self.model_dump(mode="json")
        if embed is None:
            return data
        if isinstance(embed, str):  # "judges,action" as it comes from a query string
            embed = embed.split(",")
        wanted = {e.strip() for e in embed if e and e.strip()}
        unknown = wanted - EMBEDDABLE
        if unknown:
            raise ValueError(f"embed: unknown block(s) {sorted(unknown)}; choose from {sorted(EMBEDDABLE)}")
        for block in EMBEDDABLE - wanted:
            data[block] = None
        return data


__all__ = [
    "ALLOW_LOOPBACK_CALLBACKS",
    "ActionOut",
    "COST_PATTERN",
    "EMBEDDABLE",
    "Evaluation",
    "EvaluationJudge",
    "EvaluationRequest",
    "FailureCode",
    "GateFailureOut",
    "JobClass",
    "JudgeIssueOut",
    "ReferenceImageIn",
    "Source",
    "Status",
    "UTCDateTime",
    "format_validation_error",
    "new_id",
    "parse_request",
    "utcnow",
]
