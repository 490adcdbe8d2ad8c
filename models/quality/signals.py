"""Cheap pixel signals, measured where they mean something, in torch on the working copy.

- **content**: ``textured_fraction``, the share of pixels whose local standard deviation
  (7-tap Gaussian window, sigma 7/6) is at least ``TEXTURE_STD`` grey levels. Camera
  photos are textured almost everywhere (grain, surfaces); flat illustrations, icons,
  posters, line art, screenshots and smooth renders are mostly flat or smooth. The
  judges use it to decide whether natural-scene statistics apply at all.
- **edge sharpness** (a re-blur focus measure after Crété-Roffet et al. 2007, taken only
  on edges): at ridge pixels of the gradient of a Gaussian-smoothed copy (sigma 7/6) whose
  gradient is at least ``EDGE_MIN_GRADIENT``, the ratio of the largest forward-difference
  gradient in the 3×3 neighbourhood to the smoothed gradient. An ideal step edge gives
  about 2.9, an edge already blurred by sigma 1 about 1.5, by sigma 2 about 1.2. Flat
  regions contribute nothing, so a plain background is never "blur"; an image with too
  few edges has no sharpness value at all (``edge_pixels`` says how many were found).
  Edges must also stand ``EDGE_NOISE_FACTOR`` times above the noise, so grain on a
  blurred image does not pass for crisp edges.
- **noise**: Immerkær's (1996) estimate, strongest-gradient 10% left out (Tai & Yang).
- **exposure**: ``subject_luma``, the mean luma of the textured pixels (the subject and
  its edges, not a uniform background); and the plain clipped fractions for evidence.
- **banding** (``false_contours``): posterisation seen as a staircase. Along every row
  and column of each colour channel, a *false contour* is a jump of at least
  ``CONTOUR_MIN_STEP`` levels between two plateaus (the two differences on each side
  are at most ``CONTOUR_FLAT`` levels) whose next change along the line, within
  ``CONTOUR_MAX_GAP`` pixels of plateau, is another such jump of the same sign and a
  similar size: a smooth ramp rendered in equal steps. A continuous 8-bit ramp moves by
  0–1 levels per pixel (no jumps); a designed edge between two solid fills is a single
  jump (anti-aliased, or with a different jump after it), and texture or grain leaves no
  plateaus — so flat graphics, clean gradients and photos stay near zero. Pairs of jumps
  that both sit on the JPEG 8×8 grid are blocking, left to ``blockiness``. Reported per
  1,000 pixel-channels (both directions counted).
- **blockiness**: JPEG 8×8 grid step ratio. **colourfulness** (Hasler & Süsstrunk),
  **contrast**, **channel_std_max** (blank detection), **mean_luma**.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image

from imagejury.models.interfaces import QualityScore
from imagejury.models.quality import nss
from imagejury.models.quality.working import DEFAULT_MAX_SIDE, WorkingCopy, as_working_copies

TEXTURE_STD = 1.5  # grey levels of local std from which a pixel counts as textured
EDGE_MIN_GRADIENT = 3.0  # grey levels per pixel of the smoothed image at an edge
EDGE_NOISE_FACTOR = 4.0  # ...and at least this many times the noise σ, so noise cannot pose as sharpness
MIN_EDGE_PIXELS = 64  # fewer edge pixels than this: sharpness is not measured
CONTOUR_MIN_STEP = 4.0  # levels: smallest jump counted as a false contour (an 8-bit ramp moves 0-1)
CONTOUR_FLAT = 1.0  # levels: largest difference inside a plateau
CONTOUR_MAX_GAP = 256  # pixels: farthest the next step of a staircase may be
CONTOUR_SIZE_RATIO = 1.5  # consecutive steps of a staircase differ by at most this factor
BLOCK_STEP_CAP = 24.0  # grey levels: larger steps are drawn edges, not block seams
BLOCK_STEP_FLOOR = 0.1  # grey levels added to both means of the blockiness ratio
DARK_LEVEL = 3  # luma at or below: crushed shadows
BRIGHT_LEVEL = 252  # luma at or above: blown highlights
# Immerkær's mask: sum of squared taps 36, so for white noise of std s, E|I*M| = 6 s sqrt(2/pi)
_IMMERKAER = ((1.0, -2.0, 1.0), (-2.0, 4.0, -2.0), (1.0, -2.0, 1.0))
_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))


def _conv3(gray: torch.Tensor, kernel: tuple[tuple[float, ...], ...]) -> torch.Tensor:
    """``(H, W)`` correlated with a 3×3 kernel, valid region ``(H-2, W-2)``."""
    k = torch.tensor(kernel, dtype=gray.dtype, device=gray.device).view(1, 1, 3, 3)
    return F.conv2d(gray[None, None], k)[0, 0]


def local_std(gray: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian-weighted local mean and standard deviation (the MSCN window, replicate)."""
    taps = torch.as_tensor(nss.gaussian_taps(), dtype=gray.dtype, device=gray.device)
    mu = nss._blur(gray[None], taps, "replicate")[0]
    sq = nss._blur((gray * gray)[None], taps, "replicate")[0]
    return mu, torch.sqrt(torch.clamp(sq - mu * mu, min=0.0))


