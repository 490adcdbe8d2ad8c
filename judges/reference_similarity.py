"""reference_similarity: does the image carry what the non-identity references show?

For each reference of kind ``garment``, ``product``, ``object``, ``style``,
``background`` (any other kind uses ``default``): the cosine between the generated
image's and the reference's CLIP image embeddings, against a per-kind threshold; when
the reference has a ``description``, also the cosine between the generated image and
that text. Every reference must pass. All embeddings come from the shared feature
cache, so the generated image runs through CLIP once for every CLIP judge, and each
reference once per batch.

Raw CLIP cosines are model-specific, so thresholds are per kind *and* per model
profile (matched against the embedder's key). The built-in profile is for OpenAI
ViT-B-32 / ViT-L-14. It was **not measured here** (those weights cannot be fetched on
the build machines): it is set from commonly reported ranges of OpenAI CLIP image–image
cosines — near-duplicates ≥ 0.95 (the dedup cut used by LAION/SemDeDup-style
pipelines), the same object or garment in a new photo ~0.8–0.9, same category
~0.65–0.8, unrelated photos ~0.3–0.6 — and image–text cosines of ~0.25–0.35 for
matching captions vs ~0.1–0.2 for wrong ones (CLIPScore, Hessel et al. 2021, uses
2.5·max(cos, 0) with typical matched scores 0.7–0.8). Calibrate with
``benchmarks/`` on your own references before relying on them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image
from pydantic import Field

from imagejury.judges.base import Judge, JudgeConfig, confidence_from_margin
from imagejury.judges.features import content_key, group_by_cache
from imagejury.judges.taxonomy import IDENTITY_KIND, KIND_ASPECT, REFERENCE_KINDS, canonical_reference_kind
from imagejury.judges.types import JudgeIssue, JudgeItem, JudgeResult, Measurement, Reference

log = logging.getLogger(__name__)

# the non-identity kinds of taxonomy.REFERENCE_KINDS (aliases resolve to these)
KNOWN_KINDS = tuple(k for k in REFERENCE_KINDS if k != IDENTITY_KIND)

DEFAULT_THRESHOLDS: dict[str, float] = {
    # the same physical item must come back: close to "same object, new photo" (~0.8-0.9)
    "garment": 0.80,
    "product": 0.82,
    "object": 0.78,
    # style and backgrounds share look and layout, not identity: "same category" band
    "style": 0.70,
    "background": 0.72,
    "default": 0.75,
}
DEFAULT_TEXT_THRESHOLD = 0.22  # between wrong (~0.1-0.2) and matching (~0.25-0.35) captions


class ReferenceSimilarityConfig(JudgeConfig):
    thresholds: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_THRESHOLDS),
        description=(
            "image-image cosine thresholds per reference kind ('default' for other kinds) used when no "
            "model_profiles entry matches. Set for OpenAI ViT-B-32/ViT-L-14 from published ranges, not measured "
            "here (see the module docstring)"
        ),
    )
    text_threshold: float = Field(
        default=DEFAULT_TEXT_THRESHOLD,
        description="image-to-description cosine threshold (OpenAI CLIP range; not measured here)",
    )
    model_profiles: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description=(
            "per-model overrides: {substring of the embedder key: {kind: threshold, ..., 'text': threshold}}; "
            "the first substring found in the key wins, missing kinds fall back to 'thresholds'"
        ),
    )
    confidence_scale: float = Field(
        default=0.08,
        gt=0,
        description="cosine margin at which confidence reaches ~0.88 (about a third of the same/unrelated gap)",
    )


def reference_key(ref: Reference) -> str:
    """The reference's cache key, or a content hash when none was given."""
    return content_key(ref.image, ref.key or "")


