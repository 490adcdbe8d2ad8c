"""The working copy every pixel measure shares: computed once per image.

An uploaded image is shrunk (never enlarged) to at most ``DEFAULT_MAX_SIDE`` on its
longer side, turned into a tensor on the measuring device and converted to 8-bit grey
the way MATLAB's ``rgb2gray`` does. Its MATLAB half-size copy and the local mean and
deviation under the MSCN window are computed on first use and kept. BRISQUE, NIQE,
PIQE and the pixel signals all read these planes; none decodes, resizes, grey-converts
or filters the whole image again (each measure's own crop, pad or border rule is
applied to the shared planes by recomputing only the strips it changes, see
``nss.crop_mscn``). ``judges.features.FeatureCache.working_copies`` keeps one per image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from PIL import Image

from imagejury.models.imaging import to_rgb
from imagejury.models.quality import nss

# Largest side the pixel measures work at. Bigger images are shrunk first (LANCZOS) so a
# 4k upload costs about what a 1k one does; a downscale hides some blur and noise, so
# the size measured at is reported with every score (``working_size``).
DEFAULT_MAX_SIDE = 1024


# PIQE works on 16×16 blocks of the grey image padded (replicating its last row and
# column) to a multiple of 16. The shared local statistics are computed on that canvas:
# replicate-padding before a replicate-border window changes nothing inside the image,
# so every other measure reads the same planes cut back to the image.
CANVAS_MULTIPLE = 16


@dataclass(eq=False)
class WorkingCopy:
    """One image, ready to measure, on the measuring device. Derived planes are computed
    on first use and kept, so each is computed once per image whichever measures ask."""

    rgb: torch.Tensor  # (3, H, W) uint8: the signals count levels, a byte per value is enough
    gray: torch.Tensor  # (H, W) in nss.WORK_DTYPE, rounded to integers as MATLAB's rgb2gray on uint8
    original_size: tuple[int, int]  # (width, height) before shrinking
    _planes: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) measured at."""
        return int(self.gray.shape[1]), int(self.gray.shape[0])

    @property
    def half(self) -> torch.Tensor:
        """MATLAB ``imresize(gray, 0.5)``."""
        return self._shared("half", _half_stats)[0]

    def half_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Replicate-border local mean and deviation of ``half`` (NIQE's and BRISQUE's
        second scale start from these)."""
        _, mu, sigma = self._shared("half", _half_stats)
        return mu, sigma

    def canvas_stats(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(canvas, mu, sigma)``: the grey image replicate-padded to a multiple of
        ``CANVAS_MULTIPLE`` and its replicate-border local mean and deviation (the MSCN
        window). NIQE, PIQE, BRISQUE and the signals all start from these."""
        canvas, mu, sigma = self._shared("canvas", _canvas_stats)
        return canvas, mu, sigma

    def _shared(self, key: str, compute: PlaneSet) -> tuple[torch.Tensor, ...]:
        share_planes([self], key, compute)
        return self._planes[key]


