"""Model backends behind small interfaces, loaded once per process by one registry.

This package imports nothing else of imagejury but ``imagejury.errors``: judges and the
core depend on it, never the other way round. Sub-packages: ``clip`` (image–text
embedders), ``face`` (face analyzers), ``quality`` (no-reference quality scorers).
Names below load on first use, so ``import imagejury.models.settings`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ModelError": "imagejury.models.errors",
    "ModelUnavailableError": "imagejury.models.errors",
    "Face": "imagejury.models.interfaces",
    "FaceAnalyzer": "imagejury.models.interfaces",
    "ImageTextEmbedder": "imagejury.models.interfaces",
    "QualityScore": "imagejury.models.interfaces",
    "QualityScorer": "imagejury.models.interfaces",
    "ModelRegistry": "imagejury.models.registry",
    "default_registry": "imagejury.models.registry",
    "ModelSettings": "imagejury.models.settings",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'imagejury.models' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
