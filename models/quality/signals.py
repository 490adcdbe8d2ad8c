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


def _max3x3_interior(x: torch.Tensor) -> torch.Tensor:
    """Largest value of each interior pixel's 3×3 neighbourhood, ``(H-2, W-2)``: two
    separable passes of shifted maxima (a CPU ``max_pool2d`` is ten times slower)."""
    rows = torch.maximum(torch.maximum(x[:, :-2], x[:, 1:-1]), x[:, 2:])
    return torch.maximum(torch.maximum(rows[:-2], rows[1:-1]), rows[2:])


def _forward_gradient_sq(x: torch.Tensor) -> torch.Tensor:
    """Squared magnitude of forward differences, ``(H-1, W-1)``."""
    dx = x[:-1, 1:] - x[:-1, :-1]
    dy = x[1:, :-1] - x[:-1, :-1]
    return dx.mul_(dx).addcmul_(dy, dy)


def edge_sharpness(
    gray: torch.Tensor, smooth: torch.Tensor, min_gradient: float = EDGE_MIN_GRADIENT
) -> tuple[float | None, int]:
    """Median re-blur ratio over edge ridge pixels (smoothed gradient ≥ ``min_gradient``),
    and how many there were.

    Works on squared gradients (same order, no square roots over the image), a band of
    rows at a time, and only where edges may lie: two pixels in from every side of the
    gradient grid, so the 3×3 maxima never need padding. The sharp image's gradients are
    read around the edge pixels only.
    """
    h, w = gray.shape
    if min(h, w) < 8:
        return None, 0
    ratios, n = [], 0
    step = nss.band_rows(gray, w)
    for r0 in range(2, h - 3, step):  # rows r0 .. r1-1 of the (h-1, w-1) gradient grid
        r1 = min(h - 3, r0 + step)
        gb2 = _forward_gradient_sq(smooth[r0 - 1 : r1 + 2])  # grid rows r0-1 .. r1
        centre = gb2[1:-1, 2:-2]
        # a ridge (the 3×3 maximum) and strong enough, in one comparison
        edges = centre >= _max3x3_interior(gb2)[:, 1:-1].clamp_(min=min_gradient * min_gradient)
        rows, cols = edges.nonzero(as_tuple=True)
        if len(rows) == 0:
            continue
        n += len(rows)
        g2 = _forward_gradient_sq(gray[r0 - 1 : r1 + 2])
        local_max = torch.stack([g2[rows + dy, cols + 1 + dx] for dy in range(3) for dx in range(3)]).amax(0)
        ratios.append(torch.sqrt(local_max / centre[rows, cols]))
    if n < MIN_EDGE_PIXELS:
        return None, n
    return float(torch.cat(ratios).median()), n


_COUNT_CAP = 1 << 16  # squared Sobel magnitude 256²: most images' 90th percentile is far below
# Immerkær's mask [[1 -2 1] [-2 4 -2] [1 -2 1]] has squared taps summing to 36, so for white
# noise of std s, E|I * M| = 6 s sqrt(2/pi): sigma = sqrt(pi/2) · mean|I * M| / 6
_NOISE_SCALE = math.sqrt(math.pi / 2.0) / 6.0


