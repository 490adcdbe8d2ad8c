"""The one implementation of the natural-scene-statistics building blocks, in torch.

Every NSS measure (BRISQUE, NIQE, PIQE) and the pixel signals use these functions, on a
batch ``(N, H, W)`` of 0..255 grey images, on whatever device the tensors live on (the
CLIP's: ``cpu`` or ``cuda``). They follow the authors' MATLAB releases, quirks included,
because that is what published scores were made with:

- ``rgb_to_gray_uint8``: MATLAB ``rgb2gray`` on a ``uint8`` image — the BT.601 weights
  that MATLAB derives from the inverse NTSC matrix, then *rounded to 8 bits*;
- ``imresize_half``: MATLAB ``imresize(im, 0.5)`` (bicubic, a = -0.5, antialiased: the
  kernel is stretched to 8 taps at half scale; symmetric borders);
- ``mscn``: ``(I - mu) / (sigma + C)`` with a 7-tap Gaussian (sigma 7/6), borders as
  ``filter2`` (zeros) or ``imfilter(..., 'replicate')``;
- ``aggd_fit`` / ``ggd_fit``: moment matching against the table ``gam = 0.2:0.001:10``
  of ``estimateaggdparam.m`` / ``estimateggdparam.m``, row by row.

How it is made fast (on CPU a standard request's pixel measures went from about one
ViT-L-14 image forward to about an eighth of one; ``benchmarks/pixel_speed.py``):

- one working precision, float32, on every device; per-set statistics (ratios, the
  table look-up) in float64. Against the float64 MATLAB transcriptions the scores move
  by a few 1e-4 on photos; on flat regions, where the reference itself divides rounding
  residue by ~1, by more (the parity tests and ``iqa_parity.py`` hold the limits);
- the local mean and deviation are computed once per image (``working.WorkingCopy``);
  each measure's own crop, pad or border rule recomputes only the strips it changes
  (``crop_mscn``, ``zero_border_mscn``, ``crop_half``);
- separable filters as weighted sums of shifted slices, symmetric taps paired first;
- (A)GGD fits from six moment sums (``moment_sums``), which add up over parts, so
  images are walked in bands of rows that stay in cache (``BAND_VALUES``); no
  whole-image temporaries where a band will do (on CPU their page faults cost as much
  as the arithmetic);
- every function takes a leading batch dimension, so same-size images can be measured
  as one group (``working.measuring_groups``: on an accelerator, where each operation
  is a kernel launch).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from imagejury.models.imaging import to_rgb

# MATLAB rgb2gray: the first row of inv([1 0.956 0.621; 1 -0.272 -0.647; 1 -1.106 1.703]).
MATLAB_GRAY_WEIGHTS = (0.298936021293775, 0.587043074451121, 0.114020904255103)
# The same weights in 22-bit fixed point (they sum to exactly 2²²; 255 · 2²² fits int32).
_GRAY_BITS = 22
_GRAY_FIXED = tuple(round(w * (1 << _GRAY_BITS)) for w in MATLAB_GRAY_WEIGHTS)

_GAMMA_GRID = np.arange(0.2, 10.0 + 1e-9, 0.001)
_LG1 = np.array([math.lgamma(1.0 / g) for g in _GAMMA_GRID])
_LG2 = np.array([math.lgamma(2.0 / g) for g in _GAMMA_GRID])
_LG3 = np.array([math.lgamma(3.0 / g) for g in _GAMMA_GRID])
# AGGD: r(a) = Γ(2/a)² / (Γ(1/a) Γ(3/a)), increasing in a.   GGD: rho(a) = 1 / r(a).
_AGGD_RATIO = np.exp(2 * _LG2 - _LG1 - _LG3)
# The precision every pixel measure works in, on every device: float32 (the reductions
# are pairwise, and the parity tests hold the scores to the references' published values).
WORK_DTYPE = torch.float32


@functools.lru_cache(maxsize=8)
def _fit_tables(device: str) -> dict[str, torch.Tensor]:
    """The moment-matching tables as float64 tensors on ``device``, made once per device
    (not once per fit: a fit is called for every block set of every image)."""
    ratio = torch.as_tensor(_AGGD_RATIO, dtype=torch.float64, device=device)
    return {
        "gamma": torch.as_tensor(_GAMMA_GRID, dtype=torch.float64, device=device),
        "aggd_ratio": ratio,
        "ggd_ratio_increasing": torch.flip(1.0 / ratio, dims=[0]),
        "lg1": torch.as_tensor(_LG1, dtype=torch.float64, device=device),
        "lg2": torch.as_tensor(_LG2, dtype=torch.float64, device=device),
        "lg3": torch.as_tensor(_LG3, dtype=torch.float64, device=device),
    }


def require_batch(gray: torch.Tensor, what: str) -> None:
    """Refuse anything but a batch of grey images ``(N, H, W)``, naming the fix."""
    if gray.dim() != 3:
        raise ValueError(
            f"{what} takes a batch of grey images (N, H, W), got shape {tuple(gray.shape)}"
            " (one image: add a leading dimension, gray[None])"
        )


def images_to_tensor(images: list[Image.Image], device: torch.device | str = "cpu") -> torch.Tensor:
    """Same-size RGB images as a contiguous ``(N, 3, H, W)`` ``uint8`` tensor on ``device``.
    Pillow splits the channels (in C, faster than a strided permute of the pixels)."""
    planes = [np.asarray(band, dtype=np.uint8) for im in images for band in to_rgb(im, copy=False).split()]
    batch = torch.from_numpy(np.stack(planes))
    return batch.reshape(len(images), 3, *batch.shape[1:]).to(device)


def rgb_to_gray_uint8(rgb: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` 0..255 → ``(N, H, W)`` grey rounded to integers, as MATLAB does.

    For ``uint8`` input the weighted sum is done in 22-bit fixed point (``_GRAY_FIXED``),
    which rounds exactly as MATLAB's double arithmetic does for every one of the 2²⁴
    colours (``tests/test_nss_parity.py`` checks all of them) at half the cost, a band of
    rows at a time (fresh whole-image temporaries cost more in page faults than the
    arithmetic). Any other dtype is summed in float64. Returned in ``WORK_DTYPE`` for
    ``uint8`` input (integers 0..255 are exact in it), else in the input's dtype.
    """
    if rgb.dtype == torch.uint8:
        n, _, h, w = rgb.shape
        gray = torch.empty((n, h, w), dtype=WORK_DTYPE, device=rgb.device)
        step = band_rows(rgb, 4 * n * w)  # the int32 temporaries stay in cache
        for r0 in range(0, h, step):
            r, g, b = (rgb[:, i, r0 : r0 + step].to(torch.int32) for i in range(3))
            acc = r.mul_(_GRAY_FIXED[0]).add_(g, alpha=_GRAY_FIXED[1]).add_(b, alpha=_GRAY_FIXED[2])
            gray[:, r0 : r0 + step] = acc.add_(1 << (_GRAY_BITS - 1)).bitwise_right_shift_(_GRAY_BITS)
        return gray
    x = rgb.to(torch.float64)
    gray = x[:, 0] * MATLAB_GRAY_WEIGHTS[0]
    gray.add_(x[:, 1], alpha=MATLAB_GRAY_WEIGHTS[1]).add_(x[:, 2], alpha=MATLAB_GRAY_WEIGHTS[2])
    return gray.round_().clamp_(0, 255).to(rgb.dtype)


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    return (1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1) + (-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) * (
        (ax > 1) & (ax <= 2)
    )


