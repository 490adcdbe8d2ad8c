"""A labeled set of generated graphics with graded degradations (issue 12.1).

Eight kinds of non-photo content that image generators make a lot of: flat
illustrations, gradients with an icon, posters with text, line art, icons, product shots
on a white seamless background, UI screenshots and 3-D-render-like shaded scenes. Each is
drawn at twice the size and shrunk (LANCZOS), so edges are anti-aliased like a
generator's output. Every image comes from a seed, so the set is reproducible and
unbounded; the **calibration split** is seeds 0–5 and the **held-out split** seeds
100–111: thresholds are chosen on the first and reported on the second.

Degradations (``DEGRADATIONS``; the "clear" level of each is what a person would call
broken at a glance): Gaussian blur, white noise, JPEG, banding (posterised tones; only on
the kinds with smooth tonal ramps, ``SMOOTH_TONE_KINDS``), over-exposure and under-exposure.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SIZE = 512
CALIBRATION_SEEDS = tuple(range(6))
HELD_OUT_SEEDS = tuple(range(100, 112))


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def _colour(rng: random.Random, lo: int = 20, hi: int = 235) -> tuple[int, int, int]:
    return (rng.randint(lo, hi), rng.randint(lo, hi), rng.randint(lo, hi))


def _shape(draw: ImageDraw.ImageDraw, rng: random.Random, s: int, fill: tuple[int, int, int]) -> None:
    x, y = rng.randint(0, s * 3 // 4), rng.randint(0, s * 3 // 4)
    w, h = rng.randint(s // 8, s // 3), rng.randint(s // 8, s // 3)
    kind = rng.choice(("ellipse", "rect", "poly"))
    if kind == "ellipse":
        draw.ellipse((x, y, x + w, y + h), fill=fill)
    elif kind == "rect":
        draw.rounded_rectangle((x, y, x + w, y + h), radius=rng.randint(0, w // 4), fill=fill)
    else:
        pts = [(x + rng.randint(0, w), y + rng.randint(0, h)) for _ in range(rng.randint(3, 6))]
        draw.polygon(pts, fill=fill)


def _gradient(s: int, c1: tuple[int, ...], c2: tuple[int, ...], radial: bool) -> np.ndarray:
    yy, xx = np.mgrid[0:s, 0:s] / (s - 1)
    t = np.clip(np.hypot(xx - 0.5, yy - 0.5) * 1.4, 0, 1) if radial else (xx + yy) / 2
    a, b = np.array(c1, dtype=np.float64), np.array(c2, dtype=np.float64)
    return a + (b - a) * t[..., None]


def flat_illustration(rng: random.Random, s: int) -> Image.Image:
    img = Image.new("RGB", (s, s), _colour(rng, 120, 250))
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(3, 7)):
        _shape(draw, rng, s, _colour(rng))
    return img


def gradient_with_icon(rng: random.Random, s: int) -> Image.Image:
    arr = _gradient(s, _colour(rng), _colour(rng), rng.random() < 0.5)
    img = Image.fromarray(np.round(arr).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    c = s // 2 + rng.randint(-s // 8, s // 8)
    r = rng.randint(s // 10, s // 5)
    draw.rounded_rectangle((c - r, c - r, c + r, c + r), radius=r // 3, fill=_colour(rng, 200, 255))
    draw.ellipse((c - r // 2, c - r // 2, c + r // 2, c + r // 2), fill=_colour(rng, 0, 90))
    return img


def poster_with_text(rng: random.Random, s: int) -> Image.Image:
    bg = _colour(rng, 0, 255)
    ink = (0, 0, 0) if sum(bg) > 380 else (255, 255, 255)
    img = Image.new("RGB", (s, s), bg)
    draw = ImageDraw.Draw(img)
    _shape(draw, rng, s, _colour(rng))
    words = ("SUMMER SALE", "GRAND OPENING", "LIVE MUSIC", "NEW SEASON", "OPEN DAY", "FESTIVAL")
    draw.text((s // 12, s // 10), rng.choice(words), fill=ink, font=_font(s // 9))
    for i in range(rng.randint(3, 6)):
        draw.text((s // 12, s // 2 + i * s // 14), "Lorem ipsum dolor sit amet " * 2, fill=ink, font=_font(s // 28))
    return img


def line_art(rng: random.Random, s: int) -> Image.Image:
    img = Image.new("RGB", (s, s), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    width = rng.randint(2, 6)
    for _ in range(rng.randint(5, 12)):
        x, y = rng.randint(0, s), rng.randint(0, s)
        r = rng.randint(s // 20, s // 4)
        if rng.random() < 0.5:
            draw.ellipse((x - r, y - r, x + r, y + r), outline=(0, 0, 0), width=width)
        else:
            draw.line((x, y, rng.randint(0, s), rng.randint(0, s)), fill=(0, 0, 0), width=width)
    return img


def icon(rng: random.Random, s: int) -> Image.Image:
    img = Image.new("RGB", (s, s), _colour(rng, 200, 255) if rng.random() < 0.5 else (255, 255, 255))
    draw = ImageDraw.Draw(img)
    m = s // 5
    draw.rounded_rectangle((m, m, s - m, s - m), radius=s // 8, fill=_colour(rng, 0, 200))
    fg = (255, 255, 255)
    if rng.random() < 0.5:
        draw.ellipse((2 * m, 2 * m, s - 2 * m, s - 2 * m), outline=fg, width=s // 30)
    else:
        draw.polygon([(2 * m, s - 2 * m), (s // 2, 2 * m), (s - 2 * m, s - 2 * m)], fill=fg)
    return img


def product_on_white(rng: random.Random, s: int) -> Image.Image:
    base = np.full((s, s, 3), 255.0)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64)
    cx, w, top, bottom = s / 2 + rng.randint(-s // 10, s // 10), rng.randint(s // 6, s // 4), s // 3, 3 * s // 4
    # soft contact shadow on the seamless white
    shadow = np.exp(-(((xx - cx) / (1.3 * w)) ** 2 + ((yy - bottom) / (s / 30)) ** 2))
    base *= (1 - 0.35 * shadow)[..., None]
    body = (np.abs(xx - cx) <= w) & (yy >= top) & (yy <= bottom)
    shade = 0.55 + 0.45 * np.sqrt(np.clip(1 - ((xx - cx + w * 0.3) / (1.3 * w)) ** 2, 0, 1))
    colour = np.array(_colour(rng, 20, 200), dtype=np.float64)
    base[body] = (colour[None, :] * shade[body][:, None]) + 25 * shade[body][:, None] ** 8
    img = Image.fromarray(np.clip(np.round(base), 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    draw.arc(
        (cx + w - s // 20, top + s // 12, cx + w + s // 8, bottom - s // 8),
        -90,
        90,
        fill=tuple(colour.astype(int)),
        width=s // 40,
    )
    return img


def screenshot(rng: random.Random, s: int) -> Image.Image:
    dark = rng.random() < 0.4
    bg, fg = ((30, 30, 36), (220, 220, 220)) if dark else ((250, 250, 250), (30, 30, 30))
    img = Image.new("RGB", (s, s), bg)
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, s, s // 12), fill=_colour(rng, 40, 120))
    draw.text((s // 40, s // 50), "Dashboard - Settings", fill=(255, 255, 255), font=_font(s // 30))
    draw.rectangle((0, s // 12, s // 5, s), fill=(45, 45, 52) if dark else (235, 235, 240))
    for i in range(rng.randint(6, 12)):
        y = s // 8 + i * s // 16
        draw.text((s // 4, y), f"Item {i + 1}: value {rng.randint(0, 999)} units", fill=fg, font=_font(s // 36))
    draw.rounded_rectangle((s * 3 // 4, s - s // 8, s - s // 30, s - s // 30), radius=6, fill=_colour(rng, 0, 200))
    return img


def render_3d(rng: random.Random, s: int) -> Image.Image:
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64) / s
    floor = np.clip(0.35 + 0.5 * yy, 0, 1)[..., None] * np.array(_colour(rng, 150, 255), dtype=np.float64)
    out = floor.copy()
    light = np.array([-0.5, -0.6, 0.62])
    light /= np.linalg.norm(light)
    for _ in range(rng.randint(1, 3)):
        cx, cy, r = rng.uniform(0.25, 0.75), rng.uniform(0.3, 0.65), rng.uniform(0.1, 0.2)
        dx, dy = (xx - cx) / r, (yy - cy) / r
        inside = dx**2 + dy**2 <= 1
        dz = np.sqrt(np.clip(1 - dx**2 - dy**2, 0, 1))
        lambert = np.clip(dx * light[0] + dy * light[1] + dz * light[2], 0, 1)
        spec = np.clip(lambert, 0, 1) ** 30
        col = np.array(_colour(rng, 40, 220), dtype=np.float64)
        shaded = col * (0.2 + 0.8 * lambert)[..., None] + 200 * spec[..., None]
        out[inside] = shaded[inside]
    return Image.fromarray(np.clip(np.round(out), 0, 255).astype(np.uint8), "RGB")


KINDS: dict[str, Callable[[random.Random, int], Image.Image]] = {
    "flat_illustration": flat_illustration,
    "gradient_icon": gradient_with_icon,
    "poster_text": poster_with_text,
    "line_art": line_art,
    "icon": icon,
    "product_on_white": product_on_white,
    "screenshot": screenshot,
    "render_3d": render_3d,
}


def graphic(kind: str, seed: int, size: int = SIZE) -> Image.Image:
    """One clean graphic of ``kind``, drawn at 2× and anti-aliased down to ``size``."""
    rng = random.Random(f"{kind}:{seed}")
    big = KINDS[kind](rng, 2 * size)
    return big.resize((size, size), Image.Resampling.LANCZOS)


# -- degradations ------------------------------------------------------------------------
def blur(img: Image.Image, sigma: float) -> Image.Image:
    return img.filter(ImageFilter.GaussianBlur(radius=sigma))


def noise(img: Image.Image, sigma: float, seed: int = 0) -> Image.Image:
    arr = np.asarray(img, dtype=np.float64) + np.random.default_rng(seed).normal(0, sigma, (img.height, img.width, 3))
    return Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), "RGB")


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def banding(img: Image.Image, levels: int) -> Image.Image:
    """Posterise every channel to ``levels`` tones (false contours in smooth ramps)."""
    step = 255.0 / (levels - 1)
    arr = np.round(np.round(np.asarray(img, dtype=np.float64) / step) * step)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def exposure(img: Image.Image, gain: float) -> Image.Image:
    """Over-exposure (gain > 1: tones lifted by ``(gain - 1)`` of full scale and multiplied,
    so the blacks go grey and the lights clip: washed out) or under-exposure (gain < 1:
    every tone multiplied down, the lights go grey)."""
    arr = np.asarray(img, dtype=np.float64)
    arr = arr * gain + 255.0 * (gain - 1.0) * 0.5 if gain > 1 else arr * gain
    return Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), "RGB")


# name -> (degrade function, (mild level, clear level)); "clear" is the judged level
DEGRADATIONS: dict[str, tuple[Callable[[Image.Image, float], Image.Image], tuple[float, float]]] = {
    "blur": (blur, (1.0, 3.0)),
    "noise": (noise, (6.0, 20.0)),
    "jpeg": (lambda im, q: jpeg(im, int(q)), (40, 6)),
    "banding": (lambda im, n: banding(im, int(n)), (24, 6)),
    "over_exposure": (exposure, (1.4, 2.2)),
    "under_exposure": (exposure, (0.6, 0.25)),
}


#: the kinds whose generator draws smooth tonal ramps (a linear/radial gradient, a soft
#: shadow, Lambert shading). Banding is false contours in such ramps; posterising a design
#: made only of solid fills shifts its colours a little and leaves no contour to see, so it
#: is not a "clearly degraded" case and is not in the set (measured on the calibration
#: seeds: 1-2-level neighbour steps cover 2.7-12% of these images, 0.3-1.6% of the solid
#: kinds but for posters' text edges at 2.4-4.9%)
SMOOTH_TONE_KINDS = frozenset({"gradient_icon", "product_on_white", "render_3d"})


def degradations_for(kind: str) -> list[str]:
    """The degradations that make a clearly degraded case of ``kind`` (banding needs ramps)."""
    return [d for d in DEGRADATIONS if d != "banding" or kind in SMOOTH_TONE_KINDS]


def degraded(img: Image.Image, name: str, level: str = "clear") -> Image.Image:
    fn, (mild, clear) = DEGRADATIONS[name]
    return fn(img, clear if level == "clear" else mild)


def split(name: str) -> tuple[int, ...]:
    """Seeds of the ``calibration`` or ``held_out`` split."""
    if name not in ("calibration", "held_out"):
        raise ValueError(f"unknown split {name!r}")
    return CALIBRATION_SEEDS if name == "calibration" else HELD_OUT_SEEDS


def cases(split_name: str, size: int = SIZE) -> list[tuple[str, int, str, Image.Image]]:
    """(kind, seed, condition, image) for every clean image and its clear degradations."""
    out = []
    for seed in split(split_name):
        for kind in KINDS:
            clean = graphic(kind, seed, size)
            out.append((kind, seed, "clean", clean))
            for name in degradations_for(kind):
                out.append((kind, seed, name, degraded(clean, name)))
    return out
