"""Judge plugins. Imports only ``models``; knows nothing of HTTP, SQL or the API JSON.

Plugins subclass ``imagejury.judges.Judge`` and register under the entry-point group
``imagejury.judges``. The names below load on first use, so importing a light module of
this package (``imagejury.judges.taxonomy`` for ``--help``) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imagejury.judges.base import Judge, JudgeConfig, confidence_from_margin
    from imagejury.judges.registry import JudgeRegistry, JudgeRegistryError, judge_registry
    from imagejury.judges.types import Directives, GateFailure, JudgeIssue, JudgeItem, JudgeResult, Reference

_LAZY = {
    "Judge": "imagejury.judges.base",
    "JudgeConfig": "imagejury.judges.base",
    "confidence_from_margin": "imagejury.judges.base",
    "JudgeRegistry": "imagejury.judges.registry",
    "JudgeRegistryError": "imagejury.judges.registry",
    "judge_registry": "imagejury.judges.registry",
    "Directives": "imagejury.judges.types",
    "GateFailure": "imagejury.judges.types",
    "JudgeIssue": "imagejury.judges.types",
    "JudgeItem": "imagejury.judges.types",
    "JudgeResult": "imagejury.judges.types",
    "Reference": "imagejury.judges.types",
}
__all__ = [
    "Directives",
    "GateFailure",
    "Judge",
    "JudgeConfig",
    "JudgeIssue",
    "JudgeItem",
    "JudgeRegistry",
    "JudgeRegistryError",
    "JudgeResult",
    "Reference",
    "confidence_from_margin",
    "judge_registry",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'imagejury.judges' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
