"""Shared pieces of the no-reference quality scorers: grey conversion, working size,
MSCN coefficients and the generalised-Gaussian fits used by BRISQUE and NIQE.

The fits follow the reference MATLAB code of Mittal et al. (LIVE): the shape parameter
is found by moment matching against a table of ``gamma`` values 0.2:0.001:10.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage, special

# Largest side the NSS scorers work at. Bigger images are shrunk first (LANCZOS) so a
# 4k upload costs about what a 1k one does; the features are statistics of local
# contrast and change little under a moderate downscale, but a downscale does hide
# some blur and noise, so the value is reported together with ``working_size``.
DEFAULT_MAX_SIDE = 1024

# MATLAB rgb2gray weights (ITU-R BT.601), as the reference BRISQUE/PIQE code uses.
_RGB2GRAY = np.array([0.2989, 0.5870, 0.1140], dtype=np.float64)

GAMMA_GRID = np.arange(0.2, 10.0 + 1e-9, 0.001)
_G1 = special.gamma(1.0 / GAMMA_GRID)
_G2 = special.gamma(2.0 / GAMMA_GRID)
_G3 = special.gamma(3.0 / GAMMA_GRID)
# GGD:  rho(a) = Γ(1/a)Γ(3/a)/Γ(2/a)²  (estimateggdparam.m)
GGD_RATIO = _G1 * _G3 / (_G2**2)
# AGGD: phi(a) = Γ(2/a)²/(Γ(1/a)Γ(3/a))  (estimateaggdparam.m)
AGGD_RATIO = (_G2**2) / (_G1 * _G3)


def to_rgb(image: Image.Image) -> Image.Image:
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image, got {type(image).__name__}")
    if image.width < 1 or image.height < 1:
        raise ValueError("image has no pixels")
    return image if image.mode == "RGB" else image.convert("RGB")


def working_copy(image: Image.Image, max_side: int | None) -> Image.Image:
    """The image shrunk (never enlarged) so that its longer side is at most ``max_side``."""
    image = to_rgb(image)
    if max_side and max(image.size) > max_side:
        scale = max_side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image


def gray255(image: Image.Image) -> np.ndarray:
    """Luma in 0..255 as float64 (MATLAB ``rgb2gray`` weights)."""
    arr = np.asarray(to_rgb(image), dtype=np.float64)
    return arr @ _RGB2GRAY


def resize_half(gray: np.ndarray) -> np.ndarray:
    """Half-size bicubic with anti-aliasing (as MATLAB ``imresize(im, 0.5)`` does)."""
    h, w = gray.shape
    img = Image.fromarray(gray.astype(np.float32), mode="F")
    out = img.resize((max(1, int(w * 0.5)), max(1, int(h * 0.5))), Image.Resampling.BICUBIC)
    return np.asarray(out, dtype=np.float64)


def gaussian_window(size: int = 7, sigma: float = 7.0 / 6.0) -> np.ndarray:
    """1-D normalised Gaussian (``fspecial('gaussian', size, sigma)`` is its outer product)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    w = np.exp(-(x**2) / (2.0 * sigma**2))
    return w / w.sum()


def mscn(gray: np.ndarray, c: float = 1.0, mode: str = "constant", window: np.ndarray | None = None) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients (Ruderman; Mittal et al. 2012).

    ``mode`` is the border rule: ``constant`` (zeros, MATLAB ``filter2``) or ``nearest``
    (``imfilter(..., 'replicate')``).
    """
    win = gaussian_window() if window is None else window
    mu = ndimage.correlate1d(gray, win, axis=0, mode=mode)
    mu = ndimage.correlate1d(mu, win, axis=1, mode=mode)
    sq = ndimage.correlate1d(gray * gray, win, axis=0, mode=mode)
    sq = ndimage.correlate1d(sq, win, axis=1, mode=mode)
    sigma = np.sqrt(np.abs(sq - mu * mu))
    return (gray - mu) / (sigma + c)


def ggd_fit(x: np.ndarray) -> tuple[float, float]:
    """Zero-mean generalised Gaussian: (shape alpha, variance sigma²)."""
    v = x.ravel()
    sigma_sq = float(np.mean(v * v))
    e = float(np.mean(np.abs(v)))
    if e == 0.0 or sigma_sq == 0.0:
        return float(GAMMA_GRID[-1]), 0.0
    rho = sigma_sq / (e * e)
    alpha = float(GAMMA_GRID[np.argmin(np.abs(rho - GGD_RATIO))])
    return alpha, sigma_sq


def aggd_fit(x: np.ndarray) -> tuple[float, float, float, float]:
    """Asymmetric GGD: (alpha, mean, left std, right std) as in ``estimateaggdparam.m``."""
    v = x.ravel()
    neg = v[v < 0]
    pos = v[v > 0]
    left = float(np.sqrt(np.mean(neg * neg))) if neg.size else 0.0
    right = float(np.sqrt(np.mean(pos * pos))) if pos.size else 0.0
    sq = float(np.mean(v * v))
    if right == 0.0 or left == 0.0 or sq == 0.0:
        return float(GAMMA_GRID[-1]), 0.0, left, right
    gamma_hat = left / right
    r_hat = float(np.mean(np.abs(v))) ** 2 / sq
    r_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    idx = int(np.argmin((AGGD_RATIO - r_norm) ** 2))
    alpha = float(GAMMA_GRID[idx])
    const = np.sqrt(_G1[idx] / _G3[idx])
    mean = (right - left) * (_G2[idx] / _G1[idx]) * const
    return alpha, float(mean), left, right
