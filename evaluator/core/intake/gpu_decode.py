"""JPEG decode on the GPU for batch runs (``torchvision.io.decode_jpeg(..., device="cuda")``).

The batch engine calls ``decode_jpegs_on_device`` when its device is CUDA: JPEG bytes go
to the GPU undecoded (nvJPEG), which takes the decode off the CPU cores that otherwise
bound throughput on a GPU box. Anything that is not a baseline JPEG, or a device that is
not CUDA, returns ``None`` for that entry so the caller decodes it with Pillow as usual —
the CPU path stays the reference. ``scripts/gpu_check.sh`` exercises it on CUDA.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

log = logging.getLogger(__name__)
JPEG_MAGIC = b"\xff\xd8\xff"


def cuda_decode_available(device: str) -> bool:
    return torch.device(device).type == "cuda" and torch.cuda.is_available()


def decode_jpegs_on_device(blobs: Sequence[bytes], device: str = "cuda") -> list[torch.Tensor | None]:
    """Decode each JPEG to a ``(3, H, W)`` uint8 tensor on ``device``; ``None`` where the
    entry is not a JPEG, the device is not CUDA, or nvJPEG refused it (the caller then
    decodes that entry on the CPU)."""
    out: list[torch.Tensor | None] = [None] * len(blobs)
    if not cuda_decode_available(device):
        return out
    from torchvision.io import ImageReadMode, decode_jpeg

    jpeg_positions = [i for i, b in enumerate(blobs) if b[:3] == JPEG_MAGIC]
    if not jpeg_positions:
        return out
    data = [torch.frombuffer(bytearray(blobs[i]), dtype=torch.uint8) for i in jpeg_positions]
    try:
        decoded = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    except RuntimeError as exc:  # e.g. progressive or CMYK JPEGs nvJPEG does not take
        log.info("GPU JPEG decode refused the batch (%s); decoding one by one", exc)
        decoded = []
        for d in data:
            try:
                decoded.append(decode_jpeg(d, mode=ImageReadMode.RGB, device=device))
            except RuntimeError:
                decoded.append(None)
    for i, tensor in zip(jpeg_positions, decoded):
        out[i] = tensor
    return out
