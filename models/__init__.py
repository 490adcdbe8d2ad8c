"""Model backends behind small interfaces, loaded once per process by one registry.

This package imports nothing else of imagejury: judges and the evaluator depend on it,
never the other way round.
"""

from imagejury.models.errors import ModelError, ModelUnavailableError
from imagejury.models.interfaces import Face, FaceAnalyzer, ImageTextEmbedder, QualityScore, QualityScorer
from imagejury.models.registry import ModelRegistry, default_registry
from imagejury.models.settings import ModelSettings

__all__ = [
    "Face",
    "FaceAnalyzer",
    "ImageTextEmbedder",
    "ModelError",
    "ModelRegistry",
    "ModelSettings",
    "ModelUnavailableError",
    "QualityScore",
    "QualityScorer",
    "default_registry",
]
