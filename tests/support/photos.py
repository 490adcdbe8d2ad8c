"""Real photos that ship with scikit-image, and graded distortions of them.

The photos (astronaut, coffee, chelsea, rocket, motorcycle) are in the public domain or
CC0 per ``skimage/data/README.txt``; they ship inside the scikit-image wheel, so tests
never download anything. Distortions are deterministic (fixed seeds, Pillow codecs).
"""

from __future__ import annotations

import io
from functools import cache

import numpy as np
from PIL import Image, ImageFilter

PHOTO_NAMES = ("astronaut", "coffee", "chelsea", "rocket")
# The pixel judges' thresholds were tuned on these photos; the held-out ones test them.
CALIBRATION_PHOTOS = ("astronaut", "coffee", "chelsea")
HELD_OUT_PHOTOS = ("rocket", "motorcycle")

# Graded levels used by the monotonicity tests: each list grows in strength.
BLUR_SIGMAS = (0.0, 1.0, 2.0, 3.0, 5.0)
NOISE_SIGMAS = (0.0, 5.0, 15.0, 30.0, 50.0)
JPEG_QUALITIES = (95, 50, 25, 10, 4)
EXPOSURE_FACTORS = (1.0, 1.6, 2.2, 3.0, 4.0)


@cache
def _load(name: str) -> np.ndarray:
    from skimage import data

    if name == "motorcycle":
        arr = data.stereo_motorcycle()[0]
    else:
        arr = getattr(data, name)()
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return np.ascontiguousarray(arr[..., :3].astype(np.uint8))


def photo(name: str) -> Image.Image:
    """One of scikit-image's sample photos as an RGB PIL image (a fresh copy)."""
    return Image.fromarray(_load(name).copy(), "RGB")


def blur(img: Image.Image, sigma: float) -> Image.Image:
    """Gaussian blur with standard deviation ``sigma`` pixels (0 returns a copy)."""
    if sigma <= 0:
        return img.copy()
    return img.filter(ImageFilter.GaussianBlur(radius=sigma))


def noise(img: Image.Image, sigma: float, seed: int = 0) -> Image.Image:
    """Additive white Gaussian noise, ``sigma`` in 0–255 grey levels, clipped."""
    if sigma <= 0:
        return img.copy()
    rng = np.random.default_rng(seed)
    arr = np.asarray(img, dtype=np.float32)
    arr = arr + rng.normal(0.0, sigma, arr.shape).astype(np.float32)
    return Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), "RGB")


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    """Round-trip through Pillow's JPEG encoder at ``quality`` (1–95)."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out.convert("RGB")


def exposure(img: Image.Image, factor: float) -> Image.Image:
    """Multiply intensities by ``factor`` (>1 over-exposes, <1 under-exposes), clipped."""
    arr = np.asarray(img, dtype=np.float32) * float(factor)
    return Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), "RGB")


def graded(img: Image.Image, kind: str) -> list[Image.Image]:
    """The five graded versions of ``img`` for one distortion kind, weakest first."""
    if kind == "blur":
        return [blur(img, s) for s in BLUR_SIGMAS]
    if kind == "noise":
        return [noise(img, s) for s in NOISE_SIGMAS]
    if kind == "jpeg":
        return [jpeg(img, q) for q in JPEG_QUALITIES]
    if kind == "exposure":
        return [exposure(img, f) for f in EXPOSURE_FACTORS]
    raise ValueError(f"unknown distortion '{kind}' (blur, noise, jpeg, exposure)")
