"""technical_signals: the cheap pixel checks — resolution and aspect ratio against the
requested attributes, blank images, exposure clipping, blur (noise-aware).

No model weights: every number comes from ``imagejury.models.quality.signals`` through the shared
feature cache (scorer ``signals``), so ``technical_quality`` reuses the same report.
This is the quality judge of the ``quick`` job class.

Thresholds were measured on scikit-image's sample photos (astronaut, coffee, chelsea,
rocket, motorcycle) against graded distortions made by ``tests/support/photos.py``
(blur sigma 1/2/3/5, noise sigma 5/15/30/50, JPEG q 50/25/10/4, exposure ×1.6/2.2/3/4).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from imagejury.judges.base import Judge, JudgeConfig, confidence_from_margin
from imagejury.judges.features import group_by_cache
from imagejury.judges.types import JudgeIssue, JudgeItem, JudgeResult
from imagejury.models.interfaces import QualityScore, QualityScorer
from imagejury.models.quality.signals import AllSignalsScorer, SignalReport, report_from_score

# One stateless instance: the feature cache keys by its name ("signals"), so the two
# technical judges measure each image once between them.
SIGNALS = AllSignalsScorer()

# rubric aspect words ("ignore the grain") -> the defect subcategory they switch off
IGNORE_ALIASES: dict[str, frozenset[str]] = {
    "blur": frozenset({"blur", "sharpness", "focus", "softness"}),
    "noise": frozenset({"noise", "grain", "film grain"}),
    "compression": frozenset({"compression", "jpeg", "blockiness"}),
    "exposure": frozenset({"exposure", "lighting", "brightness"}),
    "low_resolution": frozenset({"resolution", "size"}),
    "aspect_ratio": frozenset({"aspect ratio", "aspect_ratio", "crop"}),
}


def ignored_defects(item: JudgeItem) -> set[str]:
    """Defect subcategories the rubric asked to ignore ("ignore the film grain")."""
    words = {w.lower().strip() for w in item.directives.ignore}
    return {defect for defect, aliases in IGNORE_ALIASES.items() if words & aliases}


def quality_scores(batch: Sequence[JudgeItem], scorer: QualityScorer) -> list[QualityScore]:
    """Scores through each item's feature cache, one scorer call per distinct cache."""
    out: list[QualityScore | None] = [None] * len(batch)
    for cache, idx in group_by_cache([item.features for item in batch]):
        for i, s in zip(idx, cache.quality(scorer, [batch[i].image_key for i in idx], [batch[i].image for i in idx])):
            out[i] = s
    return out  # type: ignore[return-value]


def signal_reports(batch: Sequence[JudgeItem]) -> list[SignalReport]:
    """The signal report of every item, through the shared feature cache (one call per cache)."""
    return [report_from_score(s) for s in quality_scores(batch, SIGNALS)]


_RATIO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[:/x×]\s*(\d+(?:\.\d+)?)\s*$", re.IGNORECASE)
_SIZE = re.compile(r"^\s*(\d+)\s*[x×*]\s*(\d+)\s*(?:px)?\s*$", re.IGNORECASE)


def parse_aspect_ratio(value: Any) -> float:
    """``"16:9"``, ``"16/9"``, ``"16x9"``, ``1.78`` or ``"1.78"`` -> width / height."""
    if isinstance(value, bool):
        raise ValueError(f"aspect_ratio must be like '16:9' or 1.78, got {value!r}")
    if isinstance(value, (int, float)):
        ratio = float(value)
    else:
        text = str(value).strip()
        m = _RATIO.match(text)
        if m:
            w, h = float(m.group(1)), float(m.group(2))
            if h == 0:
                raise ValueError(f"aspect_ratio has a zero height: {value!r}")
            ratio = w / h
        else:
            try:
                ratio = float(text)
            except ValueError:
                raise ValueError(f"aspect_ratio must be like '16:9' or 1.78, got {value!r}") from None
    if not (0.05 <= ratio <= 20.0):
        raise ValueError(f"aspect_ratio {value!r} is outside 1:20..20:1")
    return ratio