def _half_weights() -> np.ndarray:
    """The 8 MATLAB antialiased bicubic taps for scale 0.5 (sum 1, symmetric)."""
    # output pixel i samples input position u = 2i - 0.5 (1-based); taps at u ± 0.5, 1.5, 2.5, 3.5
    dist = np.array([-3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5])
    w = _cubic(dist * 0.5) * 0.5
    return w / w.sum()


_HALF_TAPS = _half_weights()


def _symmetric_pad(x: torch.Tensor, pad: int, dim: int) -> torch.Tensor:
    """Mirror padding that repeats the edge sample (MATLAB / numpy ``symmetric``)."""
    n = x.shape[dim]
    idx = list(range(pad - 1, -1, -1)) + list(range(n)) + list(range(n - 1, n - 1 - pad, -1))
    idx_t = torch.tensor([min(max(i, 0), n - 1) if n < pad else i for i in idx], device=x.device)
    return x.index_select(dim, idx_t)


def _every_other(x: torch.Tensor, dim: int, start: int, count: int) -> torch.Tensor:
    """``count`` samples of ``x`` along ``dim`` from ``start`` in steps of two (a view)."""
    return x.narrow(dim, start, 2 * count - 1)[(slice(None),) * dim + (slice(None, None, 2),)]


def imresize_half(gray: torch.Tensor) -> torch.Tensor:
    """MATLAB ``imresize(gray, 0.5)`` for a ``(N, H, W)`` batch: ``(N, ceil(H/2), ceil(W/2))``.

    Output ``i`` (0-based) reads inputs ``2i-3 .. 2i+4``: eight strided slices of the
    mirrored input. The taps are symmetric, so the mirror pairs are added first and
    weighted once (four multiply-adds per axis, in place).
    """
    out = gray
    for dim in (1, 2):
        size_out = math.ceil(out.shape[dim] / 2)
        padded = _symmetric_pad(out, 4, dim)
        acc = _every_other(padded, dim, 4, size_out) + _every_other(padded, dim, 5, size_out)
        acc.mul_(float(_HALF_TAPS[3]))
        for k in range(3):
            pair = _every_other(padded, dim, 1 + k, size_out) + _every_other(padded, dim, 8 - k, size_out)
            acc.add_(pair, alpha=float(_HALF_TAPS[k]))
        out = acc
    return out


