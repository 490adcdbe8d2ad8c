"""The three kinds of model the judges use, as small structural interfaces."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image


@runtime_checkable
class ImageTextEmbedder(Protocol):
    """A CLIP-like model: images and texts into one L2-normalised space."""

    key: str  # stable identity of the loaded model (source + device + dtype)
    embed_dim: int
    context_length: int  # max text tokens; longer texts are chunked (see backend)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, D) float32, rows L2-normalised."""

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(M, D) float32, rows L2-normalised; cached by text."""

    @property
    def logit_scale(self) -> float:
        """The model's learned temperature (exp'd), for softmax over cosines."""


@dataclass
class Face:
    """One detected face, in the pixel coordinates of the analysed image."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    score: float  # detection confidence (backend's scale, higher is surer)
    keypoints: np.ndarray  # (5, 2): left eye, right eye, nose, left mouth, right mouth
    embedding: np.ndarray  # (D,) L2-normalised
    landmarks: np.ndarray | None = None  # (68, 2) where the backend gives them
    extra: dict = field(default_factory=dict)

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)


@runtime_checkable
class FaceAnalyzer(Protocol):
    """Face detection + embedding with a documented same-person threshold."""

    key: str
    name: str
    # similarity(a, b) >= same_person_threshold means "same person"
    same_person_threshold: float
    threshold_source: str

    def analyze(self, images: Sequence[Image.Image]) -> list[list[Face]]:
        """Faces per image, largest first."""

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        """Similarity on the backend's own scale; higher is more alike."""


@dataclass(frozen=True)
class QualityScore:
    """A no-reference quality measurement with its direction and range."""

    name: str
    value: float
    higher_is_better: bool
    range: tuple[float, float]
    details: dict = field(default_factory=dict)


@runtime_checkable
class QualityScorer(Protocol):
    name: str
    higher_is_better: bool
    range: tuple[float, float]

    def score(self, images: Sequence[Image.Image]) -> list[QualityScore]:
        """One score per image, same order."""
