"""JPEG decode on the GPU for batch runs (``torchvision.io.decode_jpeg(..., device="cuda")``).

Why: on a GPU box the CPU cores, not the chip, bound throughput, and decoding is one of
their biggest per-image costs. With nvJPEG the entropy decode and IDCT run on the GPU.

The batch engine gets its decoder from ``device_jpeg_decoder(device)``: ``None`` off CUDA
(Pillow decodes, as everywhere else), else ``decode_image_bytes_on_device``, a drop-in
for ``media.decode_image_bytes`` that keeps every limit of the CPU path — the byte cap,
the allowed formats, the declared data-URI type and the pixel cap are checked on the
header by Pillow *before* any pixel is decoded, and the EXIF orientation is applied the
way ``ImageOps.exif_transpose`` applies it. Only plain baseline/progressive JPEGs in RGB
or grey without a draft size go to the GPU; anything else (CMYK, MPO, PNG, WebP, a draft
decode) and any error on the GPU side decodes on the CPU for that image, so a bad file
gets exactly the CPU path's error. ``decode_jpegs_on_device`` is the batched form (used
by ``scripts/gpu_check.sh``'s tests). The result is a Pillow image like the CPU path's,
so every judge sees the same kind of input.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from imagejury.core.intake.media import DecodedImage, Decoder, MediaLimits, SourceKind, decode_image_bytes

log = logging.getLogger(__name__)
JPEG_MAGIC = b"\xff\xd8\xff"
# EXIF orientation → the transpose that shows the image upright (as ImageOps.exif_transpose)
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# bytes → (3, H, W) uint8 tensor (any device); replaced in tests to force the path on a CPU
TensorDecoder = Callable[[bytes, str], torch.Tensor]


def cuda_decode_available(device: str) -> bool:
    return torch.device(device).type == "cuda" and torch.cuda.is_available()


def decode_jpeg_tensor(data: bytes, device: str) -> torch.Tensor:
    """nvJPEG decode of one JPEG to a ``(3, H, W)`` uint8 tensor on ``device``."""
    from torchvision.io import ImageReadMode, decode_jpeg

    return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB, device=device)


def device_jpeg_decoder(device: str, tensor_decoder: TensorDecoder | None = None) -> Decoder | None:
    """The decoder a batch run on ``device`` should use: GPU JPEG decode on CUDA, else None
    (the caller keeps Pillow's)."""
    if not cuda_decode_available(device):
        return None
    return functools.partial(decode_image_bytes_on_device, device=device, tensor_decoder=tensor_decoder)


def _gpu_candidate(data: bytes, limits: MediaLimits, declared: str | None) -> tuple[tuple[int, int], int | None] | None:
    """(width, height) and EXIF orientation when ``data`` may go to the GPU, else None.

    Reads the header only; every limit the CPU path checks before decoding is checked
    here, and anything doubtful returns None so the CPU path decides (and words the error)."""
    if len(data) > limits.max_bytes or data[:3] != JPEG_MAGIC or "JPEG" not in limits.allowed_formats:
        return None
    if declared not in (None, "JPEG") or limits.draft_size is not None:
        return None
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as img:
            if img.format != "JPEG" or img.mode not in ("RGB", "L"):
                return None
            width, height = img.size
            cap = min(limits.max_pixels, int(Image.MAX_IMAGE_PIXELS or limits.max_pixels))
            if width <= 0 or height <= 0 or width * height > cap:
                return None
            value = img.getexif().get(0x0112)
    except Exception:  # noqa: BLE001 - unreadable header or EXIF: the CPU path decides
        return None
    orientation = int(value) if isinstance(value, int) and 1 <= value <= 8 else None
    return (width, height), orientation


def decode_image_bytes_on_device(
    data: bytes,
    limits: MediaLimits | None = None,
    *,
    source_kind: SourceKind = "data",
    field: str = "generated_image_url",
    declared_format: str | None = None,
    device: str = "cuda",
    tensor_decoder: TensorDecoder | None = None,
) -> DecodedImage:
    """``media.decode_image_bytes`` with the JPEG pixels decoded on ``device``; falls back
    to the CPU decode for this image on anything it does not take or any error."""
    limits = limits or MediaLimits()
    candidate = _gpu_candidate(data, limits, declared_format)
    cpu = functools.partial(
        decode_image_bytes, data, limits, source_kind=source_kind, field=field, declared_format=declared_format
    )
    if candidate is None:
        return cpu()
    (width, height), orientation = candidate
    try:
        tensor = (tensor_decoder or decode_jpeg_tensor)(data, device)
        if tuple(tensor.shape) != (3, height, width) or tensor.dtype != torch.uint8:
            raise ValueError(f"decoded shape {tuple(tensor.shape)} {tensor.dtype}, header says 3x{height}x{width}")
        pixels = np.ascontiguousarray(tensor.permute(1, 2, 0).cpu().numpy())
    except Exception as exc:  # noqa: BLE001 - any GPU-side failure: decode this one on the CPU
        log.info("GPU JPEG decode failed (%s: %s); decoding on the CPU", type(exc).__name__, exc)
        return cpu()
    image = Image.fromarray(pixels, "RGB")
    if orientation in _UPRIGHT:
        image = image.transpose(_UPRIGHT[orientation])
    return DecodedImage(
        image=image,
        key=hashlib.sha256(data).hexdigest(),
        original_size=image.size,
        format="JPEG",
        source_kind=source_kind,
        n_bytes=len(data),
    )


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
