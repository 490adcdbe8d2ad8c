"""NIQE (Mittal, Soundararajan & Bovik 2013), as the authors' MATLAB release computes it.

``computequality.m`` with the published parameters (``modelparameters.mat``: the mean
``mu_prisparam`` and covariance ``cov_prisparam`` of 36 patch features over pristine
photos; shipped here as ``data/niqe_pristine_params.npz``, the copy that BasicSR —
Apache-2.0 — distributes, see ``data/NOTICE``):

- 8-bit grey (MATLAB ``rgb2gray`` on uint8), cropped to a multiple of 96;
- per scale: MSCN with a 7-tap Gaussian (sigma 7/6), ``imfilter(..., 'replicate')``,
  C = 1; 96×96 blocks at scale one, 48×48 at scale two (``imresize(im, 0.5)``,
  MATLAB bicubic with antialiasing);
- per block: an AGGD fit of the MSCN (alpha, mean of the two scales) and of the four
  circularly shifted neighbour products (alpha, mean, left scale, right scale);
- quality = ``sqrt((mu0 - mu)ᵀ pinv((S0 + S)/2) (mu0 - mu))`` over the blocks' mean and
  covariance (blocks whose fit is undefined are left out, as ``nanmean``/``nancov``).

Lower is better; pristine photos score about 3–5, heavy distortion 10+. The
"sharpness selection" of the paper applies when fitting the pristine model, not when
scoring. ``benchmarks/iqa_parity.py`` checks this against the authors' scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from imagejury.models.errors import ModelUnavailableError
from imagejury.models.interfaces import QualityScore
from imagejury.models.quality import nss
from imagejury.models.quality.working import (
    DEFAULT_MAX_SIDE,
    WorkingCopy,
    as_working_copies,
    group_halves,
    group_planes,
    in_groups,
)

PATCH = 96
PARAMS_FILE = Path(__file__).parent / "data" / "niqe_pristine_params.npz"
# circshift offsets of computefeature.m: horizontal, vertical, two diagonals
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


def _sizes(copy: WorkingCopy) -> str:
    """The measured size, and the upload's when it was shrunk first."""
    if tuple(copy.original_size) == tuple(copy.size):
        return f"{list(copy.size)}"
    return f"{list(copy.size)} (the {list(copy.original_size)} image shrunk to the working size)"


def locate_niqe_params() -> Path:
    if not PARAMS_FILE.is_file():
        raise ModelUnavailableError("quality:niqe", str(PARAMS_FILE), "reinstall imagejury (the file ships with it)")
    return PARAMS_FILE


def block_features(coeffs: torch.Tensor, size: int) -> torch.Tensor:
    """The 18 ``computefeature.m`` features of each ``size``² block of each image of MSCN
    ``coeffs`` ``(N, H, W)``: ``(N, n_blocks, 18)``."""
    # one fit call for every block and every set (the MSCN and its four products): the
    # fit is element-wise over the leading dimensions, so an accelerator launches it once
    alpha, mean, bl, br = nss.aggd_from_moments(nss.block_moments(coeffs, size, _SHIFTS), size * size)
    cols = [alpha[..., 0], (bl[..., 0] + br[..., 0]) / 2.0]
    for i in range(1, 1 + len(_SHIFTS)):
        cols += [alpha[..., i], mean[..., i], bl[..., i], br[..., i]]
    return torch.stack(cols, dim=-1)


