"""technical_signals: the cheap pixel checks — resolution and aspect ratio against the
requested attributes, blank images, exposure, blur, noise, JPEG blocking and banding — measured
where they mean something (see ``imagejury.models.quality.signals``):

- blur is an edge-based focus measure: a flat background is never "blur", and an image
  with too few edges has no blur verdict (said in the evidence);
- exposure is judged from the tonal range (none lighter than ``min_white_point``: too
  dark; no tone darker than ``max_black_point``: washed out — judged only when the
  highlights clip and the image is light overall, which is what over-exposure does, so a
  pale design with unclipped lights or mid-tones is not "washed out") and, on photo-like
  content only, from the share of clipped pixels — so a product on a white seamless
  background or black line art on white is not "blown out";
- banding (posterisation) is the density of false contours: equal steps between
  plateaus where a ramp should be (``signals.false_contours``); solid fills, clean
  gradients and photos have none;
- JPEG blocking has a stricter limit on graphics, where flat fills show every seam.

Content is "photo-like" when at least ``min_textured_fraction`` of the pixels are
textured; the evidence shows the value and the decision. No model weights: every number
comes from the ``signals`` scorer through the shared feature cache, so
``technical_quality`` reuses the same report. This is the quality judge of ``quick``.

Calibration: the graphics calibration split (``tests/support/graphics.py``, seeds 0–5)
and the photos astronaut, coffee and chelsea (``tests/support/photos.py``) with their
graded distortions; held out: graphics seeds 100–111, photos rocket and motorcycle.
``benchmarks/graphics_quality.py`` prints both tables.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from imagejury.judges.base import Judge, JudgeConfig, confidence_from_margin
from imagejury.judges.features import group_by_cache
from imagejury.judges.types import JudgeIssue, JudgeItem, JudgeResult, Measurement
from imagejury.models.interfaces import QualityScore, QualityScorer
from imagejury.models.quality.signals import AllSignalsScorer, SignalReport, report_from_score

# One stateless instance: the feature cache keys by its name ("signals"), so the two
# technical judges measure each image once between them.
SIGNALS = AllSignalsScorer()
SIGNALS_MODEL = "pixel signals (built in, no weights)"

#: Every defect the technical judges name, with the rubric aspect words that switch each
#: one off ("ignore the grain" -> noise). The one table the shared aspect vocabulary wires in.
DEFECT_ASPECTS: dict[str, frozenset[str]] = {
    "blur": frozenset({"blur", "sharpness", "focus", "softness"}),
    "noise": frozenset({"noise", "grain", "film grain"}),
    "compression": frozenset({"compression", "jpeg", "blockiness", "artifacts from compression"}),
    "banding": frozenset({"banding", "posterization", "posterisation", "colour banding", "color banding"}),
    "exposure": frozenset({"exposure", "lighting", "brightness"}),
    "low_resolution": frozenset({"resolution", "low_resolution", "size"}),
    "aspect_ratio": frozenset({"aspect ratio", "aspect_ratio", "crop"}),
    "blank": frozenset({"blank"}),
    "artifacts": frozenset({"artifacts"}),
}
DEFECTS: tuple[str, ...] = tuple(DEFECT_ASPECTS)
IGNORE_ALIASES = DEFECT_ASPECTS  # the name earlier callers used


def ignored_defects(item: JudgeItem) -> set[str]:
    """Defects the rubric asked to ignore: an entry of ``directives.ignore`` that names the
    defect itself ("noise") or one of its aspect words ("film grain")."""
    words = {w.lower().strip().replace("-", " ") for w in item.directives.ignore}
    words |= {w.replace(" ", "_") for w in words}
    return {defect for defect, aliases in DEFECT_ASPECTS.items() if defect in words or words & aliases}


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


class PixelThresholds(JudgeConfig):
    """The pixel-signal thresholds both technical judges apply (one definition)."""

    min_textured_fraction: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description=(
            "share of textured pixels (local std ≥ 1.5 grey levels) from which content is photo-like. "
            "Calibration: photos 0.36 (rocket, sky) to 0.90; clean graphics 0.02-0.17"
        ),
    )
    min_edge_sharpness: float = Field(
        default=1.4,
        ge=1,
        description=(
            "median re-blur ratio at edges below which the image is blurred (ideal step ≈ 2.9). Calibration: "
            "photos 2.5-3.7, blur σ1 1.49-1.77, σ2 1.19-1.24; graphics ≥ 1.95, blur σ3 ≤ 1.28"
        ),
    )
    max_noise_sigma: float = Field(
        default=7.0,
        gt=0,
        description=(
            "estimated Gaussian noise σ in grey levels (Immerkær 1996) above which the image is noisy. "
            "Photos 1.9-3.8; added σ5 3.9-5.6, σ15 9.5-10.9; graphics ≤ 0.5, added σ20 ≥ 7.6"
        ),
    )
    max_blockiness: float = Field(
        default=2.0,
        gt=1,
        description="JPEG 8×8 step ratio above which blocking shows on photo-like content. Photos ≤ 1.0; q10 1.93-2.93",
    )
    max_false_contours: float = Field(
        default=0.3,
        ge=0,
        description=(
            "false-contour (banding) steps per 1,000 pixel-channels above which smooth tones are posterised. "
            "Calibration: clean graphics (seeds 0-1) ≤ 0.01, photos ≤ 0.08, photos at JPEG q8 0.00; posterised to "
            "6 tones: graphics with ramps (gradient, product, render) 0.85-3.5, photos 1.1-14; solid-fill designs "
            "stay ≤ 0.15 posterised (no ramp to band: not detected)"
        ),
    )
    max_blockiness_graphic: float = Field(
        default=1.35,
        gt=1,
        description=(
            "the same on graphics, where flat fills show every seam. Calibration: clean ≤ 1.22, JPEG q6 ≥ 1.40"
        ),
    )
    max_black_point: float = Field(
        default=150.0,
        description=(
            "luma of the darkest 0.5% above which the image is washed out (over-exposed). Calibration: clean "
            "≤ 178 (a pale icon), washed-out graphics ≥ 153"
        ),
    )
    washed_out_min_white_point: float = Field(
        default=250.0,
        description=(
            "the washed-out check applies only when the lightest 0.5% reach this luma: over-exposure clips the "
            "lights. Calibration: every over-exposed graphic 255; the pale flat illustration (seed 5, darkest "
            "tone 166) tops out at 209"
        ),
    )
    washed_out_min_mean_luma: float = Field(
        default=215.0,
        description=(
            "...and only when the mean luma is at least this: over-exposure makes the whole image light. "
            "Calibration: over-exposed graphics ≥ 225; the pale poster (seed 4, darkest tone 153) has 164"
        ),
    )
    min_white_point: float = Field(
        default=100.0,
        description="luma of the lightest 0.5% below which the image is too dark. Clean ≥ 178; ×0.25 ≤ 64",
    )
    max_bright_fraction: float = Field(
        default=0.10,
        ge=0,
        le=1,
        description=(
            "photo-like content only: share of pixels with luma ≥ 252 above which highlights are blown. "
            "Photos ≤ 0.01; ×1.6 0.01-0.34, ×2.2 0.02-0.41 (graphics have legitimately white backgrounds)"
        ),
    )
    max_dark_fraction: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description="photo-like content only: share of pixels with luma ≤ 3 above which shadows are crushed",
    )


@dataclass
class Check:
    """One pixel check: a value against a threshold, and the defect it names when it fails."""

    key: str
    defect: str
    text: str
    value: float
    threshold: float
    higher_ok: bool
    units: str
    failure: str  # the issue detail when it fails

    @property
    def passed(self) -> bool:
        return self.value >= self.threshold if self.higher_ok else self.value <= self.threshold

    @property
    def relative_margin(self) -> float:
        margin = (self.value - self.threshold) if self.higher_ok else (self.threshold - self.value)
        return margin / max(abs(self.threshold), 1e-6)


def is_photo_like(rep: SignalReport, cfg: PixelThresholds) -> bool:
    return rep.textured_fraction >= cfg.min_textured_fraction


def content_note(rep: SignalReport, cfg: PixelThresholds) -> str:
    kind = "photo-like" if is_photo_like(rep, cfg) else "graphic/render/text (not photo-like)"
    return (
        f"content check: {kind}, textured fraction {rep.textured_fraction:.2f} "
        f"({'≥' if is_photo_like(rep, cfg) else '<'} {cfg.min_textured_fraction:g})"
    )


def washed_out_applies(rep: SignalReport, cfg: PixelThresholds) -> bool:
    """Over-exposure lifts the darks *and* clips the lights of an image that is light
    overall; a lifted black point alone is a pale palette (a pastel poster, a pale icon)."""
    return rep.white_point >= cfg.washed_out_min_white_point and rep.mean_luma >= cfg.washed_out_min_mean_luma


def exposure_checks(rep: SignalReport, cfg: PixelThresholds, notes: list[str]) -> list[Check]:
    """Tonal range (washed out only where the lights clip on a light image, too dark) and,
    on photo-like content, the clipped-pixel shares."""
    photo = is_photo_like(rep, cfg)
    checks = [
        Check(
            "white_point",
            "exposure",
            f"lightest tones at least {cfg.min_white_point:g} (not too dark)",
            rep.white_point,
            cfg.min_white_point,
            True,
            "luma 0..255 (99.5th percentile)",
            f"under-exposed: no tone lighter than {rep.white_point:.0f} of 255",
        )
    ]
    if washed_out_applies(rep, cfg):
        checks.insert(
            0,
            Check(
                "black_point",
                "exposure",
                f"darkest tones at most {cfg.max_black_point:g} (not washed out)",
                rep.black_point,
                cfg.max_black_point,
                False,
                "luma 0..255 (0.5th percentile)",
                f"over-exposed / washed out: no tone darker than {rep.black_point:.0f} of 255, "
                f"lights clipped at {rep.white_point:.0f}, mean luma {rep.mean_luma:.0f}",
            ),
        )
    else:
        notes.append(
            f"washed-out check not applied: lights reach {rep.white_point:.0f} "
            f"(over-exposure clips them at ≥ {cfg.washed_out_min_white_point:g}) and mean luma is "
            f"{rep.mean_luma:.0f} (needs ≥ {cfg.washed_out_min_mean_luma:g}); darkest tone {rep.black_point:.0f}"
        )
    if photo:
        checks += [
            Check(
                "highlights",
                "exposure",
                f"blown highlights ≤ {cfg.max_bright_fraction:.0%}",
                rep.bright_fraction,
                cfg.max_bright_fraction,
                False,
                "fraction of pixels (luma ≥ 252)",
                f"over-exposed: {rep.bright_fraction:.0%} of pixels are blown-out highlights (luma ≥ 252)",
            ),
            Check(
                "shadows",
                "exposure",
                f"crushed shadows ≤ {cfg.max_dark_fraction:.0%}",
                rep.dark_fraction,
                cfg.max_dark_fraction,
                False,
                "fraction of pixels (luma ≤ 3)",
                f"under-exposed: {rep.dark_fraction:.0%} of pixels are crushed to black (luma ≤ 3)",
            ),
        ]
    else:
        notes.append(
            "clipped-pixel shares not judged on graphics (a white or black background is a design choice): "
            f"highlights {rep.bright_fraction:.2f}, shadows {rep.dark_fraction:.2f}"
        )
    return checks


def pixel_checks(rep: SignalReport, cfg: PixelThresholds, notes: list[str]) -> list[Check]:
    """Blur, noise, compression and exposure checks that apply to this content."""
    photo = is_photo_like(rep, cfg)
    checks: list[Check] = []
    if rep.edge_sharpness is None:
        notes.append(f"blur not judged: only {rep.edge_pixels} edge pixels (a flat or blank image)")
    else:
        checks.append(
            Check(
                "sharpness",
                "blur",
                f"edges are sharp (re-blur ratio ≥ {cfg.min_edge_sharpness:g})",
                rep.edge_sharpness,
                cfg.min_edge_sharpness,
                True,
                "re-blur ratio at edges",
                f"image is blurred: edge sharpness {rep.edge_sharpness:.2f} < {cfg.min_edge_sharpness:g} "
                f"(over {rep.edge_pixels} edge pixels)",
            )
        )
    checks.append(
        Check(
            "noise",
            "noise",
            f"noise σ ≤ {cfg.max_noise_sigma:g} grey levels",
            rep.noise_sigma,
            cfg.max_noise_sigma,
            False,
            "grey levels (noise σ)",
            f"image is noisy: estimated noise σ {rep.noise_sigma:.1f} grey levels (threshold {cfg.max_noise_sigma:g})",
        )
    )
    block_limit = cfg.max_blockiness if photo else cfg.max_blockiness_graphic
    checks.append(
        Check(
            "blockiness",
            "compression",
            f"JPEG blockiness ≤ {block_limit:g}" + ("" if photo else " (graphics limit)"),
            rep.blockiness,
            block_limit,
            False,
            "8×8 step ratio",
            f"JPEG blocking artifacts: 8×8 boundary ratio {rep.blockiness:.2f} (threshold {block_limit:g})",
        )
    )
    checks.append(
        Check(
            "false_contours",
            "banding",
            f"false contours ≤ {cfg.max_false_contours:g} per 1,000 (no banding)",
            rep.false_contours,
            cfg.max_false_contours,
            False,
            "false-contour steps per 1,000 pixel-channels",
            f"banding / posterised tones: {rep.false_contours:.2f} false-contour steps per 1,000 pixels "
            f"(threshold {cfg.max_false_contours:g})",
        )
    )
    checks += exposure_checks(rep, cfg, notes)
    return checks


@dataclass
class Folded:
    """Checks folded into one verdict: sub-points, issues, measurements."""

    subs: dict[str, dict[str, Any]]
    issues: list[JudgeIssue]
    measurements: list[Measurement]
    margins: dict[str, float]
    ignored_found: list[str]


def fold_checks(checks: Sequence[Check], ignored: set[str], model: str = SIGNALS_MODEL) -> Folded:
    """Each check becomes a sub-point and a Measurement; a failing one an issue unless ignored."""
    out = Folded({}, [], [], {}, [])
    for c in checks:
        skip = c.defect in ignored
        out.subs[c.key] = {
            "text": c.text,
            "passed": c.passed or skip,
            "score": round(float(c.value), 4),
            "threshold": c.threshold,
            "defect": c.defect,
        }
        out.measurements.append(
            Measurement(c.key, float(c.value), c.threshold, c.higher_ok, c.units, model, decisive=not skip)
        )
        if skip:
            out.subs[c.key]["ignored"] = "the rubric asked to ignore this"
            if not c.passed:
                out.ignored_found.append(c.defect)
            continue
        out.margins[c.key] = c.relative_margin
        if not c.passed:
            out.issues.append(
                JudgeIssue(c.defect, c.failure, severity=round(min(1.0, 0.5 + abs(c.relative_margin)), 3))
            )
    return out


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


class TechnicalSignalsConfig(PixelThresholds):
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
    confidence_scale: float = Field(
        default=0.5,
        gt=0,
        description="relative margin from a threshold (e.g. 0.5 = 50% beyond it) at which confidence reaches ~0.88",
    )


def size_checks(item: JudgeItem, cfg: TechnicalSignalsConfig, notes: list[str]) -> list[Check]:
    """Resolution and aspect ratio against the minimum and the requested attributes."""
    width, height = item.size
    checks = [
        Check(
            "min_short_side",
            "low_resolution",
            f"shorter side at least {cfg.min_short_side} px",
            min(width, height),
            cfg.min_short_side,
            True,
            "pixels",
            f"image is {width}×{height}: shorter side under {cfg.min_short_side} px",
        )
    ]
    try:
        req_w, req_h = requested_size(item.attributes)
    except ValueError as exc:
        req_w = req_h = None
        notes.append(f"size attribute not understood: {exc}")
    floor = 1.0 - cfg.resolution_tolerance
    for key, want, have in (("width", req_w, width), ("height", req_h, height)):
        if want is not None:
            checks.append(
                Check(
                    key,
                    "low_resolution",
                    f"{key} at least the requested {want} px",
                    have,
                    round(want * floor, 2),
                    True,
                    "pixels",
                    f"{key} {have} px is below the requested {want} px",
                )
            )
    want_ratio, want_text = None, ""
    raw_ratio = item.attributes.get("aspect_ratio")
    if raw_ratio not in (None, ""):
        try:
            want_ratio, want_text = parse_aspect_ratio(raw_ratio), str(raw_ratio)
        except ValueError as exc:
            notes.append(f"aspect_ratio attribute not understood: {exc}")
    elif req_w and req_h:
        want_ratio, want_text = req_w / req_h, f"{req_w}×{req_h}"
    if want_ratio is not None:
        actual = width / height
        checks.append(
            Check(
                "aspect_ratio",
                "aspect_ratio",
                f"aspect ratio {want_text} (±{cfg.aspect_tolerance:.0%})",
                abs(actual / want_ratio - 1.0),
                cfg.aspect_tolerance,
                False,
                "relative error of width/height",
                f"aspect ratio is {actual:.3f} ({width}×{height}), requested {want_text} = {want_ratio:.3f}",
            )
        )
    return checks


class TechnicalSignalsJudge(Judge):
    name = "technical_signals"
    category = "technical"
    description = (
        "resolution, aspect ratio, blank image, exposure, blur, noise, JPEG blocking and banding from pixel statistics"
    )
    default_weight = 1.0
    version = "2"
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
        width, height = item.size
        notes: list[str] = [f"size {width}×{height} (original)", content_note(rep, cfg)]
        checks = size_checks(item, cfg, notes)
        checks.append(
            Check(
                "not_blank",
                "blank",
                "image is not blank or near-uniform",
                rep.channel_std_max,
                cfg.blank_std,
                True,
                "grey levels (largest channel std)",
                f"image is blank or near-uniform (largest channel std {rep.channel_std_max:.2f} grey levels)",
            )
        )
        if rep.channel_std_max >= cfg.blank_std:  # a blank image has no edges, tones or noise to judge
            checks += pixel_checks(rep, cfg, notes)
        folded = fold_checks(checks, ignored)
        notes.append(
            f"edge sharpness {rep.edge_sharpness if rep.edge_sharpness is None else round(rep.edge_sharpness, 2)}, "
            f"noise σ {rep.noise_sigma:.2f}, blockiness {rep.blockiness:.2f}, false contours {rep.false_contours:.2f}, tones {rep.black_point:.0f}–"
            f"{rep.white_point:.0f}, channel std {rep.channel_std_max:.1f}"
        )
        if ignored:
            notes.append("ignored by the rubric: " + ", ".join(sorted(ignored)))
        passed = not folded.issues
        evaluated = [k for k, v in folded.subs.items() if "ignored" not in v]
        margins = list(folded.margins.values())
        decisive = min(margins, default=1.0) if passed else max(-m for m in margins if m < 0)
        return self.result(
            passed=passed,
            confidence=confidence_from_margin(decisive, cfg.confidence_scale),
            reasoning=f"all {len(evaluated)} pixel checks passed"
            if passed
            else "; ".join(i.detail for i in folded.issues),
            score=round(sum(folded.subs[k]["passed"] for k in evaluated) / len(evaluated), 4) if evaluated else 1.0,
            threshold=1.0,
            evidence=notes,
            sub_point_results=folded.subs,
            sub_points_evaluated=len(evaluated),
            issues=folded.issues,
            strengths=["sharp"] if passed and "sharpness" in folded.subs else [],
            measurements=folded.measurements,
            decision_rule="all",
        )
