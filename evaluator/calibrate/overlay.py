"""The config overlay that ``calibrate`` writes and ``rescore``/``evaluate``/``batch``/``serve`` read.

It is an ordinary imagejury config file: per judge, ``[judges.NAME.calibration]`` holds
threshold overrides keyed by measurement name, one number or a table model → number::

    [judges.identity.calibration.similarity]
    # n=120 labels (...), objective balanced_accuracy, 5-fold CV 0.71 [0.64, 0.78] -> 0.93 [...]
    "dlib_face_recognition_resnet_model_v1" = 0.55

and ``[judges.NAME] weight = ...`` as before. The judges read the overrides through
``Judge.threshold_for``; ``rescore`` applies them to stored measurements.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from imagejury.core.config import EvaluatorConfig
from imagejury.errors import InvalidRequestError
from imagejury.judges.base import ThresholdTable, threshold_lookup


class JudgeOverlay(BaseModel):
    """What rescore needs of one ``[judges.NAME]`` section; the judge's own keys are ignored here
    (the judge's config class validates them when the judge is built)."""

    model_config = ConfigDict(extra="ignore")

    weight: float | None = Field(None, ge=0.0)
    calibration: ThresholdTable = Field(default_factory=dict)


@dataclass
class Overlay:
    """Threshold overrides and weights by judge name."""

    judges: dict[str, JudgeOverlay] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: EvaluatorConfig) -> Overlay:
        judges = {}
        for name, section in config.judges.items():
            try:
                judges[name] = JudgeOverlay.model_validate(section)
            except ValidationError as exc:
                raise InvalidRequestError(f"[judges.{name}] in the config: {exc}") from exc
        return cls(judges)

    @classmethod
    def from_file(cls, path: str | Path | None) -> Overlay:
        try:
            config = EvaluatorConfig.from_file(path)
        except FileNotFoundError as exc:
            raise InvalidRequestError(str(exc)) from exc
        except (ValidationError, ValueError) as exc:  # tomllib.TOMLDecodeError is a ValueError
            raise InvalidRequestError(f"config {path}: {exc}") from exc
        return cls.from_config(config)

    def table(self, judge: str) -> ThresholdTable:
        section = self.judges.get(judge)
        return section.calibration if section else {}

    def weight(self, judge: str) -> float | None:
        section = self.judges.get(judge)
        return section.weight if section else None

    def threshold(self, judge: str, measurement: str, model: str, default: float) -> float:
        return threshold_lookup(self.table(judge), measurement, model, default)


@dataclass(frozen=True)
class FittedThreshold:
    """One fitted value with the provenance its comment carries."""

    judge: str
    measurement: str
    model: str
    value: float
    provenance: list[str]  # comment lines, without the leading '#'


def render_overlay(fits: list[FittedThreshold], header: list[str]) -> str:
    """TOML text of ``fits``, each value preceded by its provenance comment.

    Keys are written as JSON strings, which TOML reads as basic strings.
    """
    lines = [f"# {h}" for h in header]
    by_section: dict[tuple[str, str], list[FittedThreshold]] = {}
    for fit in fits:
        by_section.setdefault((fit.judge, fit.measurement), []).append(fit)
    for (judge, measurement), group in by_section.items():
        lines += ["", f"[judges.{json.dumps(judge)}.calibration.{json.dumps(measurement)}]"]
        for fit in group:
            lines += [f"# {p}" for p in fit.provenance]
            lines.append(f"{json.dumps(fit.model or '*')} = {fit.value:.6g}")
    return "\n".join(lines) + "\n"