def gaussian_taps(size: int = 7, sigma: float = 7.0 / 6.0) -> np.ndarray:
    """1-D normalised Gaussian; ``fspecial('gaussian', size, sigma)`` is its outer product."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    w = np.exp(-(x**2) / (2.0 * sigma**2))
    return w / w.sum()


_WINDOW_TAPS = tuple(float(v) for v in gaussian_taps())
_R = (len(_WINDOW_TAPS) - 1) // 2  # 3: the window's reach on each side


def _blur_dim(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Correlate the already padded ``x`` with the window taps along ``dim`` (valid part).

    The taps are symmetric: each mirror pair of slices is added, then weighted once in
    place — seven cheap passes instead of fourteen (a one-channel ``conv2d`` on CPU is
    ten times slower than this).
    """
    n = x.shape[dim] - 2 * _R
    acc = x.narrow(dim, _R, n) * _WINDOW_TAPS[_R]
    for k in range(_R):
        acc.add_(x.narrow(dim, k, n) + x.narrow(dim, 2 * _R - k, n), alpha=_WINDOW_TAPS[k])
    return acc


def local_stats(gray: torch.Tensor, border: str = "replicate") -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian-weighted local mean and deviation ``(mu, sigma)`` of ``(..., H, W)``.

    ``sigma = sqrt(|blur(I²) - blur(I)²|)`` as the MATLAB code has it. The grey values are
    centred on 128 first: the formula is shift-invariant, and the smaller squares keep
    float32's cancellation error in flat regions four times smaller (with zero borders,
    the padding is shifted too, so it is still zero in the original's terms). Computed a
    band of rows at a time (``band_rows``), each band shifted and padded on its own with
    its three-row margins: no whole-image temporary.
    """
    shift = 128.0
    h, w = gray.shape[-2:]
    flat = gray.reshape(-1, h, w)
    mu = torch.empty(flat.shape, dtype=gray.dtype, device=gray.device)
    sigma = torch.empty_like(mu)
    step = band_rows(gray, w * flat.shape[0])
    for r0 in range(0, h, step):
        r1 = min(h, r0 + step)
        lo, hi = max(0, r0 - _R), min(h, r1 + _R)  # the band's margins, where the image has them
        rows = (flat[:, lo:hi] - shift).to(gray.dtype)[:, None]
        pad = (_R, _R, _R - (r0 - lo), _R - (hi - r1))  # the border rule only at the image's edges
        if border == "zeros":
            rows = F.pad(rows, pad, mode="constant", value=-shift)[:, 0]
        else:
            rows = F.pad(rows, pad, mode="replicate")[:, 0]
        m = _blur_dim(_blur_dim(rows, 1), 2)
        sq = _blur_dim(_blur_dim(rows * rows, 1), 2)
        torch.sqrt(sq.sub_(m * m).abs_(), out=sigma[:, r0:r1])
        torch.add(m, shift, out=mu[:, r0:r1])
    return mu.reshape(gray.shape), sigma.reshape(gray.shape)


def mscn_from_stats(gray: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """``(I - mu) / (sigma + C)``, the divisor formed a band of rows at a time."""
    out = torch.sub(gray, mu)
    h, w = gray.shape[-2:]
    step = band_rows(gray, w * gray[..., 0, 0].numel())
    for r0 in range(0, h, step):
        out[..., r0 : r0 + step, :].div_(sigma[..., r0 : r0 + step, :] + c)
    return out


def mscn(gray: torch.Tensor, border: str = "replicate", c: float = 1.0) -> torch.Tensor:
    """Mean-subtracted contrast-normalised coefficients of a ``(N, H, W)`` batch.

    ``border``: ``zeros`` (MATLAB ``filter2``, used by BRISQUE) or ``replicate``
    (``imfilter(..., 'replicate')``, used by NIQE and PIQE).
    """
    return mscn_from_stats(gray, *local_stats(gray, border), c)


# A strip of recomputed statistics: its (rows, columns) in the image, and its mu and sigma.
Strip = tuple[tuple[slice, slice], torch.Tensor, torch.Tensor]


def _crop_strips(gray: torch.Tensor, height: int, width: int, changed: int) -> list[Strip] | None:
    """The strips of ``crop_mscn``'s crop whose statistics differ from the shared ones
    (none for an unchanged whole image), or None when the crop is too small for strips
    (recompute it whole)."""
    if (height, width) == tuple(gray.shape[-2:]) and not changed:
        return []
    reach = _R + changed
    if min(height, width) < 2 * reach + _R:
        return None
    new = gray[..., :height, :width]
    strips = []
    if height < gray.shape[-2] or changed:
        m, s = local_stats(new[..., height - reach - _R :, :])
        strips.append(((slice(height - reach, height), slice(0, width)), m[..., _R:, :], s[..., _R:, :]))
    if width < gray.shape[-1] or changed:  # after the rows: its corner is right for both edges
        m, s = local_stats(new[..., :, width - reach - _R :])
        strips.append(((slice(0, height), slice(width - reach, width)), m[..., :, _R:], s[..., :, _R:]))
    return strips


def _zero_border_strips(gray: torch.Tensor) -> list[Strip] | None:
    """The four strips where ``filter2`` (zero-border) statistics differ from replicate-
    border ones, recomputed from ``2 * _R`` rows/columns each; None for an image too
    small for strips."""
    h, w = gray.shape[-2:]
    if min(h, w) < 4 * _R:
        return None
    d, strips = 2 * _R, []
    for rows, keep in ((slice(0, d), slice(0, _R)), (slice(h - d, h), slice(_R, d))):
        m, s = local_stats(gray[..., rows, :], "zeros")
        target = slice(rows.start + keep.start, rows.start + keep.stop)
        strips.append(((target, slice(0, w)), m[..., keep, :], s[..., keep, :]))
    for cols, keep in ((slice(0, d), slice(0, _R)), (slice(w - d, w), slice(_R, d))):
        m, s = local_stats(gray[..., :, cols], "zeros")
        target = slice(cols.start + keep.start, cols.start + keep.stop)
        strips.append(((slice(0, h), target), m[..., :, keep], s[..., :, keep]))
    return strips


def _patched_mscn(gray: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, strips: list[Strip]) -> torch.Tensor:
    """MSCN from the shared statistics, with the strips' MSCN written over: the shared
    planes are never copied."""
    out = mscn_from_stats(gray, mu, sigma)
    for (rows, cols), m, s in strips:
        out[..., rows, cols] = mscn_from_stats(gray[..., rows, cols], m, s)
    return out


def crop_mscn(
    gray: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, height: int, width: int, changed: int = 0
) -> torch.Tensor:
    """MSCN of an image that equals ``gray[..., :height, :width]`` except in its last
    ``changed`` rows and columns, from the replicate-border stats of ``gray``.

    The window sees the same pixels, except within ``_R + changed`` pixels of the new
    bottom and right edges (a crop replicates its own last row/column). Those strips'
    statistics are recomputed from ``2 * _R + changed`` rows/columns of the new image
    (``_crop_strips``): exact, at the cost of two thin strips instead of a whole image,
    and the shared statistics are never copied. ``gray`` must hold the new image's pixels
    in its changed rows/columns (callers pass the new image itself, padded or not).
    """
    new = gray[..., :height, :width]
    strips = _crop_strips(gray, height, width, changed)
    if strips is None:
        return mscn_from_stats(new, *local_stats(new))
    return _patched_mscn(new, mu[..., :height, :width], sigma[..., :height, :width], strips)


def zero_border_mscn(gray: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """MSCN with ``filter2`` (zero-border) statistics, from the replicate-border ``mu`` and
    ``sigma`` of ``gray``: the two differ only within ``_R`` pixels of each edge, so only
    those four strips are recomputed (``_zero_border_strips``); the shared statistics are
    never copied."""
    strips = _zero_border_strips(gray)
    return mscn(gray, "zeros") if strips is None else _patched_mscn(gray, mu, sigma, strips)


def crop_half(gray: torch.Tensor, half: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``imresize_half(gray[..., :height, :width])`` from ``imresize_half(gray)``, for even
    ``height`` and ``width``: the last two output rows/columns read past the crop (mirrored
    there), so they are recomputed from the crop's last eight rows/columns."""
    if (height, width) == tuple(gray.shape[-2:]):
        return half
    crop = gray[..., :height, :width]
    if height % 2 or width % 2 or min(height, width) < 16:
        return imresize_half(crop)
    out = half[..., : height // 2, : width // 2].clone()
    if height < gray.shape[-2]:
        out[..., -2:, :] = imresize_half(crop[..., height - 8 :, :])[..., -2:, :]
    if width < gray.shape[-1]:
        out[..., :, -2:] = imresize_half(crop[..., :, width - 8 :])[..., :, -2:]
    return out


def circshift_product(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``x * circshift(x, [dy dx])`` over the last two dimensions (``torch.roll``'s
    convention), written quadrant by quadrant into one output: no rolled copy."""
    h = x.shape[-2]
    dy %= h
    out = torch.empty_like(x)
    for row_to, row_from in ((slice(dy, h), slice(0, h - dy)), (slice(0, dy), slice(h - dy, h))):
        _column_circshift_product(x[..., row_to, :], x[..., row_from, :], dx, out=out[..., row_to, :])
    return out


def _column_circshift_product(
    a: torch.Tensor, b: torch.Tensor, dx: int, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``a * roll(b, dx, dims=-1)`` without the rolled copy, into ``out`` when given."""
    w = a.shape[-1]
    dx %= w
    out = torch.empty_like(a) if out is None else out
    torch.mul(a[..., dx:], b[..., : w - dx], out=out[..., dx:])
    torch.mul(a[..., :dx], b[..., w - dx :], out=out[..., :dx])
    return out


def _rows_circular(x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Rows ``start .. stop-1`` of ``x``, indices taken modulo its height."""
    h = x.shape[-2]
    if start >= 0 and stop <= h:
        return x[..., start:stop, :]
    return x.index_select(-2, torch.arange(start, stop, device=x.device) % h)


# Pixel measures on CPU work through an image in bands of about this many values (1 MB
# of float32): every intermediate of a band stays in a core's L2 cache, which makes the
# chains of cheap element-wise passes below two to three times faster than whole-image
# passes that stream through memory. Accelerators take the whole image at once.
BAND_VALUES = 1 << 18


def band_rows(x: torch.Tensor, values_per_row: int) -> int:
    """Rows of ``x`` per band (all of them off the CPU)."""
    if x.device.type != "cpu":
        return int(x.shape[-2])
    return max(1, BAND_VALUES // max(1, values_per_row))


def moment_sums(v: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """The six sums every (A)GGD fit below needs, over ``dims`` of ``v``, stacked on a new
    last axis in float64: ``Σv², Σmin(v,0)², Σsign(min(v,0)), Σsign(v), Σv, Σmin(v,0)``.
    Counts are sums of signs (a bool sum is three times slower); ``|v| = v - 2·min(v, 0)``.
    Sums of bands or blocks add up: moments of a whole are the sum of its parts'."""
    neg = v.clamp(max=0.0)
    parts = (
        (v * v).sum(dims),
        (neg * neg).sum(dims),
        torch.sign(neg).sum(dims),
        torch.sign(v).sum(dims),
        v.sum(dims),
        neg.sum(dims),
    )
    return torch.stack([p.to(torch.float64) for p in parts], dim=-1)


def image_moments(x: torch.Tensor, shifts: tuple[tuple[int, int], ...]) -> torch.Tensor:
    """``(..., 1 + len(shifts), 6)`` moment sums of each ``(H, W)`` image of ``x``
    ``(..., H, W)`` and of its products with each circular shift of itself
    (``x .* circshift(x, shift)``), band by band."""
    h, w = x.shape[-2:]
    out = torch.zeros(*x.shape[:-2], 1 + len(shifts), 6, dtype=torch.float64, device=x.device)
    step = band_rows(x, w * x[..., 0, 0].numel())
    for r0 in range(0, h, step):
        r1 = min(h, r0 + step)
        band = x[..., r0:r1, :]
        out[..., 0, :] += moment_sums(band, (-2, -1))
        for i, (dy, dx) in enumerate(shifts, start=1):
            partner = _rows_circular(x, r0 - dy, r1 - dy)
            out[..., i, :] += moment_sums(_column_circshift_product(band, partner, dx), (-2, -1))
    return out


def block_moments(x: torch.Tensor, size: int, shifts: tuple[tuple[int, int], ...]) -> torch.Tensor:
    """``(..., n_blocks, 1 + len(shifts), 6)`` moment sums of each ``size``² block of each
    image of ``x`` ``(..., H, W)`` (row-major block order, whole blocks only) and of its
    products with each circular shift of itself *within the block*, a band of block rows
    at a time."""
    lead, (h, w) = x.shape[:-2], x.shape[-2:]
    images = x.reshape(-1, h, w)
    n, ny, nx = images.shape[0], h // size, w // size
    step = max(1, band_rows(x, n * w * size))
    parts = []
    for by in range(0, ny, step):
        rows = min(step, ny - by)
        band = images[:, by * size : (by + rows) * size, : nx * size]
        blocks = band.reshape(n, rows, size, nx, size).permute(0, 1, 3, 2, 4).reshape(n, -1, size, size)
        per_shift = [moment_sums(blocks, (-2, -1))]
        per_shift += [moment_sums(circshift_product(blocks, dy, dx), (-2, -1)) for dy, dx in shifts]
        parts.append(torch.stack(per_shift, dim=-2))
    if not parts:  # smaller than one block
        return torch.zeros(*lead, 0, 1 + len(shifts), 6, dtype=torch.float64, device=x.device)
    return torch.cat(parts, dim=1).reshape(*lead, ny * nx, 1 + len(shifts), 6)


def _nearest_on_grid(values: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """Index of the grid entry of the increasing ``ratio`` nearest to each value
    (``argmin((ratio - v)^2)``, the MATLAB table look-up, without the full table)."""
    hi = torch.searchsorted(ratio, values.clamp(min=float(ratio[0]), max=float(ratio[-1])).contiguous())
    hi = hi.clamp(1, ratio.numel() - 1)
    lo = hi - 1
    pick_lo = (values - ratio[lo]).abs() <= (ratio[hi] - values).abs()
    return torch.where(pick_lo, lo, hi)


def aggd_from_moments(
    moments: torch.Tensor, count: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric GGD fit from ``moment_sums`` (``(..., 6)``) of ``count`` values each:
    (alpha, mean, left scale, right scale), as ``estimateaggdparam.m``.

    Sets with no negative or no positive values get NaN, which the callers drop
    (``nanmean`` in the MATLAB code). Everything here is per set, in float64.
    """
    all_sq, neg_sq, neg_signs, all_signs, total, neg_total = moments.unbind(-1)
    n_neg = -neg_signs
    n_pos = all_signs + n_neg
    left = torch.sqrt(neg_sq / n_neg)
    right = torch.sqrt((all_sq - neg_sq) / n_pos)
    gamma_hat = left / right
    abs_mean = (total - 2.0 * neg_total) / count
    r_hat = abs_mean**2 / (all_sq / count)
    r_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    tables = _fit_tables(str(moments.device))
    idx = _nearest_on_grid(torch.nan_to_num(r_norm, nan=0.0), tables["aggd_ratio"])
    alpha = tables["gamma"][idx]
    lg1, lg2, lg3 = tables["lg1"][idx], tables["lg2"][idx], tables["lg3"][idx]
    scale = torch.exp(0.5 * (lg1 - lg3))
    bl, br = left * scale, right * scale
    mean = (br - bl) * torch.exp(lg2 - lg1)
    bad = torch.isnan(r_norm) | torch.isinf(r_norm)
    nan = torch.full_like(alpha, float("nan"))
    return (torch.where(bad, nan, alpha), torch.where(bad, nan, mean), bl, br)


def ggd_from_moments(moments: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-mean GGD fit from ``moment_sums`` of ``count`` values each: (alpha, variance),
    as ``estimateggdparam.m``."""
    all_sq, _, _, _, total, neg_total = moments.unbind(-1)
    sigma_sq = all_sq / count
    e = (total - 2.0 * neg_total) / count
    rho = sigma_sq / (e * e)
    # GGD ratio is 1/AGGD ratio; nearest on the reciprocal grid is not the same argmin,
    # so compare against the GGD table directly (it is decreasing: flip it).
    tables = _fit_tables(str(moments.device))
    flipped = tables["ggd_ratio_increasing"]
    idx_f = _nearest_on_grid(torch.nan_to_num(rho, nan=0.0, posinf=0.0), flipped)
    idx = flipped.numel() - 1 - idx_f
    return tables["gamma"][idx], sigma_sq


def aggd_fit(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric GGD fit of each row of ``(M, K)``: (alpha, mean, left scale, right scale)."""
    return aggd_from_moments(moment_sums(rows, (1,)), rows.shape[1])


def ggd_fit(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-mean GGD fit of each row of ``(M, K)``: (alpha, variance)."""
    return ggd_from_moments(moment_sums(rows, (1,)), rows.shape[1])
