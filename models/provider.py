"""Turn ModelSettings into loaded models through the shared registry.

Judges ask a ``ModelSet`` for "the CLIP", "the face analyzer" or a quality scorer by
name; the registry makes sure each is loaded once per process. Backend modules are
imported lazily so that a missing optional library costs nothing until it is needed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from imagejury.models.errors import ModelUnavailableError
from imagejury.models.interfaces import FaceAnalyzer, ImageTextEmbedder, QualityScorer
from imagejury.models.registry import ModelRegistry, default_registry
from imagejury.models.settings import ModelSettings

log = logging.getLogger(__name__)

DEFAULT_CLIP = {"quick": "ViT-B-32:openai", "standard": "ViT-L-14:openai"}


@dataclass
class Availability:
    kind: str
    name: str
    available: bool
    where: str


class ModelSet:
    """The models one evaluator uses, resolved from settings, shared via the registry."""

    def __init__(
        self,
        settings: ModelSettings | None = None,
        registry: ModelRegistry | None = None,
        job_class: str = "standard",
    ) -> None:
        self.settings = settings or ModelSettings()
        self.registry = registry or default_registry()
        self.job_class = job_class

    # -- sources -----------------------------------------------------------
    @property
    def clip_source(self) -> str:
        return self.settings.clip or DEFAULT_CLIP.get(self.job_class, DEFAULT_CLIP["standard"])

    @property
    def dtype(self) -> str:
        if self.settings.dtype != "auto":
            return self.settings.dtype
        return "float16" if self.settings.resolved_device.startswith("cuda") else "float32"

    # -- models ------------------------------------------------------------
    def embedder(self) -> ImageTextEmbedder:
        from imagejury.models.clip import load_embedder

        source = self.clip_source
        return self.registry.get(
            "image_text",
            source,
            lambda: load_embedder(source, device=self.settings.resolved_device, dtype=self.dtype),
            device=self.settings.resolved_device,
            dtype=self.dtype,
        )

    def face_analyzer(self) -> FaceAnalyzer:
        backend = self.settings.face_backend
        if backend == "dlib":
            from imagejury.models.face.dlib_backend import load_dlib

            # [models.extra.dlib] in the config: cnn, landmarks68, upsample, max_side
            options = dict(self.settings.extra.get("dlib", {}))
            return self.registry.get(
                "face",
                "dlib",
                lambda: load_dlib(device=self.settings.resolved_device, **options),
                weights=str(sorted(options.items())),
                device=self.settings.resolved_device,
            )
        if backend == "insightface":
            from imagejury.models.face.insightface_backend import load_insightface

            pack = self.settings.face_model
            if not pack:
                raise ModelUnavailableError(
                    "insightface",
                    "no model-pack folder was configured",
                    "pass --face-model PATH to a folder such as ~/.insightface/models/buffalo_l "
                    "(imagejury never downloads insightface packs), or use --face-backend dlib",
                )
            # [models.extra.insightface] in the config: det_size, det_thresh,
            # same_person_threshold, threads, rec_batch_size
            options = dict(self.settings.extra.get("insightface", {}))
            return self.registry.get(
                "face",
                "insightface",
                lambda: load_insightface(pack, device=self.settings.resolved_device, **options),
                weights=f"{pack}|{sorted(options.items())}",
                device=self.settings.resolved_device,
            )
        raise ValueError(f"unknown face backend '{backend}' (choose dlib or insightface)")

    def quality_scorer(self, name: str) -> QualityScorer:
        from imagejury.models.quality import create_scorer

        # the pixel measures run on the CLIP's device (one torch implementation)
        device = self.settings.resolved_device
        return self.registry.get("quality", name, lambda: create_scorer(name, device=device), device=device)

    # -- reporting -----------------------------------------------------------
    def availability(self) -> list[Availability]:
        """Try to resolve every configured model without loading heavy weights."""
        from imagejury.models.clip.sources import locate_embedder

        rows: list[Availability] = []
        for job_class in ("quick", "standard"):
            source = self.settings.clip or DEFAULT_CLIP[job_class]
            try:
                where = locate_embedder(source)
                rows.append(Availability("image_text", f"{source} ({job_class})", True, where))
            except ModelUnavailableError as exc:
                rows.append(Availability("image_text", f"{source} ({job_class})", False, str(exc)))
        try:
            from imagejury.models.face.dlib_backend import locate_dlib

            rows.append(Availability("face", "dlib", True, locate_dlib()))
        except ModelUnavailableError as exc:
            rows.append(Availability("face", "dlib", False, str(exc)))
        try:
            from imagejury.models.face.insightface_backend import locate_insightface

            rows.append(Availability("face", "insightface", True, locate_insightface(self.settings.face_model)))
        except ModelUnavailableError as exc:
            rows.append(Availability("face", "insightface", False, str(exc)))
        from imagejury.models.quality import locate_scorers

        for name, ok, where in locate_scorers():
            rows.append(Availability("quality", name, ok, where))
        return rows