def _forward_gradient(x: torch.Tensor) -> torch.Tensor:
    """Magnitude of forward differences, ``(H-1, W-1)``."""
    dx = x[:-1, 1:] - x[:-1, :-1]
    dy = x[1:, :-1] - x[:-1, :-1]
    return torch.sqrt(dx * dx + dy * dy)


def edge_sharpness(
    gray: torch.Tensor, smooth: torch.Tensor, min_gradient: float = EDGE_MIN_GRADIENT
) -> tuple[float | None, int]:
    """Median re-blur ratio over edge ridge pixels (smoothed gradient ≥ ``min_gradient``),
    and how many there were."""
    if min(gray.shape) < 8:
        return None, 0
    g = _forward_gradient(gray)
    gb = _forward_gradient(smooth)
    local_max_g = F.max_pool2d(g[None, None], 3, stride=1, padding=1)[0, 0]
    ridge = gb >= F.max_pool2d(gb[None, None], 3, stride=1, padding=1)[0, 0]
    edges = ridge & (gb >= min_gradient)
    edges[:2, :] = False
    edges[-2:, :] = False
    edges[:, :2] = False
    edges[:, -2:] = False
    n = int(edges.sum())
    if n < MIN_EDGE_PIXELS:
        return None, n
    ratio = local_max_g[edges] / gb[edges]
    return float(ratio.median()), n


def noise_sigma(gray: torch.Tensor, edge_fraction: float = 0.1) -> float:
    """Gaussian noise standard deviation in grey levels (Immerkær 1996).

    ``sigma = sqrt(pi/2) · mean(|I * M|) / 6``; textured edges inflate the estimate, so
    the ``edge_fraction`` pixels with the strongest Sobel gradient are left out first.
    """
    if min(gray.shape) < 3:
        return 0.0
    resp = _conv3(gray, _IMMERKAER).abs()
    if edge_fraction > 0:
        gx = _conv3(gray, _SOBEL_X)
        gy = _conv3(gray.T.contiguous(), _SOBEL_X).T
        mag = torch.sqrt(gx * gx + gy * gy).flatten()
        k = max(1, int(math.ceil((1.0 - edge_fraction) * mag.numel())))
        cut = torch.kthvalue(mag.cpu(), k).values.to(mag.device)
        keep = mag <= cut
        resp = resp.flatten()[keep] if bool(keep.any()) else resp
    return float(math.sqrt(math.pi / 2.0) * resp.mean() / 6.0)


def blockiness(gray: torch.Tensor, block: int = 8) -> float:
    """JPEG blocking: mean |step| across 8×8 grid lines / mean |step| elsewhere (1.0: none).

    Steps are capped at ``BLOCK_STEP_CAP`` grey levels so that a few strong drawn edges
    (graphics) do not decide the ratio; a floor of ``BLOCK_STEP_FLOOR`` keeps flat images
    (both means near zero) at 1.
    """
    h, w = gray.shape
    if h < 2 * block or w < 2 * block:
        return 1.0
    dx = (gray[:, 1:] - gray[:, :-1]).abs().clamp(max=BLOCK_STEP_CAP)
    dy = (gray[1:, :] - gray[:-1, :]).abs().clamp(max=BLOCK_STEP_CAP)
    col_on = (torch.arange(dx.shape[1], device=gray.device) % block) == block - 1
    row_on = (torch.arange(dy.shape[0], device=gray.device) % block) == block - 1
    on = torch.cat([dx[:, col_on].flatten(), dy[row_on, :].flatten()])
    off = torch.cat([dx[:, ~col_on].flatten(), dy[~row_on, :].flatten()])
    return float((on.mean() + BLOCK_STEP_FLOOR) / (off.mean() + BLOCK_STEP_FLOOR))


