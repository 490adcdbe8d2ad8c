"""Judge plugins. Imports only ``models``; knows nothing of HTTP, SQL or the API JSON."""

from imagejury.judges.base import Judge, JudgeConfig, confidence_from_margin
from imagejury.judges.registry import JudgeRegistry, JudgeRegistryError, judge_registry
from imagejury.judges.types import Directives, GateFailure, JudgeIssue, JudgeItem, JudgeResult, Reference

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
