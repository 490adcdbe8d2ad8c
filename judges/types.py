"""The two types a judge knows: the item it judges and the result it returns.

Nothing here knows about HTTP, SQL or the API's JSON; the evaluator converts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from imagejury.judges.features import FeatureCache

IDENTITY_KINDS = frozenset({"identity", "face", "person"})


@dataclass
class Reference:
    """A decoded reference image."""

    kind: str
    image: Image.Image
    description: str | None = None
    key: str = ""  # stable cache key (content hash)


@dataclass
class Directives:
    """How the rubric asked the evaluation itself to behave (from the instructions)."""

    ignore: set[str] = field(default_factory=set)  # aspects to skip: "background", "text", ...
    prioritise: set[str] = field(default_factory=set)  # aspects to weight up: "face", ...
    notes: list[str] = field(default_factory=list)  # how each sentence was read


@dataclass
class JudgeItem:
    """One image to judge, with everything a judge may look at."""

    item_id: str
    image: Image.Image  # RGB, EXIF-rotated, decoded once
    image_key: str  # content hash: the feature-cache key
    task_type: str = "image_generation"
    task_description: str | None = None
    prompt: str | None = None
    instructions: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    references: list[Reference] = field(default_factory=list)
    job_class: str = "standard"
    directives: Directives = field(default_factory=Directives)
    features: FeatureCache = field(default_factory=FeatureCache)
    # original size before any decode-time reduction (draft); judges that measure
    # resolution read this, not image.size
    original_size: tuple[int, int] | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self.original_size or self.image.size

    def references_of(self, kinds: frozenset[str] | set[str]) -> list[Reference]:
        return [r for r in self.references if r.kind.lower() in kinds]

    @property
    def identity_references(self) -> list[Reference]:
        return self.references_of(IDENTITY_KINDS)

    @property
    def other_references(self) -> list[Reference]:
        return [r for r in self.references if r.kind.lower() not in IDENTITY_KINDS]


@dataclass
class JudgeIssue:
    """A defect found by a judge. ``subcategory`` is a short code (``blur``, ``framing``)."""

    subcategory: str
    detail: str
    severity: float = 1.0  # 0..1: how much this issue matters inside its judge
    target: str | None = None  # the text at stake ("a red hat"), for the improved prompt


@dataclass
class GateFailure:
    """A finding that fails the evaluation outright, whatever the votes say."""

    output_key: str
    module: str
    reason: str


@dataclass
class JudgeResult:
    """One judge's vote on one item."""

    name: str
    category: str
    passed: bool
    confidence: float  # 0..1, grows with the distance from the threshold
    weight: float
    reasoning: str
    description: str = ""
    score: float | None = None  # the judge's calibrated score, when it has one
    threshold: float | None = None
    evidence: list[str] = field(default_factory=list)
    sub_point_results: dict[str, Any] = field(default_factory=dict)
    sub_points_evaluated: int = 0
    issues: list[JudgeIssue] = field(default_factory=list)
    gate_failures: list[GateFailure] = field(default_factory=list)
    strengths: list[str] = field(default_factory=list)
    critical: bool = False  # set by the preset: a failure fails the evaluation
    version: str = ""
