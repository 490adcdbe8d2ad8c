"""Evaluator configuration: one object from defaults, a TOML file and command-line flags.

The file (``--config PATH`` or ``$IMAGEJURY_CONFIG``) has sections ``[models]``,
``[evaluation]``, ``[media]``, ``[judges.NAME]`` and, for the service, ``[server]``;
each section is validated by the pydantic model that owns it, so a typo is an error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import tomllib
from pydantic import BaseModel, ConfigDict, Field

from imagejury.models.settings import ModelSettings


class ModelsSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    clip: str | None = Field(
        None, description="CLIP source; None = job-class default (quick ViT-B-32, standard ViT-L-14)"
    )
    face_backend: str = Field("dlib", pattern="^(dlib|insightface)$")
    face_model: str | None = None
    device: str = Field("cpu", pattern=r"^(cpu|cuda(:\d+)?)$")
    dtype: str = Field("auto", pattern="^(auto|float32|float16|bfloat16)$")
    torch_threads: int | None = Field(None, ge=1)
    aesthetic_head: str | None = None
    # backend options, e.g. [models.extra.insightface] det_size = 640, det_thresh = 0.5
    extra: dict[str, Any] = Field(default_factory=dict)

    def settings(self) -> ModelSettings:
        return ModelSettings(**self.model_dump())


class MediaSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_pixels: int = Field(40_000_000, ge=1)
    max_bytes: int = Field(25 * 1024 * 1024, ge=1)
    fetch_timeout_s: float = Field(10.0, gt=0)
    allow_loopback_urls: bool = False


class EvaluationSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allow_missing_models: bool = False
    # refuse (invalid_request) a request whose task_type or reference kind is not in the
    # table of known values (imagejury.judges.taxonomy); off: reported and warned about
    strict: bool = False
    batch_size: int = Field(16, ge=1)
    # decode JPEGs at reduced size when no judge needs full resolution (draft mode);
    # None keeps full decode. Pixel judges then see a smaller image but item.size
    # still reports the original.
    draft_size: int | None = Field(None, ge=64)


class EvaluatorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: ModelsSection = Field(default_factory=ModelsSection)
    evaluation: EvaluationSection = Field(default_factory=EvaluationSection)
    media: MediaSection = Field(default_factory=MediaSection)
    judges: dict[str, dict[str, Any]] = Field(default_factory=dict)
    server: dict[str, Any] = Field(default_factory=dict)  # validated by the server module

    @classmethod
    def from_file(cls, path: str | Path | None = None) -> EvaluatorConfig:
        """Load ``path`` (or ``$IMAGEJURY_CONFIG``); no file means the defaults."""
        path = path or os.environ.get("IMAGEJURY_CONFIG")
        if not path:
            return cls()
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file not found: {p}")
        with p.open("rb") as fh:
            data = tomllib.load(fh)
        return cls.model_validate(data)

    def with_overrides(self, **models: Any) -> EvaluatorConfig:
        """A copy with the given ``[models]`` keys replaced (flags win over the file)."""
        changed = {k: v for k, v in models.items() if v is not None}
        # validated like the file is (model_copy would not): --device tpu or --threads -1 is a bad
        # flag (a pydantic ValidationError, a ValueError), not a model that fails to load later
        section = ModelsSection.model_validate({**self.models.model_dump(), **changed})
        return self.model_copy(update={"models": section})
