"""The service's own response models (for the OpenAPI document) and its small vocabularies."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from imagejury.core.schema import Evaluation, JobClass, Status

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


ERR: dict[str, Any] = {"model": ErrorOut}
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {401: {**ERR, "description": "missing or unknown token"}}
