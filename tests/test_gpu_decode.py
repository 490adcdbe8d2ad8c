"""GPU JPEG decode: a no-op off CUDA (the CPU path stays the reference), exact on CUDA."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from imagejury.core.intake.gpu_decode import decode_jpegs_on_device


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 48, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def test_not_cuda_means_decode_on_the_cpu() -> None:
    assert decode_jpegs_on_device([_jpeg(), b"\x89PNG..."], device="cpu") == [None, None]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_decode_matches_pillow_closely() -> None:
    blob = _jpeg()
    tensor, png = decode_jpegs_on_device([blob, b"\x89PNG..."], device="cuda")
    assert png is None and tensor is not None and tensor.shape == (3, 64, 48)
    ref = torch.from_numpy(np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))).permute(2, 0, 1)
    assert (tensor.cpu().int() - ref.int()).abs().float().mean() < 2.0  # IDCT rounding differs slightly
