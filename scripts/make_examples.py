"""Write the bundled example images (deterministic) from scikit-image's sample photos.

Sources and licences (scikit-image's data/README): astronaut — NASA, public domain
(Eileen Collins); coffee — Rachel Michetti, CC0; chelsea (the cat) — Stefan van der Walt,
CC0. Run: ``python scripts/make_examples.py`` (writes into ``examples/``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from PIL import Image, ImageFilter
from skimage import data

log = logging.getLogger(__name__)
OUT = Path(__file__).resolve().parents[1] / "examples"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    astro = Image.fromarray(data.astronaut())
    # the "generated" headshot: a tighter crop around the face
    astro.crop((96, 0, 416, 320)).resize((384, 384), Image.LANCZOS).save(OUT / "astronaut_headshot.jpg", quality=92)
    # the customer's reference photo: the full photo, mirrored and smaller
    astro.transpose(Image.FLIP_LEFT_RIGHT).resize((320, 320), Image.LANCZOS).save(
        OUT / "astronaut_reference.jpg", quality=90
    )
    # a failed generation: heavy blur
    astro.crop((96, 0, 416, 320)).resize((384, 384), Image.LANCZOS).filter(ImageFilter.GaussianBlur(5)).save(
        OUT / "astronaut_blurred.jpg", quality=92
    )
    Image.fromarray(data.coffee()).resize((400, 300), Image.LANCZOS).save(OUT / "coffee.jpg", quality=90)
    Image.fromarray(data.chelsea()).save(OUT / "chelsea.jpg", quality=90)
    rows = [
        {
            "client_ref": "headshot-ok",
            "generated_image_url": "astronaut_headshot.jpg",
            "task_type": "headshot",
            "reference_images": [{"url": "astronaut_reference.jpg", "kind": "identity"}],
            "generation_prompt": "professional headshot of a smiling astronaut in a white spacesuit",
        },
        {
            "client_ref": "headshot-blurred",
            "generated_image_url": "astronaut_blurred.jpg",
            "task_type": "headshot",
            "reference_images": [{"url": "astronaut_reference.jpg", "kind": "identity"}],
        },
        {
            "client_ref": "headshot-wrong-person",
            "generated_image_url": "chelsea.jpg",
            "task_type": "headshot",
            "reference_images": [{"url": "astronaut_reference.jpg", "kind": "identity"}],
        },
        {
            "client_ref": "coffee",
            "generated_image_url": "coffee.jpg",
            "task_type": "product",
            "generation_prompt": "a cup of coffee on a saucer",
            "input_attributes": {"width": 400, "height": 300},
        },
    ]
    with (OUT / "manifest.jsonl").open("w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    log.info("wrote examples into %s", OUT)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
