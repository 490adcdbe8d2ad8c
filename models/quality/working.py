"""The working copy every pixel measure shares: computed once per image.

An uploaded image is shrunk (never enlarged) to at most ``DEFAULT_MAX_SIDE`` on its
longer side, turned into a tensor on the measuring device, converted to 8-bit grey the
way MATLAB's ``rgb2gray`` does, and given its MATLAB half-size copy. BRISQUE, NIQE,
PIQE and the pixel signals all read these tensors; none decodes, resizes or
grey-converts again. ``judges.features.FeatureCache.working_copies`` keeps one per image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from PIL import Image

from imagejury.models.quality import nss

# Largest side the pixel measures work at. Bigger images are shrunk first (LANCZOS) so a
# 4k upload costs about what a 1k one does; a downscale hides some blur and noise, so
# the size measured at is reported with every score (``working_size``).
DEFAULT_MAX_SIDE = 1024


@dataclass
class WorkingCopy:
    """One image, ready to measure. Tensors are 0..255 values on ``device``."""

    rgb: torch.Tensor  # (3, H, W)
    gray: torch.Tensor  # (H, W), rounded to integers as MATLAB's rgb2gray on uint8
    original_size: tuple[int, int]  # (width, height) before shrinking
    _half: torch.Tensor | None = field(default=None, repr=False)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) measured at."""
        return int(self.gray.shape[1]), int(self.gray.shape[0])

    @property
    def half(self) -> torch.Tensor:
        """MATLAB ``imresize(gray, 0.5)``, computed on first use and kept."""
        if self._half is None:
            self._half = nss.imresize_half(self.gray.unsqueeze(0))[0]
        return self._half


def shrink(image: Image.Image, max_side: int | None) -> Image.Image:
    """RGB image shrunk so that its longer side is at most ``max_side``."""
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image, got {type(image).__name__}")
    if image.width < 1 or image.height < 1:
        raise ValueError("image has no pixels")
    image = image if image.mode == "RGB" else image.convert("RGB")
    if max_side and max(image.size) > max_side:
        scale = max_side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image


def working_dtype(device: torch.device | str) -> torch.dtype:
    """float64 on CPU (the reference precision); float32 on accelerators."""
    return torch.float64 if torch.device(device).type == "cpu" else torch.float32


def make_working_copies(
    images: Sequence[Image.Image], max_side: int | None = DEFAULT_MAX_SIDE, device: torch.device | str = "cpu"
) -> list[WorkingCopy]:
    """One working copy per image; same-size images are converted in one batch."""
    shrunk = [shrink(im, max_side) for im in images]
    out: list[WorkingCopy | None] = [None] * len(images)
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, im in enumerate(shrunk):
        by_size.setdefault(im.size, []).append(i)
    for positions in by_size.values():
        rgb = nss.images_to_tensor([shrunk[i] for i in positions], device).to(working_dtype(device))
        gray = nss.rgb_to_gray_uint8(rgb)
        for j, i in enumerate(positions):
            out[i] = WorkingCopy(rgb[j], gray[j], images[i].size)
    return out  # type: ignore[return-value]


def as_working_copies(
    items: Sequence[Image.Image | WorkingCopy], max_side: int | None = DEFAULT_MAX_SIDE, device: str = "cpu"
) -> list[WorkingCopy]:
    """Working copies for a mix of images and ready copies (the ready ones are reused)."""
    todo = [i for i, x in enumerate(items) if not isinstance(x, WorkingCopy)]
    made = make_working_copies([items[i] for i in todo], max_side, device) if todo else []  # type: ignore[misc]
    out = list(items)
    for i, wc in zip(todo, made):
        out[i] = wc
    return out  # type: ignore[return-value]
