"""Evaluator configuration: one object from defaults, a TOML file and command-line flags.

The file (``--config PATH`` or ``$IMAGEJURY_CONFIG``) has sections ``[models]``,
``[evaluation]``, ``[media]``, ``[judges.NAME]`` and, for the service, ``[server]``;
each section is validated by the pydantic model that owns it, so a typo is an error.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from imagejury.errors import ConfigError
from imagejury.models.settings import DEVICE_HELP, ModelSettings


class ModelsSection(BaseModel):
    """``[models]``: which CLIP, face backend and device the judges use."""

    model_config = ConfigDict(extra="forbid")

    clip: str | None = Field(
        None, description="CLIP source; None = job-class default (quick ViT-B-32, standard ViT-L-14)"
    )
    face_backend: str = Field("dlib", pattern="^(dlib|insightface)$", description="dlib or insightface")
    face_model: str | None = None
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description=DEVICE_HELP)
    dtype: str = Field(
        "auto", pattern="^(auto|float32|float16|bfloat16)$", description="auto, float32, float16 or bfloat16"
    )
    torch_threads: int | None = Field(None, ge=1)
    aesthetic_head: str | None = None
    # backend options, e.g. [models.extra.insightface] det_size = 640, det_thresh = 0.5
    extra: dict[str, Any] = Field(default_factory=dict)

    def settings(self) -> ModelSettings:
        return ModelSettings(**self.model_dump())


class MediaSection(BaseModel):
    """``[media]``: limits on the images an evaluation accepts (checked before decoding)."""

    model_config = ConfigDict(extra="forbid")

    max_pixels: int = Field(40_000_000, ge=1)
    max_bytes: int = Field(25 * 1024 * 1024, ge=1)
    fetch_timeout_s: float = Field(10.0, gt=0)
    allow_loopback_urls: bool = False


class EvaluationSection(BaseModel):
    """``[evaluation]``: how judging runs (missing models, batch size, draft decoding)."""

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
    """Everything an ``Evaluator`` is configured with, validated (an unknown key is an error).

    Sections: ``models`` (``ModelsSection``: clip, face_backend, face_model, device, dtype,
    torch_threads, aesthetic_head, extra), ``evaluation`` (``EvaluationSection``:
    allow_missing_models, batch_size, draft_size), ``media`` (``MediaSection``: pixel and
    byte caps, fetch timeout), ``judges`` (``{"NAME": {"enabled": false, "weight": 2.0,
    ...}}``: each judge validates its own options) and ``server`` (read by ``imagejury
    serve``).

    Build it from a dict (``EvaluatorConfig.model_validate({...})``), keyword arguments, or
    a TOML file (``EvaluatorConfig.from_file(path)``); see ``imagejury.example.toml``.
    """

    model_config = ConfigDict(extra="forbid")

    models: ModelsSection = Field(default_factory=ModelsSection)
    evaluation: EvaluationSection = Field(default_factory=EvaluationSection)
    media: MediaSection = Field(default_factory=MediaSection)
    judges: dict[str, dict[str, Any]] = Field(default_factory=dict)
    server: dict[str, Any] = Field(default_factory=dict)  # validated by the server module

    @classmethod
    def from_file(cls, path: str | Path | None = None) -> EvaluatorConfig:
        """Load ``path`` (or ``$IMAGEJURY_CONFIG``); no file means the defaults.

        Any problem is one ``ConfigError`` sentence naming the file and the key."""
        path = path or os.environ.get("IMAGEJURY_CONFIG")
        if not path:
            return cls()
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            with p.open("rb") as fh:
                data = tomllib.load(fh)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p} is not valid TOML: {exc}") from None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(describe_config_error(exc, cls, str(p))) from None

    def with_overrides(self, **models: Any) -> EvaluatorConfig:
        """A copy with the given ``[models]`` keys replaced (flags win over the file)."""
        changed = {k: v for k, v in models.items() if v is not None}
        # validated like the file is (model_copy would not): --device tpu or --threads -1 is a bad
        # flag, not a model that fails to load later
        try:
            section = ModelsSection.model_validate({**self.models.model_dump(), **changed})
        except ValidationError as exc:
            raise ConfigError(
                describe_config_error(exc, ModelsSection, "the command line", section="models", flags=True)
            ) from None
        return self.model_copy(update={"models": section})


def describe_config_error(
    exc: ValidationError, model: type[BaseModel], where: str, section: str = "", flags: bool = False
) -> str:
    """One plain sentence per problem: the file (or flags), the ``[section] key``, what is
    wrong and, for an unknown key, the closest known one. Never the offending value: a
    config may hold tokens and secrets."""
    parts = []
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ())]
        if section:
            loc = [section, *loc]
        key = f"--{loc[-1].replace('_', '-')}" if flags else _key_name(loc)
        if err.get("type") == "extra_forbidden":
            hint = _did_you_mean(model, loc[1:] if section else loc)
            parts.append(f"{where}: unknown key {key}{hint}")
        else:
            parts.append(f"{where}: {key}: {_what_is_wrong(model, loc[1:] if section else loc, err)}")
    return "; ".join(parts)


def _key_name(loc: list[str]) -> str:
    if len(loc) <= 1:
        return f"'{loc[0]}'" if loc else "(top level)"
    return f"'{loc[-1]}' in [{'.'.join(loc[:-1])}]"


def _did_you_mean(model: type[BaseModel], loc: list[str]) -> str:
    """The closest known key of the section that holds ``loc[-1]``."""
    fields = _section_fields(model, loc[:-1])
    close = difflib.get_close_matches(loc[-1], list(fields or {}), n=1, cutoff=0.6) if loc else []
    return f" (did you mean '{close[0]}'?)" if close else ""


def _what_is_wrong(model: type[BaseModel], loc: list[str], err: Any) -> str:
    """pydantic's message, or the field's own description of what it accepts when the
    value did not match its pattern (a regex says nothing to a user)."""
    if err.get("type") == "string_pattern_mismatch":
        field = _field(model, loc)
        if field is not None and field.description:
            return f"must be {field.description}"
    return str(err.get("msg", "invalid value"))


def _field(model: type[BaseModel], loc: list[str]) -> Any:
    return (_section_fields(model, loc[:-1]) or {}).get(loc[-1]) if loc else None


def _section_fields(model: type[BaseModel], path: list[str]) -> dict[str, Any] | None:
    """The fields of the (nested) section at ``path``; None when it is not a section."""
    fields: dict[str, Any] = dict(model.model_fields)
    for part in path:
        annotation = fields[part].annotation if part in fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        fields = dict(annotation.model_fields)
    return fields