def _immerkaer_and_sobel(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``|I * M|`` (Immerkær's mask) and the squared Sobel magnitude on the valid part of
    ``rows`` ``(h, w)``: both ``(h-2, w-2)``. Both 3×3 masks are separable: two 3-tap
    passes each, sharing the vertical sum of the outer rows."""
    outer = rows[:-2] + rows[2:]
    v = outer - 2.0 * rows[1:-1]
    resp = (v[:, :-2] + v[:, 2:]).sub_(v[:, 1:-1], alpha=2.0).abs_()
    across = outer.add_(rows[1:-1], alpha=2.0)  # Sobel x: smooth down, differ across
    down = (rows[:, :-2] + rows[:, 2:]).add_(rows[:, 1:-1], alpha=2.0)  # Sobel y: smooth across, differ down
    gx = across[:, 2:] - across[:, :-2]
    gy = down[2:] - down[:-2]
    return resp, gx.mul_(gx).addcmul_(gy, gy)


def _noise_by_counting(gray: torch.Tensor, keep: int) -> float | None:
    """Immerkær's mean over the ``keep`` pixels of weakest Sobel gradient, for a ``gray``
    holding whole grey levels: squared gradients are then integers, so one pass of bands
    counts each value (below ``_COUNT_CAP``) and sums the responses per value, and the
    cut and the kept sum are read off running totals. None when the cut lies at the cap."""
    counts = torch.zeros(_COUNT_CAP + 1, dtype=torch.int64, device=gray.device)
    sums = torch.zeros(_COUNT_CAP + 1, dtype=torch.float64, device=gray.device)
    h, w = gray.shape
    step = nss.band_rows(gray, w)
    for r0 in range(0, h - 2, step):
        resp, mag2 = _immerkaer_and_sobel(gray[r0 : min(h, r0 + step + 2)])
        values = mag2.flatten().to(torch.int32).clamp_(max=_COUNT_CAP)
        counts += torch.bincount(values, minlength=_COUNT_CAP + 1)
        sums += torch.bincount(values, weights=resp.flatten().to(torch.float64), minlength=_COUNT_CAP + 1)
    running = torch.cumsum(counts, 0)
    cut = int(torch.searchsorted(running, torch.tensor([keep], device=gray.device)).item())
    if cut >= _COUNT_CAP:
        return None
    return _NOISE_SCALE * float(torch.cumsum(sums, 0)[cut]) / int(running[cut])


def noise_sigma(gray: torch.Tensor, edge_fraction: float = 0.1, integers: bool = False) -> float:
    """Gaussian noise standard deviation in grey levels (Immerkær 1996).

    ``sigma = sqrt(pi/2) · mean(|I * M|) / 6``; textured edges inflate the estimate, so
    the ``edge_fraction`` pixels with the strongest Sobel gradient are left out first
    (ties at the cut are kept). ``integers``: ``gray`` holds whole grey levels (a working
    copy's does), which allows the fast exact path of ``_noise_by_counting``.
    """
    if min(gray.shape) < 3:
        return 0.0
    if edge_fraction > 0 and integers:
        n = (gray.shape[0] - 2) * (gray.shape[1] - 2)
        counted = _noise_by_counting(gray, max(1, int(math.ceil((1.0 - edge_fraction) * n))))
        if counted is not None:
            return counted
    resp, mag2 = _immerkaer_and_sobel(gray)
    if edge_fraction > 0:
        k = max(1, int(math.ceil((1.0 - edge_fraction) * mag2.numel())))
        cut = float(torch.kthvalue(mag2.flatten().cpu(), k).values)
        keep = mag2 <= cut
        return _NOISE_SCALE * float((resp * keep).sum()) / int(keep.sum())
    return _NOISE_SCALE * float(resp.mean())


def blockiness(gray: torch.Tensor, block: int = 8) -> float:
    """JPEG blocking: mean |step| across 8×8 grid lines / mean |step| elsewhere (1.0: none).

    Steps are capped at ``BLOCK_STEP_CAP`` grey levels so that a few strong drawn edges
    (graphics) do not decide the ratio; a floor of ``BLOCK_STEP_FLOOR`` keeps flat images
    (both means near zero) at 1.
    """
    h, w = gray.shape
    if h < 2 * block or w < 2 * block:
        return 1.0
    dx = (gray[:, 1:] - gray[:, :-1]).abs_().clamp_(max=BLOCK_STEP_CAP)
    dy = (gray[1:, :] - gray[:-1, :]).abs_().clamp_(max=BLOCK_STEP_CAP)
    on_x, on_y = dx[:, block - 1 :: block], dy[block - 1 :: block, :]
    on_sum = float(on_x.sum()) + float(on_y.sum())
    on_n = on_x.numel() + on_y.numel()
    off_sum = float(dx.sum()) + float(dy.sum()) - on_sum
    off_n = dx.numel() + dy.numel() - on_n
    return (on_sum / on_n + BLOCK_STEP_FLOOR) / (off_sum / off_n + BLOCK_STEP_FLOOR)


def _beyond(size: torch.Tensor, limit: int) -> torch.Tensor:
    """``1`` where the ``uint8`` ``size`` is more than ``limit``, else ``0``, in ``uint8``
    arithmetic: clamped into ``[limit, limit + 1]`` and shifted down by ``limit``. (A
    comparison writing ``bool`` costs several times as much on CPU.)"""
    return size.clamp(min=limit, max=limit + 1).sub_(limit)


def _step_masks(planes: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Along ``dim`` of ``(C, H, W)`` ``uint8`` planes, as ``uint8`` 0/1 masks: where the
    difference between neighbours is *busy* (more than a plateau's wobble) and where it
    is a *step* (a jump of ``CONTOUR_MIN_STEP`` with two quiet differences on each side,
    inside the line). Sizes are ``max - min`` in ``uint8``; no signs are needed yet."""
    m = planes.shape[dim] - 1
    after, before = planes.narrow(dim, 1, m), planes.narrow(dim, 0, m)
    size = torch.maximum(after, before).sub_(torch.minimum(after, before))
    busy = _beyond(size, math.floor(CONTOUR_FLAT))
    quiet = busy ^ 1
    step = torch.zeros_like(busy)
    core = step.narrow(dim, 2, m - 4)
    core.copy_(_beyond(size.narrow(dim, 2, m - 4), math.ceil(CONTOUR_MIN_STEP) - 1))
    for offset in (0, 1, 3, 4):
        core &= quiet.narrow(dim, offset, m - 4)
    return busy, step


def _difference_at(planes: torch.Tensor, dim: int, c: torch.Tensor, o: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Signed difference ``x[p + 1] - x[p]`` along ``dim`` on line ``(c, o)`` of ``planes``."""
    if dim == 2:
        hi, lo = planes[c, o, p + 1], planes[c, o, p]
    else:
        hi, lo = planes[c, p + 1, o], planes[c, p, o]
    return hi.to(torch.int16) - lo.to(torch.int16)


def _staircase_steps(planes: torch.Tensor, dim: int) -> int:
    """False contours along ``dim`` (1: columns, 2: rows) of ``(C, H, W)`` ``uint8``
    planes: see the module docstring.

    Only lines holding two steps or more can hold a staircase, and only those are
    searched (photos have few). A step's previous busy difference is a step only if it
    is the previous step of its line with no busy difference between the two: a running
    count of busy differences (one cheap scan) answers that for every consecutive pair.
    The pair is a stair when the two are also of the same sign and a similar size,
    within ``CONTOUR_MAX_GAP``, and not both on the JPEG 8×8 grid (blocking is
    ``blockiness``'s).
    """
    if planes.shape[dim] < 7:
        return 0
    busy, step = _step_masks(planes, dim)
    candidates = step.sum(dim, dtype=torch.int16) >= 2  # (C, W) for columns, (C, H) for rows
    if not bool(candidates.any()):
        return 0
    if dim == 1:  # put each column's differences on a row
        busy, step = busy.transpose(1, 2), step.transpose(1, 2)
    busy, step = busy[candidates], step[candidates]  # (K, M)
    line_c, line_o = candidates.nonzero(as_tuple=True)
    seen = torch.cumsum(busy, dim=1, dtype=torch.int16 if busy.shape[1] < 1 << 15 else torch.int32)
    k, q = step.nonzero(as_tuple=True)  # line by line, in order along each line
    same_line = k[1:] == k[:-1]
    k, p, q = k[1:][same_line], q[:-1][same_line], q[1:][same_line]  # consecutive steps p < q
    found = (q - p <= CONTOUR_MAX_GAP) & (seen[k, q - 1] == seen[k, p])  # nothing busy between
    k, q, p = k[found], q[found], p[found]
    if len(k) == 0:
        return 0
    d_q = _difference_at(planes, dim, line_c[k], line_o[k], q)
    d_p = _difference_at(planes, dim, line_c[k], line_o[k], p)
    size_q, size_p = d_q.abs().float(), d_p.abs().float()
    stair = (
        (torch.sign(d_q) == torch.sign(d_p))
        & (size_q <= CONTOUR_SIZE_RATIO * size_p)
        & (size_p <= CONTOUR_SIZE_RATIO * size_q)
        & ~((p % 8 == 7) & (q % 8 == 7))
    )
    return int(stair.sum())


def false_contours(rgb: torch.Tensor) -> float:
    """Banding: false-contour steps per 1,000 pixel-channels, rows and columns together.
    ``rgb``: ``(C, H, W)`` 0..255 integer values (``uint8``, or any dtype holding them)."""
    planes = rgb if rgb.dtype == torch.uint8 else rgb.round().clamp(0, 255).to(torch.uint8)
    c, h, w = planes.shape
    steps = 0
    # lines are independent: rows are searched a band of rows at a time, columns a band
    # of columns at a time (bands sized in bytes: these masks are one byte a value)
    step = nss.band_rows(planes, c * w // 4)
    for r0 in range(0, h, step):
        steps += _staircase_steps(planes[:, r0 : r0 + step, :], 2)
    step = nss.band_rows(planes, c * h // 4)
    for c0 in range(0, w, step):
        steps += _staircase_steps(planes[:, :, c0 : c0 + step], 1)
    return 1000.0 * steps / max(1, planes.numel())


# Pixels per band of the channel-moment products: 256 products of 8-bit values sum to at
# most 255² · 256 < 2²⁴, so each band's float32 dot products are exact in any order.
_MOMENT_BAND = 256


@dataclass(frozen=True)
class ChannelMoments:
    """Exact first and second moments of the three channels: ``n`` pixels, ``sums[i]`` =
    Σ channel i, ``products[i][j]`` = Σ channel i · channel j (Python integers)."""

    n: int
    sums: tuple[int, ...]
    products: tuple[tuple[int, ...], ...]

    def std(self, weights: tuple[int, int, int]) -> tuple[float, float]:
        """Mean and population standard deviation of ``Σ weights[i] · channel i``, exact
        up to the final division (the variance is formed in integers)."""
        total = sum(w * s for w, s in zip(weights, self.sums))
        square = sum(weights[i] * weights[j] * self.products[i][j] for i in range(3) for j in range(3))
        return total / self.n, math.sqrt(max(self.n * square - total * total, 0)) / self.n


def channel_moments(rgb: torch.Tensor) -> ChannelMoments:
    """The moments of ``(3, H, W)`` 0..255 integers, from batched 3×3 products over runs
    of ``_MOMENT_BAND`` pixels (exact in float32, see ``_MOMENT_BAND``; TF32 holds 8-bit
    values exactly too), summed in float64 (exact below 2⁵³). Walked a band of rows at a
    time, so the float copy stays in cache. One pass gives what per-channel histograms
    took six bincounts for."""
    _, h, w = rgb.shape
    products = torch.zeros(3, 3, dtype=torch.float64, device=rgb.device)
    sums = torch.zeros(3, dtype=torch.float64, device=rgb.device)
    step = nss.band_rows(rgb, 3 * w)
    for r0 in range(0, h, step):
        x = rgb[:, r0 : r0 + step].to(torch.float32).reshape(3, -1)
        whole = x.shape[1] - x.shape[1] % _MOMENT_BAND
        runs = x[:, :whole].reshape(3, -1, _MOMENT_BAND).transpose(0, 1)  # (B, 3, band)
        products += torch.bmm(runs, runs.transpose(1, 2)).sum(0, dtype=torch.float64)
        sums += runs.sum(2).sum(0, dtype=torch.float64)
        rest = x[:, whole:]  # fewer than _MOMENT_BAND pixels: one exact product
        products += (rest @ rest.T).to(torch.float64)
        sums += rest.sum(1, dtype=torch.float64)
    return ChannelMoments(
        h * w,
        tuple(int(v) for v in sums.tolist()),
        tuple(tuple(int(v) for v in row) for row in products.tolist()),
    )


def colourfulness(rgb: torch.Tensor | ChannelMoments) -> float:
    """Hasler & Süsstrunk (2003) colourfulness M (≈0 grey, ~33 moderate, >60 very colourful).

    ``rgb``: ``(3, H, W)`` 0..255 integers, or their ``channel_moments``. ``rg = R - G``
    and ``2·yb = R + G - 2B`` are integer combinations of the channels, so their means
    and deviations follow exactly from the channel moments."""
    m = rgb if isinstance(rgb, ChannelMoments) else channel_moments(rgb)
    rg_mean, rg_std = m.std((1, -1, 0))
    yb2_mean, yb2_std = m.std((1, 1, -2))
    return math.hypot(rg_std, yb2_std / 2) + 0.3 * math.hypot(rg_mean, yb2_mean / 2)


def channel_std_max(rgb: torch.Tensor | ChannelMoments) -> float:
    """Largest per-channel standard deviation of ``(3, H, W)`` 0..255 integers (blank
    detection), exactly from the channel moments."""
    m = rgb if isinstance(rgb, ChannelMoments) else channel_moments(rgb)
    return max(m.std(weights)[1] for weights in ((1, 0, 0), (0, 1, 0), (0, 0, 1)))


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


def luma_histogram(gray: torch.Tensor) -> torch.Tensor:
    """Counts of each of the 256 grey levels (``gray`` holds integers), as float64 on CPU."""
    gray8 = gray if gray.dtype == torch.uint8 else gray.to(torch.uint8)
    return torch.bincount(gray8.flatten(), minlength=256).cpu().to(torch.float64)


def percentile(hist: torch.Tensor, q: float) -> float:
    """The grey level below which a share ``q`` of the pixels lie (the k-th smallest,
    k = round(q · n)), read exactly from the 256-level histogram."""
    n = float(hist.sum())
    k = min(n, max(1.0, round(q * n)))
    return float(torch.searchsorted(torch.cumsum(hist, 0), torch.tensor([k], dtype=torch.float64)))


def soft_clip(gray: torch.Tensor) -> float:
    """Of the pixels bordering blown highlights, the share that is nearly white (230–251).

    Where over-exposure clips a smooth tone or a texture, the clipped area fades into its
    surroundings; a white background meets its subject at a crisp edge instead. Works on
    the 8-bit grey in byte arithmetic (``_beyond``), one band of rows at a time.
    """
    gray8 = gray if gray.dtype == torch.uint8 else gray.to(torch.uint8)
    h, w = gray8.shape
    border = near_white = 0
    step = nss.band_rows(gray8, w // 4)
    for r0 in range(0, h, step):
        lo, hi = max(r0 - 1, 0), min(r0 + step + 1, h)  # one row of margin each side
        blown = _beyond(gray8[lo:hi], BRIGHT_LEVEL - 1)
        if not bool(blown.any()):
            continue
        near = _max3x3_interior(F.pad(blown[None, None], (1, 1, 1, 1))[0, 0])
        keep = slice(r0 - lo, r0 - lo + min(step, h - r0))  # this band's own rows
        edge = (near & (blown ^ 1))[keep]
        border += int(edge.sum(dtype=torch.int32))
        near_white += int((edge & _beyond(gray8[lo:hi][keep], 229)).sum(dtype=torch.int32))
    return near_white / border if border else 0.0


def measure_copy(copy: WorkingCopy) -> SignalReport:
    """Every signal of one working copy. The local mean and deviation are the copy's
    shared planes (the MSCN window that NIQE and PIQE use too); the luma statistics come
    from one 256-level histogram."""
    gray, rgb = copy.gray, copy.rgb
    smooth, std = copy.local_stats()
    textured = (std >= TEXTURE_STD).to(gray.dtype)  # a float mask sums three times faster than a bool one
    n_textured = int(textured.sum())
    noise = noise_sigma(gray, integers=True)
    sharp, n_edges = edge_sharpness(gray, smooth, max(EDGE_MIN_GRADIENT, EDGE_NOISE_FACTOR * noise))
    gray8 = gray.to(torch.uint8)
    hist = luma_histogram(gray8)
    moments = channel_moments(rgb)
    n = float(hist.sum())
    levels = torch.arange(256, dtype=torch.float64)
    mean_luma = float((hist * levels).sum()) / n
    contrast = math.sqrt(max(float((hist * levels * levels).sum()) / n - mean_luma * mean_luma, 0.0))
    return SignalReport(
        working_size=copy.size,
        textured_fraction=n_textured / gray.numel(),
        edge_sharpness=sharp,
        edge_pixels=n_edges,
        noise_sigma=noise,
        subject_luma=float(torch.dot(gray.flatten(), textured.flatten())) / n_textured if n_textured else mean_luma,
        dark_fraction=float(hist[: DARK_LEVEL + 1].sum()) / n,
        bright_fraction=float(hist[BRIGHT_LEVEL:].sum()) / n,
        blockiness=blockiness(gray),
        colourfulness=colourfulness(moments),
        contrast=contrast,
        channel_std_max=channel_std_max(moments),
        mean_luma=mean_luma,
        black_point=percentile(hist, 0.005),
        white_point=percentile(hist, 0.995),
        soft_clip=soft_clip(gray8),
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
