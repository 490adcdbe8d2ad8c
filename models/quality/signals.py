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

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from imagejury.models.interfaces import QualityScore
from imagejury.models.quality import nss
from imagejury.models.quality.working import (
    DEFAULT_MAX_SIDE,
    WorkingCopy,
    as_working_copies,
    group_planes,
    in_groups,
)

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
    """Largest value of each interior pixel's 3×3 neighbourhood over the last two
    dimensions, ``(..., H-2, W-2)``: two separable passes of shifted maxima (a CPU
    ``max_pool2d`` is ten times slower)."""
    rows = torch.maximum(torch.maximum(x[..., :-2], x[..., 1:-1]), x[..., 2:])
    return torch.maximum(torch.maximum(rows[..., :-2, :], rows[..., 1:-1, :]), rows[..., 2:, :])


def _forward_gradient_sq(x: torch.Tensor) -> torch.Tensor:
    """Squared magnitude of forward differences over the last two dimensions, ``(..., H-1, W-1)``."""
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    return dx.mul_(dx).addcmul_(dy, dy)


def per_image_bincount(values: torch.Tensor, bins: int, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Counts (or sums of ``weights``) of each value ``0 .. bins-1`` in each image of
    ``values`` ``(N, ...)``, as ``(N, bins)``: one ``bincount`` for the whole batch, each
    image's values offset into a range of its own."""
    n = values.shape[0]
    flat = values.reshape(n, -1)
    if n > 1:
        flat = flat.to(torch.int64) + torch.arange(0, n * bins, bins, device=values.device).unsqueeze(1)
    w = None if weights is None else weights.reshape(-1)
    return torch.bincount(flat.reshape(-1), weights=w, minlength=n * bins).reshape(n, bins)


def _lower_medians(values: torch.Tensor, owners: torch.Tensor, counts: list[int]) -> list[float]:
    """Per owner ``0 .. len(counts)-1``, the lower median of its ``values`` (what
    ``torch.median`` returns), NaN where it has none: one sort by value, then a stable
    sort by owner, so each owner's values lie together and in order. ``values`` is not
    empty."""
    if len(counts) == 1:
        return [float(values.median())]
    order = torch.argsort(values, stable=True)
    order = order[torch.argsort(owners[order], stable=True)]
    starts = itertools.accumulate(counts[:-1], initial=0)
    picks = [min(start + max(c - 1, 0) // 2, len(values) - 1) for start, c in zip(starts, counts)]
    medians = values[order][torch.tensor(picks, device=values.device)].tolist()
    return [m if c else math.nan for m, c in zip(medians, counts)]


def edge_sharpness_batch(
    gray: torch.Tensor, smooth: torch.Tensor, min_gradient: torch.Tensor
) -> list[tuple[float | None, int]]:
    """For each image of ``(N, H, W)`` ``gray`` (``smooth``: its Gaussian-smoothed copy),
    the median re-blur ratio over edge ridge pixels (smoothed gradient ≥ that image's
    ``min_gradient``), and how many there were.

    Works on squared gradients (same order, no square roots over the image), a band of
    rows at a time, and only where edges may lie: two pixels in from every side of the
    gradient grid, so the 3×3 maxima never need padding. The sharp image's gradients are
    read around the edge pixels only.
    """
    n, h, w = gray.shape
    if min(h, w) < 8:
        return [(None, 0)] * n
    floor = (min_gradient.to(torch.float64) ** 2).to(smooth.dtype).to(smooth.device).view(n, 1, 1)
    ratios, owners = [], []
    step = nss.band_rows(gray, n * w)
    for r0 in range(2, h - 3, step):  # rows r0 .. r1-1 of the (h-1, w-1) gradient grid
        r1 = min(h - 3, r0 + step)
        gb2 = _forward_gradient_sq(smooth[:, r0 - 1 : r1 + 2])  # grid rows r0-1 .. r1
        centre = gb2[:, 1:-1, 2:-2]
        # a ridge (the 3×3 maximum) and strong enough, in one comparison
        edges = centre >= _max3x3_interior(gb2)[..., 1:-1].clamp_(min=floor)
        image, rows, cols = edges.nonzero(as_tuple=True)
        if len(rows) == 0:
            continue
        g2 = _forward_gradient_sq(gray[:, r0 - 1 : r1 + 2])
        local_max = torch.stack([g2[image, rows + dy, cols + 1 + dx] for dy in range(3) for dx in range(3)]).amax(0)
        ratios.append(torch.sqrt(local_max / centre[image, rows, cols]))
        owners.append(image)
    if not ratios:
        return [(None, 0)] * n
    owner = torch.cat(owners)
    counts = torch.bincount(owner, minlength=n).tolist()
    medians = _lower_medians(torch.cat(ratios), owner, counts)
    return [(m if c >= MIN_EDGE_PIXELS else None, c) for m, c in zip(medians, counts)]


_COUNT_CAP = 1 << 16  # squared Sobel magnitude 256²: most images' 90th percentile is far below
# Immerkær's mask [[1 -2 1] [-2 4 -2] [1 -2 1]] has squared taps summing to 36, so for white
# noise of std s, E|I * M| = 6 s sqrt(2/pi): sigma = sqrt(pi/2) · mean|I * M| / 6
_NOISE_SCALE = math.sqrt(math.pi / 2.0) / 6.0


def _immerkaer_and_sobel(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``|I * M|`` (Immerkær's mask) and the squared Sobel magnitude on the valid part of
    ``rows`` ``(..., h, w)``: both ``(..., h-2, w-2)``. Both 3×3 masks are separable: two
    3-tap passes each, sharing the vertical sum of the outer rows."""
    outer = rows[..., :-2, :] + rows[..., 2:, :]
    v = outer - 2.0 * rows[..., 1:-1, :]
    resp = (v[..., :-2] + v[..., 2:]).sub_(v[..., 1:-1], alpha=2.0).abs_()
    across = outer.add_(rows[..., 1:-1, :], alpha=2.0)  # Sobel x: smooth down, differ across
    down = (rows[..., :-2] + rows[..., 2:]).add_(rows[..., 1:-1], alpha=2.0)  # Sobel y: smooth across, differ down
    gx = across[..., 2:] - across[..., :-2]
    gy = down[..., 2:, :] - down[..., :-2, :]
    return resp, gx.mul_(gx).addcmul_(gy, gy)


def _noise_by_counting(gray: torch.Tensor, keep: int) -> list[float | None]:
    """Per image of ``(N, H, W)`` ``gray`` holding whole grey levels, Immerkær's mean over
    the ``keep`` pixels of weakest Sobel gradient: squared gradients are then integers,
    so one pass of bands counts each value (below ``_COUNT_CAP``) and sums the responses
    per value, and the cut and the kept sum are read off running totals. None for an
    image whose cut lies at the cap."""
    n, h, w = gray.shape
    bins = _COUNT_CAP + 1
    counts = torch.zeros(n, bins, dtype=torch.int64, device=gray.device)
    sums = torch.zeros(n, bins, dtype=torch.float64, device=gray.device)
    step = nss.band_rows(gray, n * w)
    for r0 in range(0, h - 2, step):
        resp, mag2 = _immerkaer_and_sobel(gray[:, r0 : min(h, r0 + step + 2)])
        values = mag2.to(torch.int32).clamp_(max=_COUNT_CAP)
        counts += per_image_bincount(values, bins)
        sums += per_image_bincount(values, bins, resp.to(torch.float64))
    running = torch.cumsum(counts, 1)
    cut = torch.searchsorted(running, torch.full((n, 1), keep, dtype=running.dtype, device=gray.device))
    if not bool((cut < _COUNT_CAP).any()):  # every cut at the cap: the callers select exactly instead
        return [None] * n
    at = cut.clamp(max=_COUNT_CAP)
    kept = torch.cat([cut, torch.cumsum(sums, 1).gather(1, at), running.gather(1, at)], 1).to(torch.float64)
    return [None if c >= _COUNT_CAP else _NOISE_SCALE * s / k for c, s, k in kept.tolist()]  # one read-back


def noise_sigma_batch(gray: torch.Tensor, edge_fraction: float = 0.1) -> list[float]:
    """``noise_sigma`` of each image of ``(N, H, W)`` ``gray`` holding whole grey levels
    (a working copy's do), by counting (``_noise_by_counting``)."""
    n, h, w = gray.shape
    if min(h, w) < 3:
        return [0.0] * n
    counted = _noise_by_counting(gray, max(1, int(math.ceil((1.0 - edge_fraction) * (h - 2) * (w - 2)))))
    return [noise_sigma(gray[i], edge_fraction) if c is None else c for i, c in enumerate(counted)]


def noise_sigma(gray: torch.Tensor, edge_fraction: float = 0.1, integers: bool = False) -> float:
    """Gaussian noise standard deviation in grey levels (Immerkær 1996) of an ``(H, W)`` image.

    ``sigma = sqrt(pi/2) · mean(|I * M|) / 6``; textured edges inflate the estimate, so
    the ``edge_fraction`` pixels with the strongest Sobel gradient are left out first
    (ties at the cut are kept). ``integers``: ``gray`` holds whole grey levels (a working
    copy's does), which allows the fast exact path of ``_noise_by_counting``.
    """
    if min(gray.shape) < 3:
        return 0.0
    if edge_fraction > 0 and integers:
        return noise_sigma_batch(gray[None], edge_fraction)[0]
    resp, mag2 = _immerkaer_and_sobel(gray)
    if edge_fraction > 0:
        k = max(1, int(math.ceil((1.0 - edge_fraction) * mag2.numel())))
        cut = float(torch.kthvalue(mag2.flatten().cpu(), k).values)
        keep = mag2 <= cut
        return _NOISE_SCALE * float((resp * keep).sum()) / int(keep.sum())
    return _NOISE_SCALE * float(resp.mean())


def blockiness_batch(gray: torch.Tensor, block: int = 8) -> list[float]:
    """JPEG blocking of each image of ``(N, H, W)``: mean |step| across 8×8 grid lines /
    mean |step| elsewhere (1.0: none).

    Steps are capped at ``BLOCK_STEP_CAP`` grey levels so that a few strong drawn edges
    (graphics) do not decide the ratio; a floor of ``BLOCK_STEP_FLOOR`` keeps flat images
    (both means near zero) at 1. Summed a band of rows at a time; the steps are whole
    levels and the sums exact on any device (``_exact_sum_dtype``).
    """
    n, h, w = gray.shape
    if h < 2 * block or w < 2 * block:
        return [1.0] * n
    on = torch.zeros(n, dtype=torch.float64, device=gray.device)
    total = torch.zeros_like(on)
    step = nss.band_rows(gray, 2 * n * w)
    for r0 in range(0, h, step):
        r1, d1 = min(h, r0 + step), min(h - 1, r0 + step)  # differences down: rows r0 .. d1-1
        dtype = _exact_sum_dtype((r1 - r0) * w, BLOCK_STEP_CAP)
        dx = (gray[:, r0:r1, 1:] - gray[:, r0:r1, :-1]).abs_().clamp_(max=BLOCK_STEP_CAP)
        on += dx[..., block - 1 :: block].sum((1, 2), dtype=dtype)
        total += dx.sum((1, 2), dtype=dtype)
        if d1 > r0:
            dy = (gray[:, r0 + 1 : d1 + 1] - gray[:, r0:d1]).abs_().clamp_(max=BLOCK_STEP_CAP)
            on += dy[:, (block - 1 - r0) % block :: block].sum((1, 2), dtype=dtype)  # grid rows 7, 15, ...
            total += dy.sum((1, 2), dtype=dtype)
    on_n = h * len(range(block - 1, w - 1, block)) + w * len(range(block - 1, h - 1, block))
    off_n = h * (w - 1) + (h - 1) * w - on_n
    return [
        (on_sum / on_n + BLOCK_STEP_FLOOR) / ((all_sum - on_sum) / off_n + BLOCK_STEP_FLOOR)
        for on_sum, all_sum in zip(on.tolist(), total.tolist())
    ]


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


def _staircase_steps(planes: torch.Tensor, dim: int) -> torch.Tensor:
    """False contours along ``dim`` (1: columns, 2: rows) of ``(C, H, W)`` ``uint8``
    planes, counted per plane (``(C,)``): see the module docstring.

    Only lines holding two steps or more can hold a staircase, and only those are
    searched (photos have few). A step's previous busy difference is a step only if it
    is the previous step of its line with no busy difference between the two: a running
    count of busy differences (one cheap scan) answers that for every consecutive pair.
    The pair is a stair when the two are also of the same sign and a similar size,
    within ``CONTOUR_MAX_GAP``, and not both on the JPEG 8×8 grid (blocking is
    ``blockiness``'s).
    """
    none = torch.zeros(planes.shape[0], dtype=torch.int64, device=planes.device)
    if planes.shape[dim] < 7:
        return none
    busy, step = _step_masks(planes, dim)
    counter = torch.int16 if planes.shape[dim] < 1 << 15 else torch.int32  # a line's counts must not wrap
    candidates = step.sum(dim, dtype=counter) >= 2  # (C, W) for columns, (C, H) for rows
    if not bool(candidates.any()):
        return none
    if dim == 1:  # put each column's differences on a row
        busy, step = busy.transpose(1, 2), step.transpose(1, 2)
    busy, step = busy[candidates], step[candidates]  # (K, M)
    line_c, line_o = candidates.nonzero(as_tuple=True)
    seen = torch.cumsum(busy, dim=1, dtype=counter)
    k, q = step.nonzero(as_tuple=True)  # line by line, in order along each line
    same_line = k[1:] == k[:-1]
    k, p, q = k[1:][same_line], q[:-1][same_line], q[1:][same_line]  # consecutive steps p < q
    found = (q - p <= CONTOUR_MAX_GAP) & (seen[k, q - 1] == seen[k, p])  # nothing busy between
    k, q, p = k[found], q[found], p[found]
    if len(k) == 0:
        return none
    d_q = _difference_at(planes, dim, line_c[k], line_o[k], q)
    d_p = _difference_at(planes, dim, line_c[k], line_o[k], p)
    size_q, size_p = d_q.abs().float(), d_p.abs().float()
    stair = (
        (torch.sign(d_q) == torch.sign(d_p))
        & (size_q <= CONTOUR_SIZE_RATIO * size_p)
        & (size_p <= CONTOUR_SIZE_RATIO * size_q)
        & ~((p % 8 == 7) & (q % 8 == 7))
    )
    return torch.bincount(line_c[k][stair], minlength=planes.shape[0])


def false_contours_batch(rgb: torch.Tensor) -> list[float]:
    """Banding of each image of ``(N, C, H, W)``: false-contour steps per 1,000
    pixel-channels, rows and columns together. Values are 0..255 integers (``uint8``,
    or any dtype holding them)."""
    planes = rgb if rgb.dtype == torch.uint8 else rgb.round().clamp(0, 255).to(torch.uint8)
    n, c, h, w = planes.shape
    planes = planes.reshape(n * c, h, w)  # lines of every channel of every image are independent
    steps = torch.zeros(n * c, dtype=torch.int64, device=planes.device)
    # rows are searched a band of rows at a time, columns a band of columns at a time
    # (bands sized in bytes: these masks are one byte a value)
    step = nss.band_rows(planes, n * c * w // 4)
    for r0 in range(0, h, step):
        steps += _staircase_steps(planes[:, r0 : r0 + step, :], 2)
    step = nss.band_rows(planes, n * c * h // 4)
    for c0 in range(0, w, step):
        steps += _staircase_steps(planes[:, :, c0 : c0 + step], 1)
    return [1000.0 * s / max(1, c * h * w) for s in steps.reshape(n, c).sum(1).tolist()]


def false_contours(rgb: torch.Tensor) -> float:
    """``false_contours_batch`` of one ``(C, H, W)`` image."""
    return false_contours_batch(rgb[None])[0]


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


def channel_moments_batch(rgb: torch.Tensor) -> list[ChannelMoments]:
    """The moments of each image of ``(N, 3, H, W)`` 0..255 integers, from batched 3×3
    products over runs of ``_MOMENT_BAND`` pixels (exact in float32, see
    ``_MOMENT_BAND``; TF32 holds 8-bit values exactly too), summed in float64 (exact below
    2⁵³). Walked a band of rows at a time, so the float copy stays in cache. One pass
    gives what per-channel histograms took six bincounts for."""
    with torch.autocast(rgb.device.type, enabled=False):  # a caller's bf16 autocast would round the products
        return _channel_moments(rgb)


def _channel_moments(rgb: torch.Tensor) -> list[ChannelMoments]:
    n, _, h, w = rgb.shape
    products = torch.zeros(n, 3, 3, dtype=torch.float64, device=rgb.device)
    sums = torch.zeros(n, 3, dtype=torch.float64, device=rgb.device)
    step = nss.band_rows(rgb, 3 * n * w)
    for r0 in range(0, h, step):
        x = rgb[:, :, r0 : r0 + step].to(torch.float32).reshape(n, 3, -1)
        whole = x.shape[2] - x.shape[2] % _MOMENT_BAND
        runs = x[..., :whole].reshape(n, 3, -1, _MOMENT_BAND).transpose(1, 2)  # (N, B, 3, band)
        products += torch.matmul(runs, runs.transpose(2, 3)).sum(1, dtype=torch.float64)
        sums += runs.sum(3).sum(1, dtype=torch.float64)
        rest = x[..., whole:]  # fewer than _MOMENT_BAND pixels: one exact product
        products += torch.matmul(rest, rest.transpose(1, 2)).to(torch.float64)
        sums += rest.sum(2, dtype=torch.float64)
    return [
        ChannelMoments(
            h * w,
            tuple(int(v) for v in image_sums),
            tuple(tuple(int(v) for v in row) for row in image_products),
        )
        for image_sums, image_products in zip(sums.tolist(), products.tolist())
    ]


def channel_moments(rgb: torch.Tensor) -> ChannelMoments:
    """``channel_moments_batch`` of one ``(3, H, W)`` image."""
    return channel_moments_batch(rgb[None])[0]


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


def luma_histogram_batch(gray: torch.Tensor) -> np.ndarray:
    """Counts of each of the 256 grey levels in each image of ``(N, H, W)`` (``gray``
    holds integers), as an ``(N, 256)`` float64 array: read back once, and each image's
    few statistics are then plain arithmetic on the host."""
    gray8 = gray if gray.dtype == torch.uint8 else gray.to(torch.uint8)
    return per_image_bincount(gray8, 256).cpu().to(torch.float64).numpy()


def percentile(hist: np.ndarray, q: float) -> float:
    """The grey level below which a share ``q`` of the pixels lie (the k-th smallest,
    k = round(q · n)), read exactly from the 256-level histogram."""
    n = float(hist.sum())
    k = min(n, max(1.0, round(q * n)))
    return float(np.searchsorted(np.cumsum(hist), k))


def soft_clip_batch(gray: torch.Tensor) -> list[float]:
    """For each image of ``(N, H, W)``: of the pixels bordering blown highlights, the
    share that is nearly white (230–251).

    Where over-exposure clips a smooth tone or a texture, the clipped area fades into its
    surroundings; a white background meets its subject at a crisp edge instead. Works on
    the 8-bit grey in byte arithmetic (``_beyond``), one band of rows at a time.
    """
    gray8 = gray if gray.dtype == torch.uint8 else gray.to(torch.uint8)
    n, h, w = gray8.shape
    border = torch.zeros(n, dtype=torch.int64, device=gray8.device)
    near_white = torch.zeros_like(border)
    step = nss.band_rows(gray8, n * w // 4)
    for r0 in range(0, h, step):
        lo, hi = max(r0 - 1, 0), min(r0 + step + 1, h)  # one row of margin each side
        blown = _beyond(gray8[:, lo:hi], BRIGHT_LEVEL - 1)
        if not bool(blown.any()):
            continue
        near = _max3x3_interior(F.pad(blown[:, None], (1, 1, 1, 1))[:, 0])
        keep = slice(r0 - lo, r0 - lo + min(step, h - r0))  # this band's own rows
        edge = (near & (blown ^ 1))[:, keep]
        border += edge.sum((1, 2), dtype=torch.int32)
        near_white += (edge & _beyond(gray8[:, lo:hi][:, keep], 229)).sum((1, 2), dtype=torch.int32)
    return [white / edges if edges else 0.0 for white, edges in zip(near_white.tolist(), border.tolist())]


def soft_clip(gray: torch.Tensor) -> float:
    """``soft_clip_batch`` of one ``(H, W)`` image."""
    return soft_clip_batch(gray[None])[0]


def _luma_report(hist: np.ndarray) -> dict[str, float]:
    """The signals read off one image's 256-level luma histogram."""
    n = float(hist.sum())
    levels = np.arange(256, dtype=np.float64)
    mean_luma = float((hist * levels).sum()) / n
    return {
        "mean_luma": mean_luma,
        "contrast": math.sqrt(max(float((hist * levels * levels).sum()) / n - mean_luma * mean_luma, 0.0)),
        "dark_fraction": float(hist[: DARK_LEVEL + 1].sum()) / n,
        "bright_fraction": float(hist[BRIGHT_LEVEL:].sum()) / n,
        "black_point": percentile(hist, 0.005),
        "white_point": percentile(hist, 0.995),
    }


def _exact_sum_dtype(values: int, largest: float) -> torch.dtype:
    """float32 where a sum of ``values`` whole numbers of at most ``largest`` stays below
    2²⁴ (exact in any order), else float64: CPU bands get the faster sums, an
    accelerator's whole image the exact ones."""
    return torch.float32 if values * largest < 1 << 24 else torch.float64


def _textured(gray: torch.Tensor, std: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per image of ``(N, H, W)``: how many pixels are textured (local deviation at least
    ``TEXTURE_STD``) and the sum of their grey levels, exactly, a band of rows at a time
    (on CPU, bands small enough for exact float32 sums)."""
    n, h, w = gray.shape
    count = torch.zeros(n, dtype=torch.float64, device=gray.device)
    luma = torch.zeros_like(count)
    step = max(1, (1 << 24) // (256 * w)) if gray.device.type == "cpu" else h
    dtype = _exact_sum_dtype(step * w, 255)
    for r0 in range(0, h, step):
        mask = (std[:, r0 : r0 + step] >= TEXTURE_STD).to(gray.dtype)  # a float mask sums faster than a bool one
        count += mask.sum((1, 2), dtype=dtype)
        luma += (gray[:, r0 : r0 + step] * mask).sum((1, 2), dtype=dtype)
    return count.tolist(), luma.tolist()


def _measure_group(copies: Sequence[WorkingCopy]) -> list[SignalReport]:
    """Every signal of same-size working copies, each operation once for the group. The
    local mean and deviation are the copies' shared planes (the MSCN window that NIQE and
    PIQE use too); the luma statistics come from one 256-level histogram per image."""
    planes = group_planes(copies)
    gray, rgb, smooth, std = planes.gray, planes.rgb, planes.mu, planes.sigma
    n_textured, textured_luma = _textured(gray, std)
    noise = noise_sigma_batch(gray)
    floors = torch.tensor([max(EDGE_MIN_GRADIENT, EDGE_NOISE_FACTOR * s) for s in noise], dtype=torch.float64)
    edges = edge_sharpness_batch(gray, smooth, floors)
    gray8 = gray.to(torch.uint8)
    columns = zip(
        luma_histogram_batch(gray8),
        channel_moments_batch(rgb),
        blockiness_batch(gray),
        soft_clip_batch(gray8),
        false_contours_batch(rgb),
    )
    reports = []
    for i, (hist, moments, blocks, soft, contours) in enumerate(columns):
        luma = _luma_report(hist)
        reports.append(
            SignalReport(
                working_size=copies[i].size,
                textured_fraction=n_textured[i] / gray[i].numel(),
                edge_sharpness=edges[i][0],
                edge_pixels=edges[i][1],
                noise_sigma=noise[i],
                subject_luma=textured_luma[i] / n_textured[i] if n_textured[i] else luma["mean_luma"],
                blockiness=blocks,
                colourfulness=colourfulness(moments),
                channel_std_max=channel_std_max(moments),
                soft_clip=soft,
                false_contours=contours,
                **luma,
            )
        )
    return reports


def measure_copies(copies: Sequence[WorkingCopy]) -> list[SignalReport]:
    """Every signal of each working copy, in order. Copies are measured in groups
    (``working.measuring_groups``): all same-size copies together on an accelerator, one
    at a time on CPU."""
    return in_groups(copies, _measure_group)


def measure_copy(copy: WorkingCopy) -> SignalReport:
    """Every signal of one working copy."""
    return measure_copies([copy])[0]


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
        for rep in measure_copies(as_working_copies(images, self.max_side, self.device)):
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
        for rep in measure_copies(as_working_copies(images, self.max_side, self.device)):
            value = float("nan") if rep.edge_sharpness is None else rep.edge_sharpness
            out.append(QualityScore(self.name, value, True, self.range, {"report": rep}))
        return out


def report_from_score(score: QualityScore) -> SignalReport:
    rep = score.details.get("report")
    if not isinstance(rep, SignalReport):
        raise TypeError("this QualityScore was not made by the 'signals' scorer")
    return rep
