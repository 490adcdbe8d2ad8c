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


def gamma_grid(device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.as_tensor(_GAMMA_GRID, dtype=torch.float64, device=device)


def images_to_tensor(images: list[Image.Image], device: torch.device | str = "cpu") -> torch.Tensor:
    """Same-size RGB images as a ``(N, 3, H, W)`` float64 tensor of 0..255 values."""
    arrays = [np.asarray(im.convert("RGB") if im.mode != "RGB" else im, dtype=np.uint8) for im in images]
    batch = torch.from_numpy(np.stack(arrays)).to(device)
    return batch.permute(0, 3, 1, 2).to(torch.float64)


def rgb_to_gray_uint8(rgb: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` 0..255 → ``(N, H, W)`` grey rounded to integers, as MATLAB does."""
    w = torch.tensor(MATLAB_GRAY_WEIGHTS, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return torch.round((rgb * w).sum(1)).clamp(0, 255)


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    return (1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1) + (-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) * (
        (ax > 1) & (ax <= 2)
    )


def _half_weights() -> np.ndarray:
    """The 8 MATLAB antialiased bicubic taps for scale 0.5 (sum 1)."""
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


def imresize_half(gray: torch.Tensor) -> torch.Tensor:
    """MATLAB ``imresize(gray, 0.5)`` for a ``(N, H, W)`` batch: ``(N, ceil(H/2), ceil(W/2))``."""
    out = gray
    for dim in (1, 2):
        n = out.shape[dim]
        size_out = math.ceil(n / 2)
        padded = _symmetric_pad(out, 4, dim)
        # output i (0-based) reads inputs 2i-3 .. 2i+4, i.e. padded positions 2i+1 .. 2i+8:
        # eight strided slices, weighted and summed (exact in float64, no convolution kernel)
        acc = torch.zeros_like(padded.narrow(dim, 0, size_out))
        for k, w in enumerate(_HALF_TAPS):
            acc += (
                float(w) * padded.narrow(dim, 1 + k, 2 * size_out - 1)[(slice(None),) * dim + (slice(None, None, 2),)]
            )
        out = acc
    return out


def gaussian_taps(size: int = 7, sigma: float = 7.0 / 6.0) -> np.ndarray:
    """1-D normalised Gaussian; ``fspecial('gaussian', size, sigma)`` is its outer product."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    w = np.exp(-(x**2) / (2.0 * sigma**2))
    return w / w.sum()


def _blur(x: torch.Tensor, taps: torch.Tensor, border: str) -> torch.Tensor:
    """Separable correlation of a ``(N, H, W)`` batch with ``taps`` along both axes, as a
    weighted sum of shifted slices (exact in float64 and fast on CPU, where float64
    convolutions have no optimised kernel)."""
    r = (taps.numel() - 1) // 2
    mode = "constant" if border == "zeros" else "replicate"
    padded = F.pad(x.unsqueeze(1), (r, r, r, r), mode=mode).squeeze(1)
    h, w = x.shape[-2:]
    weights = taps.tolist()
    rows = sum(wk * padded[:, k : k + h, :] for k, wk in enumerate(weights))
    return sum(wk * rows[:, :, k : k + w] for k, wk in enumerate(weights))


def mscn(gray: torch.Tensor, border: str = "replicate", c: float = 1.0) -> torch.Tensor:
    """Mean-subtracted contrast-normalised coefficients of a ``(N, H, W)`` batch.

    ``border``: ``zeros`` (MATLAB ``filter2``, used by BRISQUE) or ``replicate``
    (``imfilter(..., 'replicate')``, used by NIQE and PIQE).
    """
    taps = torch.as_tensor(gaussian_taps(), dtype=gray.dtype, device=gray.device)
    mu = _blur(gray, taps, border)
    sigma = torch.sqrt(torch.abs(_blur(gray * gray, taps, border) - mu * mu))
    return (gray - mu) / (sigma + c)


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
    which the callers drop (``nanmean`` in the MATLAB code).
    """
    dev = rows.device
    neg, pos = rows < 0, rows > 0
    sq = rows * rows
    left = torch.sqrt((sq * neg).sum(1) / neg.sum(1))
    right = torch.sqrt((sq * pos).sum(1) / pos.sum(1))
    gamma_hat = left / right
    r_hat = rows.abs().mean(1) ** 2 / sq.mean(1)
    r_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    ratio = torch.as_tensor(_AGGD_RATIO, dtype=rows.dtype, device=dev)
    idx = _nearest_on_grid(torch.nan_to_num(r_norm, nan=0.0), ratio)
    alpha = gamma_grid(dev).to(rows.dtype)[idx]
    lg1 = torch.as_tensor(_LG1, dtype=rows.dtype, device=dev)[idx]
    lg2 = torch.as_tensor(_LG2, dtype=rows.dtype, device=dev)[idx]
    lg3 = torch.as_tensor(_LG3, dtype=rows.dtype, device=dev)[idx]
    scale = torch.exp(0.5 * (lg1 - lg3))
    bl, br = left * scale, right * scale
    mean = (br - bl) * torch.exp(lg2 - lg1)
    bad = torch.isnan(r_norm) | torch.isinf(r_norm)
    nan = torch.full_like(alpha, float("nan"))
    return (torch.where(bad, nan, alpha), torch.where(bad, nan, mean), bl, br)


def ggd_fit(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-mean GGD fit of each row: (alpha, variance), as ``estimateggdparam.m``."""
    dev = rows.device
    sigma_sq = (rows * rows).mean(1)
    e = rows.abs().mean(1)
    rho = sigma_sq / (e * e)
    # GGD ratio is 1/AGGD ratio; nearest on the reciprocal grid is not the same argmin,
    # so compare against the GGD table directly (it is decreasing: flip it).
    ggd_ratio = torch.as_tensor(1.0 / _AGGD_RATIO, dtype=rows.dtype, device=dev)
    flipped = torch.flip(ggd_ratio, dims=[0])
    idx_f = _nearest_on_grid(torch.nan_to_num(rho, nan=0.0, posinf=0.0), flipped)
    idx = ggd_ratio.numel() - 1 - idx_f
    alpha = gamma_grid(dev).to(rows.dtype)[idx]
    return alpha, sigma_sq