def niqe_features(
    gray: torch.Tensor,
    half: torch.Tensor | None = None,
    stats: tuple[torch.Tensor, torch.Tensor] | None = None,
    half_stats: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """``(N, n_blocks, 36)`` features of same-size 0..255 grey images ``(N, H, W)``, at
    least 192 px each side.

    The images are cropped to a multiple of ``PATCH``. ``half`` (``imresize_half(gray)``),
    ``stats`` and ``half_stats`` (replicate-border local mean and deviation of ``gray`` and
    of ``half``) are the working copies' shared planes when the caller has them; the
    crop's own are derived from them by recomputing the strips along the new edges only.
    """
    nss.require_batch(gray, "niqe_features")
    h, w = gray.shape[-2:]
    ch, cw = h - h % PATCH, w - w % PATCH
    img = gray[..., :ch, :cw]
    small = nss.imresize_half(img) if half is None else nss.crop_half(gray, half, ch, cw)
    if stats is None:
        m1 = nss.mscn(img, border="replicate")
    else:
        m1 = nss.crop_mscn(gray, *stats, ch, cw)
    if half is None or half_stats is None:
        m2 = nss.mscn(small, border="replicate")
    else:
        # the cropped image's half differs from the shared half in its last two rows and
        # columns (the resize reads past the crop), so its stats differ within 2 + 3 px
        changed = 2 if (ch, cw) != (h, w) else 0
        half_mu, half_sigma = half_stats
        small_h, small_w = small.shape[-2:]
        m2 = nss.crop_mscn(small, half_mu, half_sigma, small_h, small_w, changed=changed)
    return torch.cat([block_features(m1, PATCH), block_features(m2, PATCH // 2)], dim=-1)


def mvg_distance(feats: torch.Tensor, mu0: torch.Tensor, cov0: torch.Tensor) -> float:
    """NIQE's distance between the image's block statistics and the pristine model."""
    feats = feats.to(torch.float64)
    mu = torch.nanmean(feats, dim=0)
    complete = feats[~torch.isnan(feats).any(dim=1)]
    cov = torch.cov(complete.T) if len(complete) > 1 else torch.zeros_like(cov0)
    d = (mu0 - mu).unsqueeze(1)
    inv = torch.linalg.pinv((cov0 + cov) / 2.0)
    return float(torch.sqrt(torch.clamp((d.T @ inv @ d).squeeze(), min=0.0)))


class NiqeScorer:
    """Distance from pristine natural-scene statistics; lower is better."""

    name = "niqe"
    higher_is_better = False
    range = (0.0, 100.0)
    min_side = 2 * PATCH  # at least 2×2 blocks, or the covariance is meaningless

    def __init__(self, max_side: int | None = DEFAULT_MAX_SIDE, device: str = "cpu") -> None:
        params = np.load(locate_niqe_params())
        self.mu0 = torch.as_tensor(np.ravel(params["mu_pris_param"]), dtype=torch.float64)
        self.cov0 = torch.as_tensor(params["cov_pris_param"], dtype=torch.float64)
        self.max_side = max_side
        self.device = device
        self.where = str(PARAMS_FILE)

    def _not_measured(self, copy: WorkingCopy) -> QualityScore:
        """Too small for 96 px blocks: "not measured" rather than a number."""
        error = f"NIQE needs at least {self.min_side} px on each side, got {_sizes(copy)}"
        return QualityScore(self.name, float("nan"), False, self.range, {"error": error})

    def _scores(self, copies: Sequence[WorkingCopy]) -> list[QualityScore]:
        """Scores of one measuring group (same-size copies, features computed together)."""
        if min(copies[0].size) < self.min_side:
            return [self._not_measured(c) for c in copies]
        p = group_planes(copies)
        half, half_mu, half_sigma = group_halves(copies)
        feats = niqe_features(p.gray, half, (p.mu, p.sigma), (half_mu, half_sigma)).cpu()
        out = []
        for copy, image_feats in zip(copies, feats):
            value = mvg_distance(image_feats, self.mu0, self.cov0)
            details: dict = {"patches": int(len(image_feats)), "working_size": list(copy.size)}
            if not math.isfinite(value):
                details["error"] = (
                    "NIQE is undefined here: its 96 px blocks have no positive or no negative normalised "
                    "contrast to fit (flat or posterised content has no natural-scene statistics)"
                )
            out.append(QualityScore(self.name, value, False, self.range, details))
        return out

    def score(self, images: Sequence[Image.Image | WorkingCopy]) -> list[QualityScore]:
        return in_groups(as_working_copies(images, self.max_side, self.device), self._scores)
