"""PIQE (Venkatanath et al., NCC 2015): perception-based, parameter-free quality.

The image (luma, 0..255) is padded by replication to a multiple of 16 and turned into
MSCN coefficients (7-tap Gaussian, sigma 7/6, replicate borders, C = 1). Each 16×16
block whose MSCN variance exceeds 0.1 is "spatially active". An active block is
distorted by

- a *noticeable artifact* (blocking, sudden discontinuities) when any 6-pixel segment
  of one of its four edges has a standard deviation below 0.1, weighted ``1 - var``;
- *noise* when the block's standard deviation exceeds twice ``beta``, the normalised
  gap between it and the centre-to-surround deviation ratio (centre = the two middle
  columns, surround = the other fourteen), weighted ``var``.

Score = 100 · (sum of distortion weights + 1) / (number of active blocks + 1). Lower is
better; 0–20 excellent, 21–35 good, 36–50 fair, 51–80 poor, 81–100 bad (the bands the
paper and the MATLAB documentation use). A uniform image scores 100.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from imagejury.models.interfaces import QualityScore
from imagejury.models.quality._common import DEFAULT_MAX_SIDE, gray255, mscn, working_copy

BLOCK = 16
ACTIVITY_THRESHOLD = 0.1
SEGMENT_STD_THRESHOLD = 0.1
SEGMENT = 6


def piqe(gray: np.ndarray) -> tuple[float, dict]:
    """PIQE score of a 0..255 grey image and block counts."""
    h, w = gray.shape
    pad_h, pad_w = (-h) % BLOCK, (-w) % BLOCK
    img = np.pad(gray, ((0, pad_h), (0, pad_w)), mode="edge")
    img = np.round(img)
    norm = mscn(img, c=1.0, mode="nearest")
    H, W = norm.shape
    blocks = norm.reshape(H // BLOCK, BLOCK, W // BLOCK, BLOCK).transpose(0, 2, 1, 3).reshape(-1, BLOCK, BLOCK)
    var = blocks.reshape(len(blocks), -1).var(axis=1, ddof=1)
    active = var > ACTIVITY_THRESHOLD

    # noticeable-artifact criterion: any low-activity 6-px segment on an edge
    edges = np.stack([blocks[:, 0, :], blocks[:, :, -1], blocks[:, -1, :], blocks[:, :, 0]], axis=1)
    seg_std = sliding_window_view(edges, SEGMENT, axis=2).std(axis=-1, ddof=1)
    impaired = (seg_std < SEGMENT_STD_THRESHOLD).any(axis=(1, 2))

    # noise criterion: centre vs surround deviation
    mid = BLOCK // 2
    centre = blocks[:, :, mid - 1 : mid + 1].reshape(len(blocks), -1)
    surround = np.concatenate([blocks[:, :, : mid - 1], blocks[:, :, mid + 1 :]], axis=2).reshape(len(blocks), -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cen_sur = centre.std(axis=1, ddof=1) / surround.std(axis=1, ddof=1)
    cen_sur = np.nan_to_num(cen_sur, nan=0.0, posinf=0.0)
    sigma = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.abs(sigma - cen_sur) / np.maximum(sigma, cen_sur)
    beta = np.nan_to_num(beta, nan=0.0)
    noisy = sigma > 2.0 * beta

    dist = np.where(active & impaired, 1.0 - var, 0.0) + np.where(active & noisy, var, 0.0)
    n_active = int(active.sum())
    score = (float(dist.sum()) + 1.0) / (1.0 + n_active) * 100.0
    return score, {
        "blocks": int(len(blocks)),
        "active_blocks": n_active,
        "artifact_blocks": int((active & impaired).sum()),
        "noise_blocks": int((active & noisy).sum()),
    }


class PiqeScorer:
    """Block-wise artifact and noise evidence on salient blocks; lower is better."""

    name = "piqe"
    higher_is_better = False
    range = (0.0, 100.0)

    def __init__(self, max_side: int | None = DEFAULT_MAX_SIDE) -> None:
        self.max_side = max_side
        self.where = "built in (no parameters)"

    def score(self, images: Sequence[Image.Image]) -> list[QualityScore]:
        out = []
        for image in images:
            work = working_copy(image, self.max_side)
            value, details = piqe(gray255(work))
            details["working_size"] = list(work.size)
            out.append(QualityScore(self.name, float(np.clip(value, *self.range)), False, self.range, details))
        return out
