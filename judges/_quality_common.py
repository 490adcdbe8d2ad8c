"""Pieces the two technical judges share: the signals cache call, attribute parsing,
and the mapping from rubric words to the defects they switch off."""

from __future__ import annotations

import re
from typing import Any, Sequence

from judges.types import JudgeItem
from models.quality.signals import AllSignalsScorer, SignalReport, report_from_score

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
    words = {w.lower().strip() for w in item.directives.ignore}
    return {defect for defect, aliases in IGNORE_ALIASES.items() if words & aliases}


def signal_reports(batch: Sequence[JudgeItem]) -> list[SignalReport]:
    """The signal report of every item, through the shared feature cache."""
    out: list[SignalReport] = []
    for item in batch:
        (score,) = item.features.quality(SIGNALS, [item.image_key], [item.image])
        out.append(report_from_score(score))
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
    width = parse_pixels(attributes["width"], "width") if attributes.get("width") not in (None, "") else None
    height = parse_pixels(attributes["height"], "height") if attributes.get("height") not in (None, "") else None
    for key in ("resolution", "size"):
        raw = attributes.get(key)
        if raw in (None, "") or (width is not None and height is not None):
            continue
        m = _SIZE.match(str(raw))
        if m:
            width = width if width is not None else int(m.group(1))
            height = height if height is not None else int(m.group(2))
    return width, height