def _canvas_stats(gray: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(canvas, mu, sigma)`` of same-size grey images ``(N, H, W)``: see ``canvas_stats``."""
    h, w = gray.shape[-2:]
    pad = (0, (-w) % CANVAS_MULTIPLE, 0, (-h) % CANVAS_MULTIPLE)
    canvas = F.pad(gray[:, None], pad, mode="replicate")[:, 0] if any(pad) else gray
    mu, sigma = nss.local_stats(canvas)
    return canvas, mu, sigma


def _half_stats(gray: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(half, mu, sigma)`` of same-size grey images ``(N, H, W)``: MATLAB's half-size
    copy and its replicate-border local mean and deviation."""
    half = nss.imresize_half(gray)
    mu, sigma = nss.local_stats(half)
    return half, mu, sigma


# The most pixels one accelerator group holds (32 images of 1024²): a measure's
# intermediates are a few dozen float planes per image, so this bounds a group's device
# memory to a few GB whatever the batch size.
GROUP_PIXELS = 1 << 25
# Group CPU copies as an accelerator's are (by size): what the tests and
# ``benchmarks/pixel_groups.py`` switch on to check and count the grouped code on CPU.
GROUP_ON_CPU = False

T = TypeVar("T")
# A batch computation of derived planes: (N, H, W) grey images → planes with N leading.
PlaneSet = Callable[[torch.Tensor], tuple[torch.Tensor, ...]]


def measuring_groups(copies: Sequence[WorkingCopy]) -> list[list[int]]:
    """Which copies are measured together, as lists of indices into ``copies``.

    On an accelerator, copies of one size, up to ``GROUP_PIXELS`` pixels a group: each
    operation of a measure is then launched once for the whole group, and per-image
    launches are what would bound a GPU (a measure is hundreds of small operations). On
    CPU, one copy at a time (unless ``GROUP_ON_CPU``): an image's bands stay in cache,
    and stacking copies would only add a copy.
    """
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, copy in enumerate(copies):
        device = copy.gray.device
        alone = device.type == "cpu" and not GROUP_ON_CPU
        key = (i,) if alone else (str(device), *copy.gray.shape)
        groups.setdefault(key, []).append(i)
    out = []
    for members in groups.values():
        per_group = max(1, GROUP_PIXELS // copies[members[0]].gray.numel())
        out += [members[k : k + per_group] for k in range(0, len(members), per_group)]
    return out


def in_groups(copies: Sequence[WorkingCopy], measure: Callable[[list[WorkingCopy]], Sequence[T]]) -> list[T]:
    """``measure`` applied to each measuring group of ``copies`` (it returns one result per
    copy of its group), the results put back in the order of ``copies``."""
    out: list[T | None] = [None] * len(copies)
    for group in measuring_groups(copies):
        for i, result in zip(group, measure([copies[i] for i in group]), strict=True):
            out[i] = result
    return out  # type: ignore[return-value]


def stacked(planes: Sequence[torch.Tensor]) -> torch.Tensor:
    """Same-shape planes as one batch ``(N, ...)``. A view when they already are one:
    a single plane, or planes that are evenly spaced, non-overlapping slices of one
    tensor (what a batched computation hands out: ``share_planes``, the working
    copies' grey and colour planes); a stacked copy otherwise."""
    first = planes[0]
    if len(planes) == 1:
        return first.unsqueeze(0)
    offsets = [p.storage_offset() for p in planes]
    step = offsets[1] - offsets[0]
    extent = 1 + sum((n - 1) * st for n, st in zip(first.shape, first.stride()))
    one_tensor = all(
        p.untyped_storage().data_ptr() == first.untyped_storage().data_ptr()
        and p.shape == first.shape
        and p.stride() == first.stride()
        and p.dtype == first.dtype
        for p in planes
    )
    if one_tensor and step >= extent and all(b - a == step for a, b in zip(offsets, offsets[1:])):
        return first.as_strided((len(planes), *first.shape), (step, *first.stride()), offsets[0])
    return torch.stack(list(planes))


def share_planes(copies: Sequence[WorkingCopy], key: str, compute: PlaneSet) -> None:
    """Compute the planes ``key`` (``compute`` of a batch of grey images) of the copies
    that lack them, one batched call per measuring group (``measuring_groups``); each
    copy keeps views of its own."""
    todo = [c for c in copies if key not in c._planes]
    for group in measuring_groups(todo):
        batch = compute(stacked([todo[i].gray for i in group]))
        for j, i in enumerate(group):
            todo[i]._planes[key] = tuple(plane[j] for plane in batch)


def _stacked_planes(copies: Sequence[WorkingCopy], key: str, compute: PlaneSet) -> tuple[torch.Tensor, ...]:
    """The planes ``key`` of one measuring group's copies, computed where missing
    (``share_planes``) and stacked plane by plane."""
    share_planes(copies, key, compute)
    return tuple(stacked(list(planes)) for planes in zip(*(c._planes[key] for c in copies)))


@dataclass(frozen=True)
class GroupPlanes:
    """The shared planes of one measuring group, stacked ``(N, ...)`` (views of the one
    copy's own planes when N = 1): what a measure reads to work on the whole group."""

    gray: torch.Tensor  # (N, H, W)
    rgb: torch.Tensor  # (N, 3, H, W) uint8
    canvas: torch.Tensor  # (N, Hc, Wc): gray padded to a multiple of CANVAS_MULTIPLE
    canvas_mu: torch.Tensor
    canvas_sigma: torch.Tensor

    @property
    def mu(self) -> torch.Tensor:
        """Local mean of ``gray`` (a view of the canvas's)."""
        return self.canvas_mu[..., : self.gray.shape[-2], : self.gray.shape[-1]]

    @property
    def sigma(self) -> torch.Tensor:
        """Local deviation of ``gray`` (a view of the canvas's)."""
        return self.canvas_sigma[..., : self.gray.shape[-2], : self.gray.shape[-1]]


def group_planes(copies: Sequence[WorkingCopy]) -> GroupPlanes:
    """The planes of one measuring group (same-size copies), computed where missing."""
    canvas, mu, sigma = _stacked_planes(copies, "canvas", _canvas_stats)
    return GroupPlanes(
        gray=stacked([c.gray for c in copies]),
        rgb=stacked([c.rgb for c in copies]),
        canvas=canvas,
        canvas_mu=mu,
        canvas_sigma=sigma,
    )


def group_halves(copies: Sequence[WorkingCopy]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(half, mu, sigma)`` of one measuring group, stacked: MATLAB's half-size grey and
    its local mean and deviation (NIQE's and BRISQUE's second scale), computed where
    missing."""
    half, mu, sigma = _stacked_planes(copies, "half", _half_stats)
    return half, mu, sigma


def shrink(image: Image.Image, max_side: int | None) -> Image.Image:
    """RGB image shrunk so that its longer side is at most ``max_side``."""
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image, got {type(image).__name__}")
    if image.width < 1 or image.height < 1:
        raise ValueError("image has no pixels")
    image = to_rgb(image, copy=False)  # 16-bit grey scaled, transparency on white: as the intake does
    if max_side and max(image.size) > max_side:
        scale = max_side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image


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
        rgb = nss.images_to_tensor([shrunk[i] for i in positions], device)
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
