"""The two types a judge knows: the item it judges and the result it returns.

Nothing here knows about HTTP, SQL or the API's JSON; the evaluator converts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from imagejury.judges.features import FeatureCache
from imagejury.judges.taxonomy import REFERENCE_KINDS, canonical_reference_kind, is_identity_kind

#: the kinds that feed the identity judge (the canonical kind and its aliases; taxonomy.py)
IDENTITY_KINDS = frozenset({"identity", *REFERENCE_KINDS["identity"]})


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
        """References whose canonical kind (aliases resolved, case-insensitive) is in ``kinds``."""
        return [r for r in self.references if canonical_reference_kind(r.kind) in kinds]

    @property
    def identity_references(self) -> list[Reference]:
        return [r for r in self.references if is_identity_kind(r.kind)]

    @property
    def other_references(self) -> list[Reference]:
        return [r for r in self.references if not is_identity_kind(r.kind)]


@dataclass
class JudgeIssue:
    """A defect found by a judge. ``subcategory`` is a short code (``blur``, ``framing``)."""

    subcategory: str
    detail: str
    severity: float = 1.0  # 0..1: how much this issue matters inside its judge
    target: str | None = None  # the text at stake ("a red hat"), for the improved prompt
    instead: str | None = None  # what the image shows instead ("a blue hat"), for the improved prompt's Avoid


@dataclass
class GateFailure:
    """A finding that fails the evaluation outright, whatever the votes say."""

    output_key: str
    module: str
    reason: str


@dataclass(frozen=True)
class Measurement:
    """One raw score a judge decided on, with the rule it applied to it.

    Enough to recompute the judge's vote without running a model again (``imagejury
    rescore``) and to re-fit the threshold from people's labels (``imagejury calibrate``):
    the value, the threshold, which side passes, the units, and the model that measured it.
    ``band`` is the half-width of the uncertainty band around the threshold, in the same
    units, where one was measured (e.g. the identity distances at which errors occur on
    labeled pairs); a value inside it is *borderline*.
    """

    name: str  # stable key inside the judge: "distance", "brisque", "sub:a red hat"
    value: float | None  # None: could not be measured on this image
    threshold: float
    higher_is_better: bool
    units: str  # "euclidean distance, dlib 128-d", "probability over foils", "BRISQUE points"
    model: str = ""  # what produced the value ("dlib_face_recognition_resnet_model_v1", "ViT-B-32:openai")
    band: float | None = None
    decisive: bool = True  # False: reported for information, not part of the vote
    band_source: str = ""  # where the band comes from ("errors on 520 labeled pairs lie within it")

    @property
    def margin(self) -> float | None:
        """Signed distance from the threshold, positive on the passing side."""
        if self.value is None:
            return None
        return self.value - self.threshold if self.higher_is_better else self.threshold - self.value

    @property
    def passed(self) -> bool | None:
        margin = self.margin
        return None if margin is None else margin >= 0

    @property
    def borderline(self) -> bool:
        margin = self.margin
        return margin is not None and self.band is not None and abs(margin) < self.band

    def with_threshold(self, threshold: float) -> Measurement:
        return Measurement(**{**self.__dict__, "threshold": threshold})

    def as_json(self) -> dict[str, Any]:
        """The API's measurement object: every field plus the derived passed, margin and
        borderline (value and margin rounded to 6 places). ``from_json`` reads it back."""
        margin = self.margin
        return {
            "name": self.name,
            "value": None if self.value is None else round(float(self.value), 6),
            "threshold": float(self.threshold),
            "higher_is_better": self.higher_is_better,
            "units": self.units,
            "model": self.model,
            "band": self.band,
            "band_source": self.band_source,
            "decisive": self.decisive,
            "passed": self.passed,
            "margin": None if margin is None else round(float(margin), 6),
            "borderline": self.borderline,
        }

    @classmethod
    def from_json(cls, m: dict[str, Any]) -> Measurement:
        """A stored measurement object back (the derived keys are recomputed, not read)."""
        return cls(
            name=str(m["name"]),
            value=None if m.get("value") is None else float(m["value"]),
            threshold=float(m["threshold"]),
            higher_is_better=bool(m["higher_is_better"]),
            units=str(m.get("units") or ""),
            model=str(m.get("model") or ""),
            band=m.get("band"),
            decisive=bool(m.get("decisive", True)),
            band_source=str(m.get("band_source") or ""),
        )


#: how a judge's decisive measurements combine into its vote: every one must pass ("all"),
#: any one ("any"), or at least K of them ("at_least:K"). Unmeasured values do not count.
DECISION_RULES = ("all", "any", "at_least:K")


def decide(measurements: list[Measurement], rule: str) -> bool | None:
    """The vote ``rule`` gives over ``measurements``; None when nothing decisive was measured."""
    votes = [m.passed for m in measurements if m.decisive and m.passed is not None]
    if not votes:
        return None
    if rule == "all":
        return all(votes)
    if rule == "any":
        return any(votes)
    if rule.startswith("at_least:"):
        return sum(votes) >= int(rule.split(":", 1)[1])
    raise ValueError(f"unknown decision rule {rule!r}; known: {', '.join(DECISION_RULES)}")


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
    # the raw scores the vote was decided on, and how they combine (see ``decide``);
    # a judge that records them promises decide(measurements, decision_rule) == passed
    measurements: list[Measurement] = field(default_factory=list)
    decision_rule: str = "all"
