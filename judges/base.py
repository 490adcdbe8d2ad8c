"""The Judge contract: batch in, list out; declared requirements; lazy models."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from imagejury.judges.types import JudgeItem, JudgeResult
from imagejury.models.provider import ModelSet

#: threshold overrides of one judge, keyed by measurement name: one number for every model,
#: or a table model → number ("*" for any other model). ``[judges.identity.calibration]
#: similarity = 0.55`` or ``[judges.identity.calibration.similarity] "dlib_..." = 0.55``.
#: A key also matches the measurements named ``KEY:...`` ("sub" matches "sub:a red hat").
ThresholdTable = dict[str, float | dict[str, float]]


def threshold_lookup(table: ThresholdTable, name: str, model: str, default: float) -> float:
    """The overridden threshold of measurement ``name`` measured by ``model``, else ``default``.

    The exact name wins over its ``KEY:`` prefix, an exact model over ``"*"``; a
    measurement without an override keeps the judge's own threshold.
    """
    for key in (name, name.split(":", 1)[0]) if ":" in name else (name,):
        entry = table.get(key)
        if entry is None:
            continue
        if not isinstance(entry, dict):
            return float(entry)
        if model in entry:
            return float(entry[model])
        if "*" in entry:
            return float(entry["*"])
    return default


class JudgeConfig(BaseModel):
    """Base of every judge's config. Subclasses add thresholds with their provenance."""

    model_config = ConfigDict(extra="forbid")

    weight: float | None = None  # None: the judge's default_weight
    calibration: ThresholdTable = Field(
        default_factory=dict,
        description="threshold overrides by measurement name (and model), e.g. fitted by `imagejury calibrate`; "
        "they replace the judge's own thresholds wherever the judge reads them through threshold_for()",
    )


class Judge(ABC):
    """A judge votes on items. Subclasses set the class attributes and ``judge()``.

    ``requires`` names what an item must carry for the judge to apply:
    ``prompt``, ``instructions``, ``attributes``, ``identity_reference``,
    ``other_reference``, ``face``. ``models`` names the model kinds it loads
    (``image_text``, ``face``, ``quality:NAME``) so the planner can tell, before running,
    whether they are available here.
    """

    name: ClassVar[str]
    category: ClassVar[str]
    description: ClassVar[str] = ""
    default_weight: ClassVar[float] = 1.0
    version: ClassVar[str] = "1"
    requires: ClassVar[frozenset[str]] = frozenset()
    models: ClassVar[frozenset[str]] = frozenset()
    is_gate: ClassVar[bool] = False
    Config: ClassVar[type[JudgeConfig]] = JudgeConfig

    def __init__(self, config: JudgeConfig | dict[str, Any] | None = None, model_set: ModelSet | None = None) -> None:
        if config is None:
            config = self.Config()
        elif isinstance(config, dict):
            config = self.Config(**config)
        self.config = config
        self.model_set = model_set or ModelSet()

    @property
    def weight(self) -> float:
        return self.config.weight if self.config.weight is not None else self.default_weight

    def threshold_for(self, measurement: str, default: float, model: str = "") -> float:
        """The threshold this judge applies to ``measurement`` (from ``model``): the config's
        ``calibration`` override when there is one (``imagejury calibrate`` writes them),
        else ``default``, the judge's own. Judges read every decisive threshold through it."""
        return threshold_lookup(self.config.calibration, measurement, model, default)

    def applies(self, item: JudgeItem) -> bool:
        return all(_has(item, need) for need in self.requires)

    def warmup(self) -> None:  # noqa: B027 - optional hook: judges without models need none
        """Load the models this judge needs (raises ModelUnavailableError if absent)."""

    @abstractmethod
    def judge(self, batch: Sequence[JudgeItem]) -> list[JudgeResult]:
        """One result per item, same order. An empty batch gives an empty list."""

    # helpers for subclasses ---------------------------------------------------
    def result(self, **kwargs: Any) -> JudgeResult:
        kwargs.setdefault("weight", self.weight)
        kwargs.setdefault("description", self.description)
        kwargs.setdefault("version", self.version)
        return JudgeResult(name=self.name, category=self.category, **kwargs)


def _has(item: JudgeItem, need: str) -> bool:
    if need == "prompt":
        return bool(item.prompt and item.prompt.strip())
    if need == "instructions":
        return bool(item.instructions and item.instructions.strip())
    if need == "attributes":
        return bool(item.attributes)
    if need == "identity_reference":
        return bool(item.identity_references)
    if need == "other_reference":
        return bool(item.other_references)
    if need == "references":
        return bool(item.references)
    raise ValueError(f"unknown requirement '{need}'")


def confidence_from_margin(margin: float, scale: float) -> float:
    """Map a signed distance from a threshold to a confidence in [0.5, 1).

    ``scale`` is the distance at which confidence reaches ~0.88 (tanh(1)); at the
    threshold itself the judge is at a coin flip.
    """
    if scale <= 0:
        raise ValueError("scale must be positive")
    return round(0.5 + 0.5 * math.tanh(abs(margin) / scale), 4)
