"""Deterministic images of coloured shapes with captions, for tiny test models.

Why: the project trains and tests its own tiny CLIP (and judges test prompt adherence)
on images whose true content is known exactly. Everything here is a pure function of a
``numpy.random.Generator`` so the same seed always gives the same pixels.

API (kept small on purpose — other test helpers import it):

- ``COLORS``: colour name -> RGB; ``SHAPES``: shape names; ``CLASSES``: all 24 (colour, shape)
- ``render(color, shape, rng, size=64) -> PIL.Image`` — one image
- ``caption(color, shape, template=0) -> str`` — ``template=0`` is the canonical
  "a red circle" form (``class_captions()`` lists these 24)
- ``dataset(n, seed, size=64) -> list[Sample]`` — random classes, images and captions
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

# Clearly distinct hues (no two within ~40 of each other on any channel triple).
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 25, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 215),
    "yellow": (240, 215, 20),
    "purple": (135, 45, 175),
    "orange": (245, 130, 15),
}
# Shapes a small conv net separates easily: round, 4 corners, 3 corners, a plus sign.
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
CLASSES: list[tuple[str, str]] = [(c, s) for c in COLORS for s in SHAPES]

TEMPLATES: tuple[str, ...] = (
    "{a} {color} {shape}",
    "a photo of {a} {color} {shape}",
    "a drawing of {a} {color} {shape}",
    "an image of {a} {color} {shape}",
    "a picture of {a} {color} {shape}",
    "{a} {color} {shape} on a plain background",
    "a simple {color} {shape}",
)

_SUPERSAMPLE = 4  # draw large then downsample: anti-aliased edges


@dataclass(frozen=True)
class Sample:
    image: Image.Image
    color: str
    shape: str
    caption: str

    @property
    def label(self) -> int:
        """Index into ``CLASSES``."""
        return CLASSES.index((self.color, self.shape))


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption(color: str, shape: str, template: int = 0) -> str:
    """Caption for a class; template 0 is the canonical "a red circle"."""
    _check(color, shape)
    return TEMPLATES[template].format(a=_article(color), color=color, shape=shape)


def class_captions() -> list[str]:
    """The 24 canonical captions, in ``CLASSES`` order (zero-shot class prompts)."""
    return [caption(c, s) for c, s in CLASSES]


def _check(color: str, shape: str) -> None:
    if color not in COLORS:
        raise ValueError(f"unknown colour '{color}' (choose from {sorted(COLORS)})")
    if shape not in SHAPES:
        raise ValueError(f"unknown shape '{shape}' (choose from {list(SHAPES)})")


def _rotate(points: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


def _shape_polygon(shape: str, radius: float, angle: float) -> np.ndarray | None:
    """Polygon vertices around (0, 0), or None for a circle."""
    if shape == "circle":
        return None
    if shape == "square":
        h = radius / math.sqrt(2) * 1.05
        pts = np.array([[-h, -h], [h, -h], [h, h], [-h, h]])
    elif shape == "triangle":
        pts = np.array(
            [
                [radius * math.cos(a), radius * math.sin(a)]
                for a in (-math.pi / 2 + k * 2 * math.pi / 3 for k in range(3))
            ]
        )
    elif shape == "cross":
        w = radius * 0.34  # half arm width
        r = radius
        pts = np.array(
            [[-w, -r], [w, -r], [w, -w], [r, -w], [r, w], [w, w], [w, r], [-w, r], [-w, w], [-r, w], [-r, -w], [-w, -w]]
        )
    else:  # pragma: no cover - guarded by _check
        raise ValueError(shape)
    return _rotate(pts, angle)


def render(color: str, shape: str, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """One RGB image: a ``color`` ``shape`` at random position/size/rotation on a light noisy background."""
    _check(color, shape)
    big = size * _SUPERSAMPLE
    bg_level = rng.uniform(195, 245)
    bg_tint = rng.uniform(-8, 8, size=3)
    bg = np.clip(bg_level + bg_tint, 0, 255)
    img = Image.new("RGB", (big, big), tuple(int(v) for v in bg))
    draw = ImageDraw.Draw(img)

    radius = rng.uniform(0.20, 0.38) * big
    margin = radius * 1.02
    cx = rng.uniform(margin, big - margin)
    cy = rng.uniform(margin, big - margin)
    angle = rng.uniform(0, 2 * math.pi)
    jitter = rng.uniform(-12, 12, size=3)
    fill = tuple(int(np.clip(v + j, 0, 255)) for v, j in zip(COLORS[color], jitter))

    poly = _shape_polygon(shape, radius, angle)
    if poly is None:
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=fill)
    else:
        draw.polygon([(float(x + cx), float(y + cy)) for x, y in poly], fill=fill)

    small = img.resize((size, size), Image.Resampling.BOX)
    arr = np.asarray(small, dtype=np.float32)
    noise = rng.normal(0.0, rng.uniform(2.0, 7.0), size=arr.shape)
    arr = np.clip(arr + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def dataset(n: int, seed: int, size: int = 64, templates: bool = True) -> list[Sample]:
    """``n`` samples with uniformly random classes; captions from random templates if ``templates``."""
    rng = np.random.default_rng(seed)
    out: list[Sample] = []
    for _ in range(n):
        color, shape = CLASSES[int(rng.integers(len(CLASSES)))]
        template = int(rng.integers(len(TEMPLATES))) if templates else 0
        out.append(Sample(render(color, shape, rng, size), color, shape, caption(color, shape, template)))
    return out
