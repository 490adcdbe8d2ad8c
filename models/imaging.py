"""Turning any decoded image into 8-bit RGB, the one way every part of imagejury does it.

The intake (``imagejury.core.intake.media``) decodes uploads with it, and the pixel
measures (``imagejury.models.quality.working``) apply it to whatever PIL image a library
caller hands them, so a 16-bit PNG or a cut-out with transparency gets the same scores by
either route.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_WHITE = (255, 255, 255, 255)


def to_rgb(img: Image.Image, copy: bool = True) -> Image.Image:
    """Any decoded mode to 8-bit RGB.

    16-bit (or 32-bit) grey is scaled to 8 bits, not clipped (a plain ``convert`` clips
    it: a 16-bit PNG would read as white). Transparency is composited onto white:
    generated images with alpha are mostly cut-outs (products, stickers, logos) shown on
    light pages, and composing onto black would turn dark-on-transparent content into a
    black frame that blankness and exposure checks would misread. White is also what most
    viewers show. ``copy``: return a copy even when ``img`` is already RGB (the intake
    never hands out the opened file object; the pixel measures only read it).
    """
    if img.mode.startswith("I"):  # 16-bit (or 32-bit) grey: scale, do not clip, to 8 bits
        arr = np.asarray(img).astype(np.float64)
        alpha = None
        trns = img.info.get("transparency")
        if isinstance(trns, int):
            alpha = np.where(arr == trns, 0, 255).astype(np.uint8)
        grey = np.clip(arr / 257.0 + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(grey, "L")
        if alpha is not None:
            img = Image.merge("LA", (img, Image.fromarray(alpha, "L")))
    elif img.mode == "F":
        img = Image.fromarray(np.clip(np.asarray(img), 0, 255).astype(np.uint8), "L")
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE)
        background.alpha_composite(rgba)
        return background.convert("RGB")
    if img.mode != "RGB":
        return img.convert("RGB")
    return img.copy() if copy else img
