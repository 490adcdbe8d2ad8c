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
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# MATLAB rgb2gray: the first row of inv([1 0.956 0.621; 1 -0.272 -0.647; 1 -1.106 1.703]).
MATLAB_GRAY_WEIGHTS = (0.298936021293775, 0.587043074451121, 0.114020904255103)

_GAMMA_GRID = np.arange(0.2, 10.0 + 1e-9, 0.001)
_LG1 = np.array([math.lgamma(1.0 / g) for g in _GAMMA_GRID])
_LG2 = np.array([math.lgamma(2.0 / g) for g in _GAMMA_GRID])
_LG3 = np.array([math.lgamma(3.0 / g) for g in _GAMMA_GRID])
# AGGD: r(a) = Γ(2/a)² / (Γ(1/a) Γ(3/a)), increasing in a.   GGD: rho(a) = 1 / r(a).
_AGGD_RATIO = np.exp(2 * _LG2 - _LG1 - _LG3)
# The precision every pixel measure works in, on every device: float32 (the reductions
# are pairwise, and the parity tests hold the scores to the references' published values).
WORK_DTYPE = torch.float32


def gamma_grid(device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.as_tensor(_GAMMA_GRID, dtype=torch.float64, device=device)


def images_to_tensor(images: list[Image.Image], device: torch.device | str = "cpu") -> torch.Tensor:
    """Same-size RGB images as a contiguous ``(N, 3, H, W)`` ``uint8`` tensor on ``device``."""
    arrays = [np.asarray(im.convert("RGB") if im.mode != "RGB" else im, dtype=np.uint8) for im in images]
    batch = torch.from_numpy(np.stack(arrays)).to(device)
    return batch.permute(0, 3, 1, 2).contiguous()


def rgb_to_gray_uint8(rgb: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` 0..255 → ``(N, H, W)`` grey rounded to integers, as MATLAB does.

    The weighted sum is taken in float64 whatever the working precision, so the rounding
    to 8 bits matches MATLAB's exactly; the result is returned in ``WORK_DTYPE`` (integers
    0..255 are exact in it).
    """
    x = rgb.to(torch.float64)
    gray = x[:, 0] * MATLAB_GRAY_WEIGHTS[0]
    gray.add_(x[:, 1], alpha=MATLAB_GRAY_WEIGHTS[1]).add_(x[:, 2], alpha=MATLAB_GRAY_WEIGHTS[2])
    out = gray.round_().clamp_(0, 255)
    return out.to(WORK_DTYPE) if rgb.dtype in (torch.uint8, WORK_DTYPE) else out.to(rgb.dtype)


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


def blur(x: torch.Tensor, border: str = "replicate", outside: float = 0.0) -> torch.Tensor:
    """The MSCN window (7-tap Gaussian, sigma 7/6, separable) over ``(..., H, W)``.

    ``border``: ``zeros`` (MATLAB ``filter2``: the image continues as ``outside``, which
    is 0 unless ``x`` was shifted) or ``replicate`` (``imfilter(..., 'replicate')``).
    """
    batch = x.reshape(-1, 1, *x.shape[-2:])
    if border == "zeros":
        padded = F.pad(batch, (_R, _R, _R, _R), mode="constant", value=outside)[:, 0]
    else:
        padded = F.pad(batch, (_R, _R, _R, _R), mode="replicate")[:, 0]
    return _blur_dim(_blur_dim(padded, 1), 2).reshape(x.shape)


def local_stats(gray: torch.Tensor, border: str = "replicate") -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian-weighted local mean and deviation ``(mu, sigma)`` of a ``(N, H, W)`` batch.

    ``sigma = sqrt(|blur(I²) - blur(I)²|)`` as the MATLAB code has it. The grey values are
    centred on 128 first: the formula is shift-invariant, and the smaller squares keep
    float32's cancellation error in flat regions four times smaller (with zero borders,
    the padding is shifted too, so it is still zero in the original's terms).
    """
    shift = 128.0
    centred = gray - shift
    mu = blur(centred, border, outside=-shift)  # zero borders stay zeros of the original
    sq = blur(centred * centred, border, outside=shift * shift)
    sigma = sq.sub_(mu * mu).abs_().sqrt_()
    return mu.add_(shift), sigma


def mscn_from_stats(gray: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """``(I - mu) / (sigma + C)``."""
    return (gray - mu).div_(sigma + c)


def mscn(gray: torch.Tensor, border: str = "replicate", c: float = 1.0) -> torch.Tensor:
    """Mean-subtracted contrast-normalised coefficients of a ``(N, H, W)`` batch.

    ``border``: ``zeros`` (MATLAB ``filter2``, used by BRISQUE) or ``replicate``
    (``imfilter(..., 'replicate')``, used by NIQE and PIQE).
    """
    return mscn_from_stats(gray, *local_stats(gray, border), c)


def crop_stats(
    gray: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replicate-border stats of ``gray[..., :height, :width]`` from those of ``gray``.

    Inside the crop the window sees the same pixels, except within ``_R`` pixels of the
    new bottom and right edges, where the crop replicates its own last row/column. Those
    strips are recomputed from ``2 * _R`` rows/columns of the crop: exact, at the cost of
    two thin strips instead of a whole image.
    """
    crop = gray[..., :height, :width]
    if (height, width) == tuple(gray.shape[-2:]):
        return mu, sigma
    if min(height, width) < 4 * _R:
        return local_stats(crop)
    mu, sigma = mu[..., :height, :width].clone(), sigma[..., :height, :width].clone()
    if height < gray.shape[-2]:
        m, s = local_stats(crop[..., height - 2 * _R :, :])
        mu[..., height - _R :, :], sigma[..., height - _R :, :] = m[..., _R:, :], s[..., _R:, :]
    if width < gray.shape[-1]:
        m, s = local_stats(crop[..., :, width - 2 * _R :])
        mu[..., :, width - _R :], sigma[..., :, width - _R :] = m[..., :, _R:], s[..., :, _R:]
    return mu, sigma


def zero_border_stats(gray: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``filter2`` (zero-border) stats of ``gray`` from its replicate-border ones.

    The two differ only within ``_R`` pixels of each edge; those four strips are
    recomputed with zero borders from ``2 * _R`` rows/columns each.
    """
    h, w = gray.shape[-2:]
    if min(h, w) < 4 * _R:
        return local_stats(gray, "zeros")
    mu, sigma = mu.clone(), sigma.clone()
    d = 2 * _R
    for rows, keep in ((slice(0, d), slice(0, _R)), (slice(h - d, h), slice(_R, d))):
        m, s = local_stats(gray[..., rows, :], "zeros")
        target = slice(rows.start + keep.start, rows.start + keep.stop)
        mu[..., target, :], sigma[..., target, :] = m[..., keep, :], s[..., keep, :]
    for cols, keep in ((slice(0, d), slice(0, _R)), (slice(w - d, w), slice(_R, d))):
        m, s = local_stats(gray[..., :, cols], "zeros")
        target = slice(cols.start + keep.start, cols.start + keep.stop)
        mu[..., :, target], sigma[..., :, target] = m[..., :, keep], s[..., :, keep]
    return mu, sigma


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


def _nearest_on_grid(values: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """Index of the grid entry of the increasing ``ratio`` nearest to each value
    (``argmin((ratio - v)^2)``, the MATLAB table look-up, without the full table)."""
    hi = torch.searchsorted(ratio, values.clamp(min=float(ratio[0]), max=float(ratio[-1])).contiguous())
    hi = hi.clamp(1, ratio.numel() - 1)
    lo = hi - 1
    pick_lo = (values - ratio[lo]).abs() <= (ratio[hi] - values).abs()
    return torch.where(pick_lo, lo, hi)


def aggd_fit(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric GGD fit of each row of ``(M, K)``: (alpha, mean, left scale, right scale).

    As ``estimateaggdparam.m``; rows with no negative or no positive values get NaN,
    which the callers drop (``nanmean`` in the MATLAB code). Each row is split once into
    its negative and positive parts; every moment the fit needs is a sum over those.
    """
    dev, f64 = rows.device, torch.float64
    # the per-row sums are taken in the working precision; everything per row after
    # them (ratios, the table look-up) in float64, as the MATLAB code has it
    neg, pos = rows.clamp(max=0.0), rows.clamp(min=0.0)
    neg_sq, pos_sq = neg.square().sum(1).to(f64), pos.square().sum(1).to(f64)
    # counts as sums of signs (a bool sum is three times slower); |x| = pos - neg
    n_neg, n_pos = -torch.sign(neg).sum(1).to(f64), torch.sign(pos).sum(1).to(f64)
    left = torch.sqrt(neg_sq / n_neg)
    right = torch.sqrt(pos_sq / n_pos)
    gamma_hat = left / right
    abs_mean = (pos.sum(1).to(f64) - neg.sum(1).to(f64)) / rows.shape[1]
    r_hat = abs_mean**2 / ((neg_sq + pos_sq) / rows.shape[1])
    r_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    ratio = torch.as_tensor(_AGGD_RATIO, dtype=f64, device=dev)
    idx = _nearest_on_grid(torch.nan_to_num(r_norm, nan=0.0), ratio)
    alpha = gamma_grid(dev)[idx]
    lg1 = torch.as_tensor(_LG1, dtype=f64, device=dev)[idx]
    lg2 = torch.as_tensor(_LG2, dtype=f64, device=dev)[idx]
    lg3 = torch.as_tensor(_LG3, dtype=f64, device=dev)[idx]
    scale = torch.exp(0.5 * (lg1 - lg3))
    bl, br = left * scale, right * scale
    mean = (br - bl) * torch.exp(lg2 - lg1)
    bad = torch.isnan(r_norm) | torch.isinf(r_norm)
    nan = torch.full_like(alpha, float("nan"))
    return (torch.where(bad, nan, alpha), torch.where(bad, nan, mean), bl, br)


def ggd_fit(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-mean GGD fit of each row: (alpha, variance), as ``estimateggdparam.m``."""
    dev = rows.device
    sigma_sq = (rows * rows).mean(1).to(torch.float64)
    e = rows.abs().mean(1).to(torch.float64)
    rho = sigma_sq / (e * e)
    # GGD ratio is 1/AGGD ratio; nearest on the reciprocal grid is not the same argmin,
    # so compare against the GGD table directly (it is decreasing: flip it).
    ggd_ratio = torch.as_tensor(1.0 / _AGGD_RATIO, dtype=torch.float64, device=dev)
    flipped = torch.flip(ggd_ratio, dims=[0])
    idx_f = _nearest_on_grid(torch.nan_to_num(rho, nan=0.0, posinf=0.0), flipped)
    idx = ggd_ratio.numel() - 1 - idx_f
    alpha = gamma_grid(dev)[idx]
    return alpha, sigma_sq
