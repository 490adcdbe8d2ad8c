"""PIQE (Venkatanath et al., NCC 2015): perception-based, parameter-free quality.

The image (8-bit luma) is padded by replication to a multiple of 16 and turned into
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

import torch
import torch.nn.functional as F
from PIL import Image

from imagejury.models.interfaces import QualityScore
from imagejury.models.quality import nss
from imagejury.models.quality.working import DEFAULT_MAX_SIDE, WorkingCopy, as_working_copies

BLOCK = 16
ACTIVITY_THRESHOLD = 0.1
SEGMENT_STD_THRESHOLD = 0.1
SEGMENT = 6


def _std(x: torch.Tensor, dim: int) -> torch.Tensor:
    return x.std(dim=dim, unbiased=True)


def piqe(gray: torch.Tensor) -> tuple[float, dict]:
    """PIQE score of a ``(H, W)`` 0..255 grey image and its block counts."""
    h, w = gray.shape
    img = F.pad(gray[None, None], (0, (-w) % BLOCK, 0, (-h) % BLOCK), mode="replicate")[0, 0]
    norm = nss.mscn(img.unsqueeze(0), border="replicate")[0]
    H, W = norm.shape
    blocks = norm.reshape(H // BLOCK, BLOCK, W // BLOCK, BLOCK).permute(0, 2, 1, 3).reshape(-1, BLOCK, BLOCK)
    n = len(blocks)
    var = blocks.reshape(n, -1).var(dim=1, unbiased=True)
    active = var > ACTIVITY_THRESHOLD
    # noticeable-artifact criterion: any low-activity 6-px segment on an edge
    edges = torch.stack([blocks[:, 0, :], blocks[:, :, -1], blocks[:, -1, :], blocks[:, :, 0]], dim=1)
    seg_std = _std(edges.unfold(2, SEGMENT, 1), dim=-1)
    impaired = (seg_std < SEGMENT_STD_THRESHOLD).flatten(1).any(dim=1)
    # noise criterion: centre vs surround deviation
    mid = BLOCK // 2
    centre = blocks[:, :, mid - 1 : mid + 1].reshape(n, -1)
    surround = torch.cat([blocks[:, :, : mid - 1], blocks[:, :, mid + 1 :]], dim=2).reshape(n, -1)
    cen_sur = torch.nan_to_num(_std(centre, 1) / _std(surround, 1), nan=0.0, posinf=0.0)
    sigma = torch.sqrt(var)
    beta = torch.nan_to_num(torch.abs(sigma - cen_sur) / torch.maximum(sigma, cen_sur), nan=0.0)
    noisy = sigma > 2.0 * beta
    zero = torch.zeros_like(var)
    dist = torch.where(active & impaired, 1.0 - var, zero) + torch.where(active & noisy, var, zero)
    n_active = int(active.sum())
    score = (float(dist.sum()) + 1.0) / (1.0 + n_active) * 100.0
    return score, {
        "blocks": n,
        "active_blocks": n_active,
        "artifact_blocks": int((active & impaired).sum()),
        "noise_blocks": int((active & noisy).sum()),
    }


class PiqeScorer:
    """Block-wise artifact and noise evidence on salient blocks; lower is better."""

    name = "piqe"
    higher_is_better = False
    range = (0.0, 100.0)

    def __init__(self, max_side: int | None = DEFAULT_MAX_SIDE, device: str = "cpu") -> None:
        self.max_side = max_side
        self.device = device
        self.where = "built in (no parameters)"

    def score(self, images: Sequence[Image.Image | WorkingCopy]) -> list[QualityScore]:
        out = []
        for copy in as_working_copies(images, self.max_side, self.device):
            value, details = piqe(copy.gray)
            details["working_size"] = list(copy.size)
            out.append(QualityScore(self.name, min(max(value, 0.0), 100.0), False, self.range, details))
        return out