def _staircase_steps(lines: torch.Tensor) -> int:
    """False contours along the rows of ``lines`` ``(N, W)``: see the module docstring."""
    n, w = lines.shape
    if w < 6:
        return 0
    d = lines[:, 1:] - lines[:, :-1]
    size = d.abs()
    m = w - 1
    busy = size > CONTOUR_FLAT  # any change larger than a plateau's wobble
    quiet = F.pad((~busy).to(torch.uint8), (2, 2), value=0).bool()
    step = (size >= CONTOUR_MIN_STEP) & quiet[:, 0:m] & quiet[:, 1 : m + 1] & quiet[:, 3 : m + 3] & quiet[:, 4 : m + 4]
    # index of the next busy position strictly after each position (m + gap when none)
    none = m + CONTOUR_MAX_GAP + 1
    pos = torch.arange(m, device=lines.device).expand(n, m)
    busy_at = torch.where(busy, pos, torch.full_like(pos, none))
    next_busy = torch.flip(torch.cummin(torch.flip(busy_at, [1]), 1).values, [1])
    after = torch.cat([next_busy[:, 1:], torch.full((n, 1), none, device=lines.device, dtype=pos.dtype)], 1)
    j = after.clamp(max=m - 1)
    d_next, step_next = torch.gather(d, 1, j), torch.gather(step, 1, j)
    size_next = d_next.abs()
    stair = (
        step
        & (after - pos <= CONTOUR_MAX_GAP)
        & step_next
        & (torch.sign(d_next) == torch.sign(d))
        & (size_next <= CONTOUR_SIZE_RATIO * size)
        & (size <= CONTOUR_SIZE_RATIO * size_next)
        & ~((pos % 8 == 7) & (j % 8 == 7))  # both on the JPEG 8×8 grid: blocking, judged by blockiness
    )
    return int(stair.sum())


def false_contours(rgb: torch.Tensor) -> float:
    """Banding: false-contour steps per 1,000 pixel-channels, rows and columns together."""
    _, h, w = rgb.shape
    steps = _staircase_steps(rgb.reshape(-1, w)) + _staircase_steps(rgb.transpose(1, 2).reshape(-1, h))
    return 1000.0 * steps / max(1, rgb.numel())


