"""Cheap pixel signals: sharpness, noise, exposure clipping, JPEG blockiness,
colourfulness and contrast. No weights; each runs in a few milliseconds at 1k px.

All are measured on a working copy whose longer side is at most ``max_side`` (1024 by
default, LANCZOS); sharpness is also reported at a canonical 512 px longer side so
that values compare across resolutions (variance of the Laplacian grows when an image
is shrunk, because the same edges span fewer pixels). Images smaller than 512 px are
not enlarged, so their "512" values are their native ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from imagejury.models.interfaces import QualityScore
from imagejury.models.quality._common import DEFAULT_MAX_SIDE, gray255, to_rgb, working_copy

CANONICAL_SIDE = 512
# Immerkær's mask; for white noise of variance s², the 4-neighbour Laplacian
# [[0,1,0],[1,-4,1],[0,1,0]] has output variance 20·s² (sum of squared taps).
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
_LAPLACIAN_NOISE_GAIN = 20.0
DARK_LEVEL = 3  # luma at or below: crushed shadows
BRIGHT_LEVEL = 252  # luma at or above: blown highlights


def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian (Pech-Pacheco et al. 2000)."""
    if min(gray.shape) < 3:
        return 0.0
    return float(ndimage.laplace(gray, mode="reflect")[1:-1, 1:-1].var())


def noise_sigma(gray: np.ndarray, edge_fraction: float = 0.1) -> float:
    """Gaussian noise standard deviation in grey levels (Immerkær 1996).

    ``sigma = sqrt(pi/2) · mean(|I * M|) / 6`` over pixels. Textured edges inflate the
    estimate, so the ``edge_fraction`` pixels with the strongest Sobel gradient are left
    out first (Tai & Yang 2008).
    """
    if min(gray.shape) < 3:
        return 0.0
    resp = np.abs(ndimage.correlate(gray, _IMMERKAER, mode="reflect"))[1:-1, 1:-1]
    if edge_fraction > 0:
        gx = ndimage.sobel(gray, axis=1, mode="reflect")[1:-1, 1:-1]
        gy = ndimage.sobel(gray, axis=0, mode="reflect")[1:-1, 1:-1]
        mag = np.hypot(gx, gy)
        keep = mag <= np.quantile(mag, 1.0 - edge_fraction)
        resp = resp[keep] if keep.any() else resp
    return float(math.sqrt(math.pi / 2.0) * resp.mean() / 6.0)


def clipping(gray: np.ndarray) -> tuple[float, float]:
    """Fractions of pixels at or below ``DARK_LEVEL`` and at or above ``BRIGHT_LEVEL``."""
    g = np.round(gray)
    return float((g <= DARK_LEVEL).mean()), float((g >= BRIGHT_LEVEL).mean())


def blockiness(gray: np.ndarray, block: int = 8) -> float:
    """JPEG blocking: mean |step| across 8×8 grid lines / mean |step| elsewhere.

    1.0 means no grid structure; JPEG at low quality gives 1.5–3+. Both directions are
    pooled; the grid is assumed aligned with the top-left corner (as JPEG's is).
    """
    h, w = gray.shape
    if h < 2 * block or w < 2 * block:
        return 1.0
    dx = np.abs(np.diff(gray, axis=1))  # dx[:, j] is the step between columns j and j+1
    dy = np.abs(np.diff(gray, axis=0))
    col_on = (np.arange(dx.shape[1]) % block) == block - 1
    row_on = (np.arange(dy.shape[0]) % block) == block - 1
    on = np.concatenate([dx[:, col_on].ravel(), dy[row_on, :].ravel()])
    off = np.concatenate([dx[:, ~col_on].ravel(), dy[~row_on, :].ravel()])
    return float((on.mean() + 1e-3) / (off.mean() + 1e-3))


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Süsstrunk (2003) colourfulness M (≈0 grey, ~33 moderate, >60 very colourful)."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    rg = r - g
    yb = 0.5 * (r + g) - b
    return float(math.hypot(rg.std(), yb.std()) + 0.3 * math.hypot(rg.mean(), yb.mean()))


@dataclass(frozen=True)
class SignalReport:
    """All cheap signals of one image, measured once."""

    working_size: tuple[int, int]
    laplacian_var: float  # at the working size
    laplacian_var_512: float  # at a 512 px longer side (resolution-normalised)
    noise_sigma: float  # grey levels, at the working size
    noise_sigma_512: float
    sharpness: float  # laplacian_var_512 minus the noise's expected share, >= 0
    dark_fraction: float
    bright_fraction: float
    blockiness: float
    colourfulness: float
    contrast: float  # standard deviation of luma
    channel_std_max: float  # largest per-channel standard deviation (blank detection)
    mean_luma: float


