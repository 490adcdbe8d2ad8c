"""Small judges for testing the pipeline's plumbing (not shipped, not registered).

They exercise planning, batching, missing models and the shared feature cache with a
counting stand-in embedder, so the pipeline is tested apart from any real model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from imagejury.core.config import EvaluatorConfig
from imagejury.core.presets import PRESETS
from imagejury.judges.base import Judge
from imagejury.judges.registry import JudgeRegistry
from imagejury.judges.types import GateFailure, JudgeIssue, JudgeItem, JudgeResult
from imagejury.models.errors import ModelUnavailableError


class CountingEmbedder:
    """Counts image rows sent through the 'image tower' (a colour histogram)."""

    key = "counting-embedder"
    embed_dim = 3
    context_length = 77
    logit_scale = 100.0

    def __init__(self) -> None:
        self.image_rows = 0
        self.calls = 0

    def encode_images(self, images):
        self.calls += 1
        self.image_rows += len(images)
        out = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32).mean(axis=(0, 1)) + 1e-3 for im in images])
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def encode_texts(self, texts):
        return np.ones((len(texts), 3), dtype=np.float32) / np.sqrt(3)


EMBEDDER = CountingEmbedder()


class _EmbeddingJudge(Judge):
    category = "test"
    calls: list[int]

    def judge(self, batch: Sequence[JudgeItem]) -> list[JudgeResult]:
        type(self).calls.append(len(batch))
        if not batch:
            return []
        emb = batch[0].features.image_embeddings(EMBEDDER, [i.image_key for i in batch], [i.image for i in batch])
        return [
            self.result(passed=bool(e[0] > 0.5), confidence=0.9, reasoning=f"red share {e[0]:.2f}", score=float(e[0]))
            for e in emb
        ]


class RednessJudge(_EmbeddingJudge):
    name = "t_redness"
    calls: list[int] = []


class RednessTwinJudge(_EmbeddingJudge):
    name = "t_redness_twin"
    calls: list[int] = []


class PromptOnlyJudge(Judge):
    name = "t_prompt_only"
    category = "test"
    requires = frozenset({"prompt"})

    def judge(self, batch):
        return [self.result(passed=True, confidence=0.8, reasoning="prompt present") for _ in batch]


class MissingModelJudge(Judge):
    name = "t_missing_model"
    category = "test"

    def warmup(self) -> None:
        raise ModelUnavailableError("ViT-H-14:laion2b", "the test's empty cache", "pass --clip PATH")

    def judge(self, batch):  # pragma: no cover - never reached: warmup fails
        raise AssertionError("must not run")


class ExplodingJudge(Judge):
    """Raises on items whose prompt says 'explode' — to test isolation of a bad item."""

    name = "t_exploding"
    category = "test"

    def judge(self, batch):
        if any((i.prompt or "") == "explode" for i in batch):
            raise RuntimeError("boom")
        return [self.result(passed=True, confidence=0.7, reasoning="fine") for _ in batch]


class GateJudge(Judge):
    name = "t_gate"
    category = "safety"

    def judge(self, batch):
        out = []
        for i in batch:
            hit = (i.prompt or "") == "gate"
            out.append(
                self.result(
                    passed=not hit,
                    confidence=0.9,
                    reasoning="gated" if hit else "clear",
                    issues=[JudgeIssue("unsafe", "gate hit")] if hit else [],
                    gate_failures=[GateFailure("image", "t_gate", "test gate hit")] if hit else [],
                )
            )
        return out


ALL = [RednessJudge, RednessTwinJudge, PromptOnlyJudge, MissingModelJudge, ExplodingJudge, GateJudge]


def make_registry(*classes: type[Judge]) -> JudgeRegistry:
    reg = JudgeRegistry()
    reg._entries = {}  # no entry points: only what the test registers
    for cls in classes or ALL:
        reg.register(cls)
    return reg


def make_config(enabled: Sequence[str], allow_missing: bool = False, batch_size: int = 16) -> EvaluatorConfig:
    """Built-in judges off, the named test judges on (as a third party would enable them)."""
    builtin = set().union(*(p.weights for p in PRESETS.values()))
    judges = {n: {"enabled": False} for n in builtin}
    judges.update({n: {"enabled": True} for n in enabled})
    return EvaluatorConfig.model_validate(
        {"judges": judges, "evaluation": {"allow_missing_models": allow_missing, "batch_size": batch_size}}
    )
