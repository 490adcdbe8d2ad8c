"""technical_quality: no-reference quality scores and pixel signals folded into one vote.

Measures (each a sub-point and a ``Measurement``): the pixel checks shared with
``technical_signals`` (edge sharpness, noise, JPEG blocking, banding, exposure; see
``technical_signals.pixel_checks``), resolution, and — on photo-like content only — the
natural-scene-statistics scores ``brisque_pypi`` (BRISQUE features with the ``brisque``
package's SVR, not LIVE's model), NIQE (the authors' release) and PIQE, plus CLIP-IQA
when a CLIP is configured (reported; it votes only when ``clip_iqa_votes``).

NSS scores model the statistics of camera photos: on flat illustrations, text, line art
and renders they call clean images degraded. The content check (share of textured
pixels, shown in the evidence) decides; on other content the scores are not computed
and the evidence says why.

Vote (``decision_rule`` "all" over the decisive measurements): every pixel check passes,
and the NSS vote passes — fewer than ``nss_failures_to_fail`` of the NSS scores above
their limits. The NSS vote is recorded as the measurement ``nss_failures`` (the count of
failing scores, passing at most ``nss_failures_to_fail - 1``); it is not decisive when a
named defect already fails the image or the rubric ignored one (the scores cannot say
which defect they see), and its failure is the issue ``artifacts``.

Provenance: photos astronaut, coffee, chelsea (calibration) with the graded distortions of
``tests/support/photos.py``; rocket and motorcycle held out. NSS limits are written beside
each field.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from imagejury.judges.base import Judge, confidence_from_margin
from imagejury.judges.features import group_by_cache
from imagejury.judges.technical_signals import (
    Check,
    PixelThresholds,
    content_note,
    fold_checks,
    ignored_defects,
    is_photo_like,
    pixel_checks,
    quality_scores,
    signal_reports,
)
from imagejury.judges.types import JudgeIssue, JudgeItem, JudgeResult, Measurement
from imagejury.models.errors import ModelUnavailableError
from imagejury.models.interfaces import QualityScore, QualityScorer
from imagejury.models.quality.clip_iqa import ClipIQAScorer
from imagejury.models.quality.signals import SignalReport

log = logging.getLogger(__name__)

NSS = ("brisque_pypi", "niqe", "piqe")
NSS_UNITS = {
    "brisque_pypi": "brisque-package SVR points (not LIVE BRISQUE)",
    "niqe": "NIQE (authors' parameters)",
    "piqe": "PIQE points",
}


class TechnicalQualityConfig(PixelThresholds):
    max_brisque_pypi: float = Field(
        default=55.0,
        description=(
            "brisque_pypi (BRISQUE features, SVR of the brisque PyPI package — not LIVE's model; lower is better) "
            "above which the image is degraded. Calibration photos 22-47; blur σ2 66-72; noise σ50 61-63; JPEG q4 66"
        ),
    )
    max_niqe: float = Field(
        default=6.0,
        description=(
            "NIQE (authors' release and parameters; lower is better) above which the image is degraded. "
            "Calibration photos 2.9-4.1; blur σ2 7.3-7.9; noise σ15 7.9-9.3; JPEG q10 5.8, q4 9.2"
        ),
    )
    max_piqe: float = Field(
        default=50.0,
        description=(
            "PIQE (lower is better) above which the image is degraded: the paper's 'poor' band starts at 51. "
            "Calibration photos 29-43; blur σ2 69-92; noise σ15 42-63; JPEG q10 62-73"
        ),
    )
    nss_failures_to_fail: int = Field(
        default=2,
        ge=1,
        description=(
            "how many of the NSS scores (plus CLIP-IQA when it votes) must fail for an 'artifacts' issue; "
            "2 of 3: no calibration photo fails even one, and one score alone is erratic on small images"
        ),
    )
    use_clip_iqa: bool = Field(default=True, description="compute CLIP-IQA when a CLIP model is available")
    min_clip_iqa: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description=(
            "CLIP-IQA ('Good photo.' vs 'Bad photo.', softmax with the model's logit scale) below which the model "
            "prefers 'Bad photo.'. 0.5 is the decision point of the prompt pair itself, not a calibration, so "
            "CLIP-IQA is reported but does not vote unless clip_iqa_votes is set"
        ),
    )
    clip_iqa_votes: bool = Field(default=False, description="count a failing CLIP-IQA towards nss_failures_to_fail")
    min_short_side: int = Field(
        default=256,
        ge=1,
        description="shorter side (original size) below which the image is low-resolution; chelsea (300) must pass",
    )
    confidence_scale: float = Field(
        default=0.5,
        gt=0,
        description="relative margin from a threshold at which confidence reaches ~0.88",
    )


class TechnicalQualityJudge(Judge):
    name = "technical_quality"
    category = "quality"
    description = "no-reference image quality: pixel checks, and NSS scores (brisque_pypi, NIQE, PIQE) on photos"
    default_weight = 1.5
    version = "2"
    requires = frozenset()
    models = frozenset({"quality:brisque_pypi", "quality:niqe", "quality:piqe"})
    Config = TechnicalQualityConfig

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._scorers: dict[str, QualityScorer] = {}

    def warmup(self) -> None:
        self._nss_scorers()
        self._embedder()

    def _nss_scorers(self) -> dict[str, QualityScorer]:
        if not self._scorers:
            self._scorers = {n: self.model_set.quality_scorer(n) for n in NSS}
        return self._scorers

    def _embedder(self) -> tuple[Any, str]:
        """The shared CLIP, or None with the reason CLIP-IQA is skipped."""
        cfg: TechnicalQualityConfig = self.config  # type: ignore[assignment]
        if not cfg.use_clip_iqa:
            return None, "CLIP-IQA switched off in the config"
        try:
            return self.model_set.embedder(), ""
        except ModelUnavailableError as exc:
            return None, f"CLIP-IQA skipped: {exc}"
        except ImportError as exc:  # the CLIP backend module itself is missing from this install
            return None, f"CLIP-IQA skipped: the CLIP backend could not be imported ({exc})"

    # ---------------------------------------------------------------------------------
    def judge(self, batch: Sequence[JudgeItem]) -> list[JudgeResult]:
        if not batch:
            return []
        cfg: TechnicalQualityConfig = self.config  # type: ignore[assignment]
        scorers = self._nss_scorers()
        reports = signal_reports(batch)
        photo = [i for i, rep in enumerate(reports) if is_photo_like(rep, cfg)]
        nss: list[dict[str, QualityScore]] = [{} for _ in batch]
        if photo:  # NSS only where it is valid: the other items are never scored
            sub = [batch[i] for i in photo]
            for name, scorer in scorers.items():
                for i, s in zip(photo, quality_scores(sub, scorer)):
                    nss[i][name] = s
        embedder, clip_note = self._embedder()
        clip_scores: list[QualityScore | None] = [None] * len(batch)
        if embedder is not None:
            clip_scores = list(_clip_iqa(batch, embedder))
        return [self._judge_one(item, reports[i], nss[i], clip_scores[i], clip_note) for i, item in enumerate(batch)]

    def _nss_checks(self, nss: dict[str, QualityScore], subs_notes: dict[str, str]) -> list[Check]:
        cfg: TechnicalQualityConfig = self.config  # type: ignore[assignment]
        limits = {"brisque_pypi": cfg.max_brisque_pypi, "niqe": cfg.max_niqe, "piqe": cfg.max_piqe}
        checks = []
        for name in NSS:
            s = nss[name]
            if s.value is None or math.isnan(s.value):
                subs_notes[name] = s.details.get("error", "not measurable")
                continue
            checks.append(
                Check(
                    name,
                    "artifacts",
                    f"{name} ≤ {limits[name]:g} (lower is better)",
                    s.value,
                    limits[name],
                    False,
                    NSS_UNITS[name],
                    f"{name} {s.value:.1f}",
                )
            )
        return checks

    def _judge_one(
        self,
        item: JudgeItem,
        rep: SignalReport,
        nss: dict[str, QualityScore],
        clip: QualityScore | None,
        clip_note: str,
    ) -> JudgeResult:
        cfg: TechnicalQualityConfig = self.config  # type: ignore[assignment]
        ignored = ignored_defects(item)
        width, height = item.size
        evidence: list[str] = [content_note(rep, cfg)]
        checks = pixel_checks(rep, cfg, evidence)
        checks.append(
            Check(
                "resolution",
                "low_resolution",
                f"shorter side ≥ {cfg.min_short_side} px",
                min(width, height),
                cfg.min_short_side,
                True,
                "pixels",
                f"image is {width}×{height}: shorter side under {cfg.min_short_side} px",
            )
        )
        folded = fold_checks(checks, ignored)
        subs, issues, measurements = folded.subs, folded.issues, folded.measurements
        not_measured: dict[str, str] = {}
        nss_checks = self._nss_checks(nss, not_measured) if nss else []
        if not nss:
            evidence.append("NSS scores (brisque_pypi, NIQE, PIQE) left out of the vote: content is not photo-like")
        for name, why in not_measured.items():
            subs[name] = {"text": f"{name} not measured", "passed": True, "score": None, "note": why}
        nss_failed = [c.key for c in nss_checks if not c.passed]
        for c in nss_checks:
            subs[c.key] = {"text": c.text, "passed": c.passed, "score": round(c.value, 4), "threshold": c.threshold}
            measurements.append(Measurement(c.key, c.value, c.threshold, False, c.units, c.key, decisive=False))
        if clip is not None:
            ok = clip.value >= cfg.min_clip_iqa
            subs["clip_iqa"] = {
                "text": f"CLIP-IQA ≥ {cfg.min_clip_iqa:g} ('Good photo.' vs 'Bad photo.')",
                "passed": ok,
                "score": round(float(clip.value), 4),
                "threshold": cfg.min_clip_iqa,
                "votes": cfg.clip_iqa_votes,
            }
            measurements.append(
                Measurement("clip_iqa", float(clip.value), cfg.min_clip_iqa, True, "probability", decisive=False)
            )
            if not ok and cfg.clip_iqa_votes and nss_checks:
                nss_failed.append("clip_iqa")
        else:
            evidence.append(clip_note)
        # The NSS scores cannot say which defect they see: when a named defect already
        # explains the image, or the rubric waved one through, they do not vote.
        if nss_checks:
            nss_vote_decisive = not issues and not folded.ignored_found and "artifacts" not in ignored
            measurements.append(
                Measurement(
                    "nss_failures",
                    float(len(nss_failed)),
                    float(cfg.nss_failures_to_fail - 1),
                    False,
                    "NSS scores above their limits",
                    "brisque_pypi, niqe, piqe",
                    decisive=nss_vote_decisive,
                )
            )
            if nss_vote_decisive and len(nss_failed) >= cfg.nss_failures_to_fail:
                worst = max(-c.relative_margin for c in nss_checks if c.key in nss_failed)
                issues.append(
                    JudgeIssue(
                        "artifacts",
                        "no-reference quality scores agree the image is degraded: "
                        + ", ".join(f"{n} {subs[n]['score']:.1f}" for n in nss_failed),
                        severity=round(min(1.0, 0.5 + worst), 3),
                    )
                )
                folded.margins["nss_failures"] = -worst
        evidence.insert(0, "; ".join(f"{k} {v['score']:.3g}" for k, v in subs.items() if v.get("score") is not None))
        if ignored:
            evidence.append("ignored by the rubric: " + ", ".join(sorted(ignored)))
        return self._result(subs, issues, measurements, folded.margins, nss_failed, evidence, clip, clip_note)

    def _result(self, subs, issues, measurements, margins, nss_failed, evidence, clip, clip_note) -> JudgeResult:
        cfg: TechnicalQualityConfig = self.config  # type: ignore[assignment]
        passed = not issues
        counted = [k for k, v in subs.items() if v.get("score") is not None and "ignored" not in v and k != "clip_iqa"]
        n_ok = sum(1 for k in counted if subs[k]["passed"])
        if passed:
            decisive = max(min((m for m in margins.values() if m >= 0), default=1.0), 0.0)
            if nss_failed:
                reasoning = (
                    f"no defect found; {', '.join(nss_failed)} above threshold but outvoted "
                    f"({len(nss_failed)} < {cfg.nss_failures_to_fail})"
                )
            else:
                reasoning = f"all {len(counted)} quality measures within thresholds"
            strengths = ["clean, sharp image by no-reference quality measures"] if not nss_failed else []
        else:
            decisive = max((-m for m in margins.values() if m < 0), default=0.0)
            reasoning = "; ".join(i.detail for i in issues)
            strengths = []
        if clip is None and clip_note:
            reasoning += f" ({clip_note.split(':')[0]})"
        return self.result(
            passed=passed,
            confidence=confidence_from_margin(decisive, cfg.confidence_scale),
            reasoning=reasoning,
            score=round(n_ok / len(counted), 4) if counted else None,
            threshold=None,
            evidence=evidence,
            sub_point_results=subs,
            sub_points_evaluated=len(counted),
            issues=issues,
            strengths=strengths,
            measurements=measurements,
            decision_rule="all",
        )


def _clip_iqa(batch: Sequence[JudgeItem], embedder: Any) -> list[QualityScore]:
    """CLIP-IQA from the shared CLIP image features (no extra forward pass)."""
    scorer = ClipIQAScorer(embedder)
    out: list[QualityScore | None] = [None] * len(batch)
    for cache, idx in group_by_cache([item.features for item in batch]):
        emb = cache.image_embeddings(embedder, [batch[i].image_key for i in idx], [batch[i].image for i in idx])
        scores = scorer.from_embeddings(emb, text_embeddings=lambda t, c=cache: c.text_embeddings(embedder, t))
        for i, s in zip(idx, scores):
            out[i] = s
    return out  # type: ignore[return-value]
