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

BLOCK = 16
ACTIVITY_THRESHOLD = 0.1
SEGMENT_STD_THRESHOLD = 0.1
SEGMENT = 6


def _block_sums(x: torch.Tensor, cols: slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
    """Per 16×16 block of each image of ``x`` ``(N, H, W)``: the sum and the sum of
    squares of the block's columns ``cols``, in float64, as ``(N, H/16, W/16)`` grids (no
    block copies)."""
    n, h, w = x.shape
    grid = x.view(n, h // BLOCK, BLOCK, w // BLOCK, BLOCK)[..., cols]
    return grid.sum((2, 4), dtype=torch.float64), (grid * grid).sum((2, 4), dtype=torch.float64)


def _unbiased_std(total: torch.Tensor, squares: torch.Tensor, n: int) -> torch.Tensor:
    return ((squares - total * total / n) / (n - 1)).clamp_(min=0.0).sqrt_()


def _edge_segments_flat(norm: torch.Tensor) -> torch.Tensor:
    """Per block of each image of ``norm`` ``(N, H, W)``: does any 6-pixel segment of its
    four edges have a standard deviation below ``SEGMENT_STD_THRESHOLD`` (a noticeable
    artifact)? ``(N, H/16, W/16)`` bools."""
    n, h, w = norm.shape
    grid = norm.view(n, h // BLOCK, BLOCK, w // BLOCK, BLOCK)
    edges = torch.stack(
        [
            grid[:, :, 0, :, :],
            grid[:, :, :, :, -1].transpose(2, 3),
            grid[:, :, -1, :, :],
            grid[:, :, :, :, 0].transpose(2, 3),
        ],
        dim=3,
    ).to(torch.float64)  # (N, H/16, W/16, 4, 16)
    # running sums give every 6-pixel window's sum and sum of squares at once
    # (an ``unfold(...).std()`` over the same windows is thirty times slower on CPU)
    zeros = torch.zeros(*edges.shape[:-1], 1, dtype=edges.dtype, device=edges.device)
    run = torch.cumsum(torch.cat([zeros, edges], dim=-1), dim=-1)
    run_sq = torch.cumsum(torch.cat([zeros, edges * edges], dim=-1), dim=-1)
    seg_sum = run[..., SEGMENT:] - run[..., :-SEGMENT]
    seg_sq = run_sq[..., SEGMENT:] - run_sq[..., :-SEGMENT]
    seg_std = _unbiased_std(seg_sum, seg_sq, SEGMENT)
    return (seg_std < SEGMENT_STD_THRESHOLD).flatten(3).any(dim=3)


def _block_statistics(norm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per 16×16 block of each image of MSCN ``norm`` ``(N, H, W)``: its variance, whether
    an edge segment is flat (``_edge_segments_flat``), and the centre-to-surround
    deviation ratio (centre = the two middle columns, surround = the other fourteen), as
    ``(N, H/16, W/16)`` grids."""
    n = BLOCK * BLOCK
    total, squares = _block_sums(norm)
    var = ((squares - total * total / n) / (n - 1)).clamp_(min=0.0)
    mid = BLOCK // 2
    c_total, c_squares = _block_sums(norm, slice(mid - 1, mid + 1))
    n_c = 2 * BLOCK
    centre = _unbiased_std(c_total, c_squares, n_c)
    surround = _unbiased_std(total - c_total, squares - c_squares, n - n_c)
    cen_sur = torch.nan_to_num(centre / surround, nan=0.0, posinf=0.0)
    return var, _edge_segments_flat(norm), cen_sur


def piqe_batch(
    canvas: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor] | None = None
) -> list[tuple[float, dict]]:
    """PIQE score and block counts of each image of ``canvas`` ``(N, H, W)``: 0..255 grey
    images padded to a multiple of 16. ``stats``: their replicate-border local mean and
    deviation (the working copies' shared canvas planes), when the caller has them."""
    nss.require_batch(canvas, "piqe_batch")
    if canvas.shape[1] % BLOCK or canvas.shape[2] % BLOCK:
        raise ValueError(f"piqe_batch takes images padded to a multiple of {BLOCK}, got {tuple(canvas.shape[1:])}")
    mu, dev = nss.local_stats(canvas) if stats is None else stats
    # a band of block rows at a time (the blocks are independent): MSCN and the block
    # sums of each band stay in cache
    step = BLOCK * max(1, nss.band_rows(canvas, canvas.shape[0] * canvas.shape[2] * BLOCK))
    parts = [
        _block_statistics(nss.mscn_from_stats(canvas[:, r0 : r0 + step], mu[:, r0 : r0 + step], dev[:, r0 : r0 + step]))
        for r0 in range(0, canvas.shape[1], step)
    ]
    var, impaired, cen_sur = (torch.cat(column, dim=1) for column in zip(*parts))
    active = var > ACTIVITY_THRESHOLD
    sigma = torch.sqrt(var)
    beta = torch.nan_to_num(torch.abs(sigma - cen_sur) / torch.maximum(sigma, cen_sur), nan=0.0)
    noisy = sigma > 2.0 * beta
    zero = torch.zeros_like(var)
    dist = (torch.where(active & impaired, 1.0 - var, zero) + torch.where(active & noisy, var, zero)).sum((1, 2))
    counts = torch.stack(
        [active.sum((1, 2)), (active & impaired).sum((1, 2)), (active & noisy).sum((1, 2))], dim=1
    ).tolist()
    blocks = var[0].numel()
    return [
        (
            (d + 1.0) / (1.0 + n_active) * 100.0,
            {"blocks": blocks, "active_blocks": n_active, "artifact_blocks": artifact, "noise_blocks": noise},
        )
        for d, (n_active, artifact, noise) in zip(dist.tolist(), counts)
    ]


class PiqeScorer:
    """Block-wise artifact and noise evidence on salient blocks; lower is better."""

    name = "piqe"
    higher_is_better = False
    range = (0.0, 100.0)

    def __init__(self, max_side: int | None = DEFAULT_MAX_SIDE, device: str = "cpu") -> None:
        self.max_side = max_side
        self.device = device
        self.where = "built in (no parameters)"

    def _scores(self, copies: Sequence[WorkingCopy]) -> list[QualityScore]:
        """Scores of one measuring group (same-size copies, measured together)."""
        if min(copies[0].size) < BLOCK:
            # smaller than one 16 px block: a score would describe the padding
            error = f"PIQE needs at least {BLOCK} px on each side, got {list(copies[0].size)}"
            return [QualityScore(self.name, float("nan"), False, self.range, {"error": error}) for _ in copies]
        p = group_planes(copies)
        out = []
        for copy, (value, details) in zip(copies, piqe_batch(p.canvas, (p.canvas_mu, p.canvas_sigma))):
            details["working_size"] = list(copy.size)
            out.append(QualityScore(self.name, min(max(value, 0.0), 100.0), False, self.range, details))
        return out

    def score(self, images: Sequence[Image.Image | WorkingCopy]) -> list[QualityScore]:
        return in_groups(as_working_copies(images, self.max_side, self.device), self._scores)