def parse_pixels(value: Any, name: str) -> int:
    """``1024``, ``"1024"``, ``"1024px"`` -> 1024."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number of pixels, got {value!r}")
    text = str(value).strip().lower().removesuffix("px").strip()
    try:
        px = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number of pixels, got {value!r}") from None
    if px <= 0 or px != int(px) or px > 100_000:
        raise ValueError(f"{name} must be a positive whole number of pixels, got {value!r}")
    return int(px)


def requested_size(attributes: dict[str, Any]) -> tuple[int | None, int | None]:
    """Requested (width, height) from ``width``/``height`` or ``resolution``/``size`` ("1024x768")."""

    def given(key: str) -> bool:
        return attributes.get(key) not in (None, "")

    width = parse_pixels(attributes["width"], "width") if given("width") else None
    height = parse_pixels(attributes["height"], "height") if given("height") else None
    for key in ("resolution", "size"):
        if not given(key) or (width is not None and height is not None):
            continue
        m = _SIZE.match(str(attributes[key]))
        if not m:
            raise ValueError(f"{key} must look like '1024x768', got {attributes[key]!r}")
        width = width if width is not None else int(m.group(1))
        height = height if height is not None else int(m.group(2))
    return width, height


class TechnicalSignalsConfig(JudgeConfig):
    min_short_side: int = Field(
        default=256,
        ge=1,
        description=(
            "shorter side below which an image is low-resolution whatever was requested. 256 px: below any "
            "current generator's native output (512+) and below the smallest sample photo that must pass "
            "(chelsea, 451×300)"
        ),
    )
    resolution_tolerance: float = Field(
        default=0.02,
        ge=0,
        lt=1,
        description="a side may fall this fraction short of the requested width/height (rounding to multiples of 8/64)",
    )
    aspect_tolerance: float = Field(
        default=0.03,
        ge=0,
        description=(
            "largest relative error |actual/requested - 1| of width/height; 3% lets generators round sizes to "
            "multiples of 64 (1024×576 for 16:9 is exact, 1024×584 is 1.4% off) but catches 1:1 for 4:3 (25%)"
        ),
    )
    blank_std: float = Field(
        default=4.0,
        gt=0,
        description=(
            "an image whose every RGB channel has a standard deviation below this (grey levels) is blank or "
            "near-uniform. The sample photos have ≥ 26 even under blur σ5; 8-bit gradients and sensor noise on "
            "a flat field stay under 3"
        ),
    )
    max_bright_fraction: float = Field(
        default=0.10,
        ge=0,
        le=1,
        description=(
            "fraction of pixels with luma ≥ 252 above which highlights are blown. Sample photos: ≤ 0.008; "
            "×1.6 exposure: 0.01 (rocket) to 0.34; ×2.2: 0.02 to 0.41"
        ),
    )
    max_dark_fraction: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description=(
            "fraction of pixels with luma ≤ 3 above which shadows are crushed. High on purpose: dark studio "
            "backgrounds are legitimate (the astronaut photo has 0.135 of near-black space)"
        ),
    )
    min_sharpness: float = Field(
        default=25.0,
        ge=0,
        description=(
            "noise-corrected variance of the Laplacian at a 512 px longer side (VoL - 20·sigma_noise²) below "
            "which the image is blurred. Sample photos: 332-1508; blur σ1: 21-307; σ2: 2.5-40; σ3: 0.9-10.5. "
            "Raw VoL rises with noise (astronaut σ30: 7338), hence the correction"
        ),
    )
    confidence_scale: float = Field(
        default=0.5,
        gt=0,
        description="relative margin from a threshold (e.g. 0.5 = 50% beyond it) at which confidence reaches ~0.88",
    )


class TechnicalSignalsJudge(Judge):
    name = "technical_signals"
    category = "technical"
    description = "resolution, aspect ratio, blank image, exposure clipping and blur from pixel statistics"
    default_weight = 1.0
    version = "1"
    requires = frozenset()
    models = frozenset()
    Config = TechnicalSignalsConfig

    def judge(self, batch: Sequence[JudgeItem]) -> list[JudgeResult]:
        if not batch:
            return []
        reports = signal_reports(batch)
        return [self._judge_one(item, rep) for item, rep in zip(batch, reports)]

    def _judge_one(self, item: JudgeItem, rep: SignalReport) -> JudgeResult:
        cfg: TechnicalSignalsConfig = self.config  # type: ignore[assignment]
        ignored = ignored_defects(item)
        checks: dict[str, dict[str, Any]] = {}
        issues: list[JudgeIssue] = []
        evidence: list[str] = []
        margins: list[float] = []  # relative margins, positive = good side
        width, height = item.size

        def check(
            key: str, subcategory: str, text: str, value: float, threshold: float, higher_ok: bool, detail: str
        ) -> None:
            ok = value >= threshold if higher_ok else value <= threshold
            margin = (value - threshold) if higher_ok else (threshold - value)
            rel = margin / max(abs(threshold), 1e-6)
            skip = subcategory in ignored
            checks[key] = {"text": text, "passed": ok or skip, "score": round(float(value), 4), "threshold": threshold}
            if skip:
                checks[key]["ignored"] = "the rubric asked to ignore this"
                return
            margins.append(rel)
            if not ok:
                issues.append(JudgeIssue(subcategory, detail, severity=round(min(1.0, 0.5 + abs(rel)), 3)))

        evidence.append(f"size {width}×{height} (original)")
        # resolution ------------------------------------------------------------------
        check(
            "min_short_side",
            "low_resolution",
            f"shorter side at least {cfg.min_short_side} px",
            min(width, height),
            cfg.min_short_side,
            True,
            f"image is {width}×{height}: shorter side under {cfg.min_short_side} px",
        )
        try:
            req_w, req_h = requested_size(item.attributes)
        except ValueError as exc:
            req_w = req_h = None
            evidence.append(f"size attribute not understood: {exc}")
        floor = 1.0 - cfg.resolution_tolerance
        if req_w is not None:
            check(
                "width",
                "low_resolution",
                f"width at least the requested {req_w} px",
                width,
                round(req_w * floor, 2),
                True,
                f"width {width} px is below the requested {req_w} px",
            )
        if req_h is not None:
            check(
                "height",
                "low_resolution",
                f"height at least the requested {req_h} px",
                height,
                round(req_h * floor, 2),
                True,
                f"height {height} px is below the requested {req_h} px",
            )
        # aspect ratio ----------------------------------------------------------------------
        want: float | None = None
        want_text = ""
        raw_ratio = item.attributes.get("aspect_ratio")
        if raw_ratio not in (None, ""):
            try:
                want, want_text = parse_aspect_ratio(raw_ratio), str(raw_ratio)
            except ValueError as exc:
                evidence.append(f"aspect_ratio attribute not understood: {exc}")
        elif req_w and req_h:
            want, want_text = req_w / req_h, f"{req_w}×{req_h}"
        if want is not None:
            actual = width / height
            err = abs(actual / want - 1.0)
            check(
                "aspect_ratio",
                "aspect_ratio",
                f"aspect ratio {want_text} (±{cfg.aspect_tolerance:.0%})",
                err,
                cfg.aspect_tolerance,
                False,
                f"aspect ratio is {actual:.3f} ({width}×{height}), requested {want_text} = {want:.3f}",
            )
        # blank -------------------------------------------------------------------------------
        check(
            "not_blank",
            "blank",
            "image is not blank or near-uniform",
            rep.channel_std_max,
            cfg.blank_std,
            True,
            f"image is blank or near-uniform (largest channel std {rep.channel_std_max:.2f} grey levels)",
        )
        blank = rep.channel_std_max < cfg.blank_std
        # exposure ------------------------------------------------------------------------
        check(
            "highlights",
            "exposure",
            "highlights not blown",
            rep.bright_fraction,
            cfg.max_bright_fraction,
            False,
            f"{rep.bright_fraction:.0%} of pixels are blown-out highlights (luma ≥ 252)",
        )
        check(
            "shadows",
            "exposure",
            "shadows not crushed",
            rep.dark_fraction,
            cfg.max_dark_fraction,
            False,
            f"{rep.dark_fraction:.0%} of pixels are crushed shadows (luma ≤ 3)",
        )
        # blur (not meaningful on a blank image: it has no edges at all) ----------------------
        if not blank:
            check(
                "sharpness",
                "blur",
                "image is sharp (noise-corrected variance of Laplacian)",
                rep.sharpness,
                cfg.min_sharpness,
                True,
                f"image is blurred: sharpness {rep.sharpness:.1f} < {cfg.min_sharpness:g} "
                f"(variance of Laplacian {rep.laplacian_var_512:.1f} at 512 px, noise σ {rep.noise_sigma_512:.1f})",
            )
        evidence.append(
            f"sharpness {rep.sharpness:.1f} (variance of Laplacian {rep.laplacian_var_512:.1f} at ≤512 px), "
            f"noise σ {rep.noise_sigma:.2f}, highlights {rep.bright_fraction:.3f}, shadows {rep.dark_fraction:.3f}, "
            f"channel std {rep.channel_std_max:.1f}"
        )

        passed = not issues
        evaluated = [c for c in checks.values() if "ignored" not in c]
        n_ok = sum(1 for c in evaluated if c["passed"])
        if passed:
            decisive = min(margins) if margins else 1.0
            reasoning = f"all {len(evaluated)} pixel checks passed"
            strengths = ["sharp" if "sharpness" in checks else "", "resolution as requested" if req_w or req_h else ""]
        else:
            decisive = max(-m for m in margins if m < 0)
            reasoning = "; ".join(i.detail for i in issues)
            strengths = []
        if ignored:
            evidence.append("ignored by the rubric: " + ", ".join(sorted(ignored)))
        return self.result(
            passed=passed,
            confidence=confidence_from_margin(decisive, cfg.confidence_scale),
            reasoning=reasoning,
            score=round(n_ok / len(evaluated), 4) if evaluated else 1.0,
            threshold=1.0,
            evidence=evidence,
            sub_point_results=checks,
            sub_points_evaluated=len(evaluated),
            issues=issues,
            strengths=[s for s in strengths if s],
        )
