"""Model backends behind small interfaces, loaded once per process by one registry.

This package imports nothing else of imagejury: judges and the evaluator depend on it,
never the other way round.
"""

from models.errors import ModelError, ModelUnavailableError
from models.interfaces import Face, FaceAnalyzer, ImageTextEmbedder, QualityScore, QualityScorer
from models.registry import ModelRegistry, default_registry
from models.settings import ModelSettings

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