def _canonical(image: Image.Image) -> Image.Image:
    """Shrink to a 512 px longer side; smaller images stay as they are (enlarging would
    smooth them and fake blur, and would hide noise)."""
    return working_copy(image, CANONICAL_SIDE)


def measure(image: Image.Image, max_side: int | None = DEFAULT_MAX_SIDE) -> SignalReport:
    """Measure every signal of one image."""
    work = working_copy(to_rgb(image), max_side)
    rgb = np.asarray(work)
    gray = gray255(work)
    lv, ns = laplacian_variance(gray), noise_sigma(gray)
    canonical = _canonical(work)
    if canonical.size == work.size:  # already at most 512 px: same numbers, measured once
        lv512, ns512 = lv, ns
    else:
        gray512 = gray255(canonical)
        lv512, ns512 = laplacian_variance(gray512), noise_sigma(gray512)
    dark, bright = clipping(gray)
    return SignalReport(
        working_size=work.size,
        laplacian_var=lv,
        laplacian_var_512=lv512,
        noise_sigma=ns,
        noise_sigma_512=ns512,
        sharpness=max(0.0, lv512 - _LAPLACIAN_NOISE_GAIN * ns512 * ns512),
        dark_fraction=dark,
        bright_fraction=bright,
        blockiness=blockiness(gray),
        colourfulness=colourfulness(rgb),
        contrast=float(gray.std()),
        channel_std_max=float(rgb.reshape(-1, 3).std(axis=0).max()),
        mean_luma=float(gray.mean()),
    )


class SignalScorer:
    """One signal as a ``QualityScorer``; ``details`` carries the whole report."""

    def __init__(
        self,
        name: str,
        field: str,
        higher_is_better: bool,
        range_: tuple[float, float],
        max_side: int | None = DEFAULT_MAX_SIDE,
    ) -> None:
        self.name = name
        self.field = field
        self.higher_is_better = higher_is_better
        self.range = range_
        self.max_side = max_side
        self.where = "built in (no parameters)"

    def value(self, report: SignalReport) -> float:
        if self.field == "clipped_fraction":
            return report.dark_fraction + report.bright_fraction
        return float(getattr(report, self.field))

    def score(self, images: Sequence[Image.Image]) -> list[QualityScore]:
        out = []
        for image in images:
            rep = measure(image, self.max_side)
            details = {k: (list(v) if isinstance(v, tuple) else v) for k, v in rep.__dict__.items()}
            out.append(QualityScore(self.name, self.value(rep), self.higher_is_better, self.range, details))
        return out


# name -> (report field, higher_is_better, nominal range)
SIGNALS: dict[str, tuple[str, bool, tuple[float, float]]] = {
    "sharpness": ("sharpness", True, (0.0, 10000.0)),  # noise-corrected var of Laplacian @512
    "noise": ("noise_sigma", False, (0.0, 100.0)),  # grey levels, at the working size
    "clipping": ("clipped_fraction", False, (0.0, 1.0)),
    "blockiness": ("blockiness", False, (0.5, 5.0)),
    "colourfulness": ("colourfulness", True, (0.0, 150.0)),
    "contrast": ("contrast", True, (0.0, 127.5)),
}


def signal_scorer(name: str, max_side: int | None = DEFAULT_MAX_SIDE) -> SignalScorer:
    if name not in SIGNALS:
        raise ValueError(f"unknown signal '{name}' (known: {', '.join(SIGNALS)})")
    field, hib, rng = SIGNALS[name]
    return SignalScorer(name, field, hib, rng, max_side)


def signals_scorer(max_side: int | None = DEFAULT_MAX_SIDE) -> AllSignalsScorer:
    return AllSignalsScorer(max_side)


class AllSignalsScorer:
    """Every signal in one pass: the judges ask the feature cache for this once per image.

    The score's ``value`` is the noise-corrected sharpness; the full report is in
    ``details`` (use ``report_from_score`` to read it back).
    """

    name = "signals"
    higher_is_better = True
    range = (0.0, 10000.0)

    def __init__(self, max_side: int | None = DEFAULT_MAX_SIDE) -> None:
        self.max_side = max_side
        self.where = "built in (no parameters)"

    def score(self, images: Sequence[Image.Image]) -> list[QualityScore]:
        out = []
        for image in images:
            rep = measure(image, self.max_side)
            out.append(QualityScore(self.name, rep.sharpness, True, self.range, {"report": rep}))
        return out


def report_from_score(score: QualityScore) -> SignalReport:
    rep = score.details.get("report")
    if not isinstance(rep, SignalReport):
        raise TypeError("this QualityScore was not made by the 'signals' scorer")
    return rep
