"""Real face photos that ship with installed packages, and distorted copies of them.

No downloads: ``skimage.data.astronaut()`` (Eileen Collins, 512x512) and insightface's
sample images ``t1.jpg`` (six people) and ``Tom_Hanks_54745.png`` (a 112x112 aligned
crop). Tests that need them skip with a clear reason when a package is missing.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest
from PIL import Image, ImageOps

# blur / jpeg / noise are re-exported so face tests import one helper module
from tests.support.photos import blur, jpeg, noise, photo  # noqa: F401


def astronaut() -> Image.Image:
    """scikit-image's astronaut photo (Eileen Collins), 512x512 RGB."""
    return photo("astronaut")


def insightface_images_dir() -> Path:
    """insightface's bundled sample images, located without importing insightface."""
    spec = importlib.util.find_spec("insightface")
    if spec is None or not spec.origin:
        pytest.skip("insightface is not installed (its sample images t1.jpg / Tom_Hanks_54745.png are needed)")
    folder = Path(spec.origin).parent / "data" / "images"
    if not folder.is_dir():
        pytest.skip(f"insightface has no bundled sample images at {folder}")
    return folder


def _sample(name: str) -> Image.Image:
    path = insightface_images_dir() / name
    if not path.is_file():
        pytest.skip(f"insightface sample image {path} is missing")
    with Image.open(path) as im:
        return im.convert("RGB")


def group_photo() -> Image.Image:
    """insightface's ``t1.jpg``: six people, 1280x886."""
    return _sample("t1.jpg")


def tom_hanks() -> Image.Image:
    """insightface's ``Tom_Hanks_54745.png``, padded so HOG sees some context around the face."""
    im = _sample("Tom_Hanks_54745.png")
    im = im.resize((im.width * 2, im.height * 2), Image.BICUBIC)
    return ImageOps.expand(im, border=im.width // 2, fill=(128, 128, 128))


# -- distortions (blur / noise / jpeg come from tests.support.photos) ----------------
def flip(im: Image.Image) -> Image.Image:
    return ImageOps.mirror(im)


def rescale(im: Image.Image, factor: float) -> Image.Image:
    size = (max(1, round(im.width * factor)), max(1, round(im.height * factor)))
    return im.resize(size, Image.BICUBIC if factor > 1 else Image.LANCZOS)


def blank(size: tuple[int, int] = (512, 512), color: tuple[int, int, int] = (128, 128, 128)) -> Image.Image:
    return Image.new("RGB", size, color)


def crop_box(im: Image.Image, box: tuple[float, float, float, float], margin: float = 0.6) -> Image.Image:
    """Crop around a face box with ``margin`` times the box size added on each side."""
    x1, y1, x2, y2 = box
    mw, mh = (x2 - x1) * margin, (y2 - y1) * margin
    return im.crop(
        (max(0, int(x1 - mw)), max(0, int(y1 - mh)), min(im.width, int(x2 + mw)), min(im.height, int(y2 + mh)))
    )


def astronaut_headshot() -> Image.Image:
    """A headshot-style crop of the astronaut: head and shoulders, face near the centre."""
    return astronaut().crop((110, 20, 330, 260))


def paste_small(im: Image.Image, canvas: tuple[int, int] = (1600, 1600)) -> Image.Image:
    """``im`` pasted unscaled in the middle of a large plain canvas (a tiny face in the frame)."""
    out = Image.new("RGB", canvas, (200, 200, 200))
    out.paste(im, ((canvas[0] - im.width) // 2, (canvas[1] - im.height) // 2))
    return out


def content_key(im: Image.Image) -> str:
    """A content hash usable as an image/reference key (as the evaluator makes them)."""
    h = hashlib.sha256()
    h.update(f"{im.mode}:{im.size}".encode())
    h.update(im.tobytes())
    return h.hexdigest()[:32]
