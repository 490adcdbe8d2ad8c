"""imagejury's evaluator: schema, media intake, planning, pipeline, verdict, CLI."""

from __future__ import annotations

from typing import Any

__all__ = ["Evaluator", "EvaluatorConfig"]


def __getattr__(name: str) -> Any:  # lazy: `import evaluator` stays cheap
    if name == "Evaluator":
        from evaluator.pipeline import Evaluator

        return Evaluator
    if name == "EvaluatorConfig":
        from evaluator.config import EvaluatorConfig

        return EvaluatorConfig
    raise AttributeError(name)