def colourfulness(rgb: torch.Tensor) -> float:
    """Hasler & Süsstrunk (2003) colourfulness M (≈0 grey, ~33 moderate, >60 very colourful)."""
    r, g, b = rgb[0], rgb[1], rgb[2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    return float(
        math.hypot(float(rg.std(unbiased=False)), float(yb.std(unbiased=False)))
        + 0.3 * math.hypot(float(rg.mean()), float(yb.mean()))
    )


@dataclass(frozen=True)
class SignalReport:
    """All cheap signals of one image, measured once on its working copy."""

    working_size: tuple[int, int]
    textured_fraction: float  # share of pixels with local std >= TEXTURE_STD (content check)
    edge_sharpness: float | None  # median re-blur ratio at edges; None: too few edges
    edge_pixels: int
    noise_sigma: float  # grey levels, at the working size
    subject_luma: float  # mean luma of the textured pixels (all pixels when none)
    dark_fraction: float
    bright_fraction: float
    blockiness: float
    colourfulness: float
    contrast: float  # standard deviation of luma
    channel_std_max: float  # largest per-channel standard deviation (blank detection)
    mean_luma: float
    black_point: float  # 0.5th percentile of luma: washed-out images lose their darks
    white_point: float  # 99.5th percentile of luma: under-exposed images lose their lights
    soft_clip: float  # share of the border of blown regions that fades into them (230–251)
    false_contours: float = 0.0  # banding: staircase steps per 1,000 pixel-channels


def percentile(gray: torch.Tensor, q: float) -> float:
    flat = gray.flatten().cpu()
    k = min(flat.numel(), max(1, int(round(q * flat.numel()))))
    return float(torch.kthvalue(flat, k).values)


def soft_clip(gray: torch.Tensor) -> float:
    """Of the pixels bordering blown highlights, the share that is nearly white (230–251).

    Where over-exposure clips a smooth tone or a texture, the clipped area fades into its
    surroundings; a white background meets its subject at a crisp edge instead.
    """
    blown = (gray >= BRIGHT_LEVEL).to(gray.dtype)
    near = F.max_pool2d(blown[None, None], 3, stride=1, padding=1)[0, 0] > 0
    border = near & (gray < BRIGHT_LEVEL)
    n = int(border.sum())
    if n == 0:
        return 0.0
    return float((gray[border] >= 230).to(gray.dtype).mean())


def measure_copy(copy: WorkingCopy) -> SignalReport:
    """Every signal of one working copy (in float32: these are not reference algorithms
    whose published numbers must be reproduced, and float32 kernels are several times faster)."""
    gray, rgb = copy.gray.to(torch.float32), copy.rgb.to(torch.float32)
    smooth, std = local_std(gray)
    textured = std >= TEXTURE_STD
    n_textured = int(textured.sum())
    noise = noise_sigma(gray)
    sharp, n_edges = edge_sharpness(gray, smooth, max(EDGE_MIN_GRADIENT, EDGE_NOISE_FACTOR * noise))
    return SignalReport(
        working_size=copy.size,
        textured_fraction=n_textured / gray.numel(),
        edge_sharpness=sharp,
        edge_pixels=n_edges,
        noise_sigma=noise,
        subject_luma=float(gray[textured].mean()) if n_textured else float(gray.mean()),
        dark_fraction=float((gray <= DARK_LEVEL).to(gray.dtype).mean()),
        bright_fraction=float((gray >= BRIGHT_LEVEL).to(gray.dtype).mean()),
        blockiness=blockiness(gray),
        colourfulness=colourfulness(rgb),
        contrast=float(gray.std(unbiased=False)),
        channel_std_max=float(rgb.flatten(1).std(dim=1, unbiased=False).max()),
        mean_luma=float(gray.mean()),
        black_point=percentile(gray, 0.005),
        white_point=percentile(gray, 0.995),
        soft_clip=soft_clip(gray),
        false_contours=false_contours(rgb),
    )


def measure(image: Image.Image | WorkingCopy, max_side: int | None = DEFAULT_MAX_SIDE) -> SignalReport:
    """Measure every signal of one image (or ready working copy)."""
    return measure_copy(as_working_copies([image], max_side)[0])


class SignalScorer:
    """One signal as a ``QualityScorer``; ``details`` carries the whole report."""

    def __init__(
        self,
        name: str,
        field: str,
        higher_is_better: bool,
        range_: tuple[float, float],
        max_side: int | None = DEFAULT_MAX_SIDE,
        device: str = "cpu",
    ) -> None:
        self.device = device
        self.name = name
        self.field = field
        self.higher_is_better = higher_is_better
        self.range = range_
        self.max_side = max_side
        self.where = "built in (no parameters)"

    def value(self, report: SignalReport) -> float:
        if self.field == "clipped_fraction":
            return report.dark_fraction + report.bright_fraction
        v = getattr(report, self.field)
        return float("nan") if v is None else float(v)

    def score(self, images: Sequence[Image.Image | WorkingCopy]) -> list[QualityScore]:
        out = []
        for copy in as_working_copies(images, self.max_side, self.device):
            rep = measure_copy(copy)
            details = {k: (list(v) if isinstance(v, tuple) else v) for k, v in rep.__dict__.items()}
            out.append(QualityScore(self.name, self.value(rep), self.higher_is_better, self.range, details))
        return out


# name -> (report field, higher_is_better, nominal range)
SIGNALS: dict[str, tuple[str, bool, tuple[float, float]]] = {
    "sharpness": ("edge_sharpness", True, (1.0, 4.0)),  # re-blur ratio at edges
    "noise": ("noise_sigma", False, (0.0, 100.0)),  # grey levels, at the working size
    "clipping": ("clipped_fraction", False, (0.0, 1.0)),
    "blockiness": ("blockiness", False, (0.5, 5.0)),
    "banding": ("false_contours", False, (0.0, 50.0)),  # false-contour steps per 1,000 pixel-channels
    "colourfulness": ("colourfulness", True, (0.0, 150.0)),
    "contrast": ("contrast", True, (0.0, 127.5)),
}


def signal_scorer(name: str, max_side: int | None = DEFAULT_MAX_SIDE, device: str = "cpu") -> SignalScorer:
    if name not in SIGNALS:
        raise ValueError(f"unknown signal '{name}' (known: {', '.join(SIGNALS)})")
    field, hib, rng = SIGNALS[name]
    return SignalScorer(name, field, hib, rng, max_side, device)


class AllSignalsScorer:
    """Every signal in one pass: the judges ask the feature cache for this once per image.

    The score's ``value`` is the edge sharpness (NaN when there are too few edges); the
    full report is in ``details`` (use ``report_from_score`` to read it back).
    """

    name = "signals"
    higher_is_better = True
    range = (1.0, 4.0)

    def __init__(self, max_side: int | None = DEFAULT_MAX_SIDE, device: str = "cpu") -> None:
        self.max_side = max_side
        self.device = device
        self.where = "built in (no parameters)"

    def score(self, images: Sequence[Image.Image | WorkingCopy]) -> list[QualityScore]:
        out = []
        for copy in as_working_copies(images, self.max_side, self.device):
            rep = measure_copy(copy)
            value = float("nan") if rep.edge_sharpness is None else rep.edge_sharpness
            out.append(QualityScore(self.name, value, True, self.range, {"report": rep}))
        return out


def report_from_score(score: QualityScore) -> SignalReport:
    rep = score.details.get("report")
    if not isinstance(rep, SignalReport):
        raise TypeError("this QualityScore was not made by the 'signals' scorer")
    return rep