class ReferenceSimilarityJudge(Judge):
    name = "reference_similarity"
    category = "reference"
    description = "the image matches its garment/product/object/style/background references"
    default_weight = 1.5
    version = "1"
    requires = frozenset({"other_reference"})
    models = frozenset({"image_text"})
    Config = ReferenceSimilarityConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._embedder_obj: Any = None

    def warmup(self) -> None:
        self._embedder()

    def _embedder(self) -> Any:
        if self._embedder_obj is None:
            self._embedder_obj = self.model_set.embedder()
        return self._embedder_obj

    def profile(self, embedder_key: str) -> tuple[dict[str, float], float, str]:
        """(kind thresholds, text threshold, profile name) for this model."""
        cfg: ReferenceSimilarityConfig = self.config  # type: ignore[assignment]
        for pattern, prof in cfg.model_profiles.items():
            if pattern in embedder_key:
                merged = {**cfg.thresholds, **{k: v for k, v in prof.items() if k != "text"}}
                return merged, float(prof.get("text", cfg.text_threshold)), f"profile '{pattern}'"
        return dict(cfg.thresholds), cfg.text_threshold, "default profile (OpenAI ViT-B-32/ViT-L-14 ranges)"

    # -------------------------------------------------------------------------------
    def judge(self, batch: Sequence[JudgeItem]) -> list[JudgeResult]:
        if not batch:
            return []
        embedder = self._embedder()
        out: list[JudgeResult | None] = [None] * len(batch)
        for cache, idx in group_by_cache([item.features for item in batch]):
            keys: list[str] = []
            images: list[Image.Image] = []
            texts: list[str] = []
            for i in idx:
                item = batch[i]
                keys.append(item.image_key)
                images.append(item.image)
                for ref in self._used_refs(item)[0]:
                    keys.append(reference_key(ref))
                    images.append(ref.image)
                    if ref.description and ref.description.strip():
                        texts.append(ref.description.strip())
            # one batched forward pass for every image of this cache that is not cached yet
            emb = cache.image_embeddings(embedder, keys, images)
            by_key = {k: emb[n] for n, k in enumerate(keys)}
            text_emb = cache.text_embeddings(embedder, texts) if texts else np.zeros((0, 0))
            by_text = {t: text_emb[n] for n, t in enumerate(texts)}
            for i in idx:
                out[i] = self._judge_one(batch[i], embedder, by_key, by_text)
        return out  # type: ignore[return-value]

    @staticmethod
    def _used_refs(item: JudgeItem) -> tuple[list[Reference], list[Reference]]:
        ignore = {w.lower().strip() for w in item.directives.ignore}
        used: list[Reference] = []
        skipped: list[Reference] = []
        for ref in item.other_references:
            kind = canonical_reference_kind(ref.kind)
            # "ignore the background" drops background references; "ignore the clothing" garments
            (skipped if KIND_ASPECT.get(kind, kind) in ignore or kind in ignore else used).append(ref)
        return used, skipped

    def _judge_one(
        self, item: JudgeItem, embedder: Any, by_key: dict[str, np.ndarray], by_text: dict[str, np.ndarray]
    ) -> JudgeResult:
        cfg: ReferenceSimilarityConfig = self.config  # type: ignore[assignment]
        thresholds, text_thr, profile_name = self.profile(str(getattr(embedder, "key", "")))
        used, skipped = self._used_refs(item)
        evidence = [f"model {getattr(embedder, 'key', '?')}; thresholds: {profile_name}"]
        if skipped:
            evidence.append("ignored by the rubric: " + ", ".join(f"{r.kind} reference" for r in skipped))
        if not used:
            return self.result(
                passed=True,
                confidence=0.5,
                reasoning="every reference is of a kind the rubric asked to ignore"
                if skipped
                else "not applicable: no garment/product/object/style/background reference",
                evidence=evidence,
            )

        gen = by_key[item.image_key]
        subs: dict[str, dict[str, Any]] = {}
        issues: list[JudgeIssue] = []
        margins: list[float] = []
        measurements: list[Measurement] = []
        model = str(getattr(embedder, "key", ""))
        worst: tuple[float, float] | None = None  # (cosine, threshold) of the weakest image match
        # number references by their place in reference_images (1-based), as the identity judge does
        positions = [next(k for k, r in enumerate(item.references, start=1) if r is ref) for ref in used]
        for n, ref in zip(positions, used):
            kind = canonical_reference_kind(ref.kind)
            thr = float(thresholds.get(kind, thresholds.get("default", DEFAULT_THRESHOLDS["default"])))
            cos = float(np.dot(gen, by_key[reference_key(ref)]))
            ok = cos >= thr
            margins.append(cos - thr)
            measurements.append(
                Measurement(f"reference_{n}_{kind}", cos, thr, True, "CLIP image-image cosine", model=model)
            )
            label = f"{kind} reference {n}"
            subs[f"reference_{n}_{kind}"] = {
                "text": f"looks like the {label} (CLIP image cosine ≥ {thr:g})",
                "passed": ok,
                "score": round(cos, 4),
                "threshold": thr,
            }
            evidence.append(f"{label}: image cosine {cos:.3f} (threshold {thr:g})")
            if worst is None or cos - thr < worst[0] - worst[1]:
                worst = (cos, thr)
            if not ok:
                issues.append(
                    JudgeIssue(
                        "reference_mismatch",
                        f"the image does not match the {label}: cosine {cos:.3f} < {thr:g}",
                        severity=round(min(1.0, 0.5 + (thr - cos) / max(cfg.confidence_scale, 1e-6) * 0.25), 3),
                        target=ref.description.strip() if ref.description else None,
                    )
                )
            desc = (ref.description or "").strip()
            if desc:
                tcos = float(np.dot(gen, by_text[desc]))
                tok = tcos >= text_thr
                margins.append(tcos - text_thr)
                measurements.append(
                    Measurement(
                        f"reference_{n}_description", tcos, text_thr, True, "CLIP image-text cosine", model=model
                    )
                )
                subs[f"reference_{n}_description"] = {
                    "text": f"shows the {label}'s description '{desc}' (CLIP text cosine ≥ {text_thr:g})",
                    "passed": tok,
                    "score": round(tcos, 4),
                    "threshold": text_thr,
                }
                evidence.append(f"{label} description '{desc}': text cosine {tcos:.3f} (threshold {text_thr:g})")
                if not tok:
                    issues.append(
                        JudgeIssue(
                            "description_mismatch",
                            f"the image does not show the {label}'s description '{desc}': cosine {tcos:.3f} < {text_thr:g}",
                            severity=0.8,
                            target=desc,
                        )
                    )

        passed = not issues
        if passed:
            decisive = min(margins)
            reasoning = f"matches all {len(used)} reference(s); weakest image cosine {worst[0]:.3f} vs {worst[1]:g}"  # type: ignore[index]
            strengths = [f"faithful to the {r.kind} reference" for r in used]
        else:
            decisive = max(-m for m in margins if m < 0)
            reasoning = "; ".join(i.detail for i in issues)
            strengths = []
        return self.result(
            passed=passed,
            confidence=confidence_from_margin(decisive, cfg.confidence_scale),
            reasoning=reasoning,
            score=round(worst[0], 4) if worst else None,
            threshold=worst[1] if worst else None,
            evidence=evidence,
            sub_point_results=subs,
            sub_points_evaluated=len(subs),
            issues=issues,
            strengths=strengths,
            measurements=measurements,
            decision_rule="all",
        )
