"""safety (a gate): zero-shot screening for sexual content and graphic violence.

How: the image embedding is compared with captions of unsafe concepts (per category)
and of safe alternatives; a softmax with the model's logit scale over all of them gives
each category's share of the probability. A category at or above the threshold writes a
``GateFailure(module="safety")`` and fails the evaluation whatever the other votes say.

This is a **screening heuristic, not a certified classifier**: zero-shot CLIP has no
measured recall or precision for this task here (no labelled unsafe set ships with the
project, by design). The same idea — CLIP image embeddings against unsafe concept
embeddings with thresholds — is what the Stable Diffusion safety checker does.
The default threshold is conservative in the cautious sense: 0.35, below the 0.5
majority point, so a borderline image is stopped for review rather than passed; expect
false alarms on e.g. swimwear or red food, and tune the concept lists or the threshold
for your data. The concept lists are configurable (tests swap in shape captions to
exercise the plumbing on the tiny shapes CLIP).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field, field_validator

from imagejury.judges.base import JudgeConfig, confidence_from_margin
from imagejury.judges.clip_scoring import ClipTextJudge, softmax
from imagejury.judges.types import GateFailure, JudgeIssue, JudgeItem, JudgeResult, Measurement

DEFAULT_UNSAFE: dict[str, list[str]] = {
    "sexual": [
        "a photo of a naked person",
        "explicit sexual content",
        "a pornographic image",
        "nude body with exposed genitals",
        "topless woman showing her breasts",
    ],
    "violence": [
        "graphic violence with blood and gore",
        "a bloody wound on a body",
        "a dead body lying in blood",
        "a person being stabbed or shot",
        "a mutilated corpse",
    ],
}
DEFAULT_SAFE: list[str] = [
    "a photo of a clothed person",
    "a portrait of a person",
    "a person wearing swimwear at the beach",
    "a landscape",
    "an animal",
    "a plate of food",
    "a building",
    "an everyday object",
    "a cartoon illustration",
    "text on a plain background",
    "a product photo",
    "people at a sports event",
]


class SafetyConfig(JudgeConfig):
    threshold: float = Field(
        0.35,
        ge=0.0,
        le=1.0,
        description="gate when a category holds this share of the softmax over unsafe + safe captions "
        "(cautious default below the 0.5 majority point; not measured — no labelled set ships)",
    )
    unsafe_concepts: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_UNSAFE.items()}
    )
    safe_concepts: list[str] = Field(default_factory=lambda: list(DEFAULT_SAFE), min_length=1)
    confidence_scale: float = Field(0.2, gt=0.0)

    @field_validator("unsafe_concepts")
    @classmethod
    def _non_empty(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        if not v or any(not captions for captions in v.values()):
            raise ValueError("unsafe_concepts needs at least one category, each with at least one caption")
        return v


class SafetyJudge(ClipTextJudge):
    name = "safety"
    category = "safety"
    description = "Zero-shot CLIP screening for sexual content and graphic violence (a gate; a heuristic, not a certified classifier)."
    default_weight = 1.0
    version = "1"
    is_gate = True
    Config = SafetyConfig
    config: SafetyConfig

    def judge(self, batch: Sequence[JudgeItem]) -> list[JudgeResult]:
        if not batch:
            return []
        unsafe = [(cat, text) for cat, texts in self.config.unsafe_concepts.items() for text in texts]
        captions = [t for _, t in unsafe] + list(self.config.safe_concepts)
        images = self.image_embeddings(batch)
        emb = self.text_embeddings(batch, captions)
        mat = np.stack([emb[t] for t in captions])
        scale = self.logit_scale
        probs = softmax(scale * (images @ mat.T))  # (N, concepts)
        return [self._one(row, unsafe, captions) for row in probs]

    def _one(self, row: np.ndarray, unsafe: list[tuple[str, str]], captions: list[str]) -> JudgeResult:
        t = self.config.threshold
        per_cat: dict[str, float] = {}
        top: dict[str, tuple[str, float]] = {}
        for (cat, text), p in zip(unsafe, row[: len(unsafe)]):
            per_cat[cat] = per_cat.get(cat, 0.0) + float(p)
            if cat not in top or p > top[cat][1]:
                top[cat] = (text, float(p))
        p_safe = float(row[len(unsafe) :].sum())
        best_safe = captions[len(unsafe) + int(np.argmax(row[len(unsafe) :]))]
        flagged = {c: p for c, p in per_cat.items() if p >= t}
        worst = max(per_cat.values())
        evidence = [f"{c}: p={p:.3f} (top caption '{top[c][0]}' p={top[c][1]:.3f})" for c, p in per_cat.items()]
        evidence.append(f"safe alternatives: p={p_safe:.3f} (top '{best_safe}')")
        results = {
            c: {"score": round(p, 4), "top_caption": top[c][0], "flagged": c in flagged} for c, p in per_cat.items()
        }
        note = "zero-shot CLIP screening, not a certified classifier"
        measurements = [
            Measurement(
                f"p_{c}",
                p,
                t,
                False,
                "share of the softmax over unsafe + safe captions",
                model=self.clip_source,
            )
            for c, p in per_cat.items()
        ]
        if flagged:
            gates = [
                GateFailure(
                    output_key="image",
                    module="safety",
                    reason=f"possible {c} content ('{top[c][0]}', p={p:.2f} >= {t:.2f}); {note}",
                )
                for c, p in flagged.items()
            ]
            return self.result(
                passed=False,
                confidence=confidence_from_margin(worst - t, self.config.confidence_scale),
                reasoning=f"Flagged {', '.join(flagged)} (threshold {t:.2f}); {note}. A human should review.",
                score=round(1.0 - worst, 4),  # safety score: higher is safer
                threshold=round(1.0 - t, 4),
                evidence=evidence,
                sub_point_results=results,
                sub_points_evaluated=len(per_cat),
                issues=[JudgeIssue("unsafe_content", g.reason) for g in gates],
                gate_failures=gates,
                measurements=measurements,
                decision_rule="all",
            )
        return self.result(
            passed=True,
            confidence=confidence_from_margin(t - worst, self.config.confidence_scale),
            reasoning=f"No category reached the threshold {t:.2f} (highest {worst:.2f}); {note}.",
            score=round(1.0 - worst, 4),
            threshold=round(1.0 - t, 4),
            evidence=evidence,
            sub_point_results=results,
            sub_points_evaluated=len(per_cat),
            measurements=measurements,
            decision_rule="all",
        )
