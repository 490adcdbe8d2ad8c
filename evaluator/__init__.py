"""imagejury: evaluate AI-generated images with a jury of open vision models.

The public surface is small and stable::

    from imagejury import Evaluator, EvaluatorConfig

    ev = Evaluator(EvaluatorConfig())
    result = ev.evaluate({"generated_image_url": "photo.jpg", "generation_prompt": "a red hat"})

Sub-packages follow the flow and the extras: ``imagejury.core`` (schema, intake,
presets, planning, pipeline, verdict), ``imagejury.judges`` (the judge plugins and their
base class ``imagejury.judges.Judge``), ``imagejury.models`` (CLIP, face and quality
backends), ``imagejury.service`` (``imagejury serve``) and ``imagejury.batch``
(``imagejury batch``). Importing ``imagejury`` is cheap: the heavy parts load on first use.
"""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING, Any

from imagejury.errors import FailureCode, ImagejuryError

if TYPE_CHECKING:
    from imagejury.core.config import EvaluatorConfig
    from imagejury.core.pipeline import Evaluator
    from imagejury.core.schema import Evaluation, EvaluationRequest

try:
    __version__ = metadata.version("imagejury")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0+unknown"

__all__ = [
    "Evaluation",
    "EvaluationRequest",
    "Evaluator",
    "EvaluatorConfig",
    "FailureCode",
    "ImagejuryError",
    "__version__",
]

_LAZY = {
    "Evaluator": "imagejury.core.pipeline",
    "EvaluatorConfig": "imagejury.core.config",
    "Evaluation": "imagejury.core.schema",
    "EvaluationRequest": "imagejury.core.schema",
}


def __getattr__(name: str) -> Any:  # lazy: `import imagejury` stays cheap
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'imagejury' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
