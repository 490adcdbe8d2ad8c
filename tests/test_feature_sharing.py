"""One CLIP, one image forward pass per image — for every CLIP judge together.

Real judges, the real registry and the project's tiny shapes CLIP, loaded through the
same ``local-dir:`` path as real weights.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image

from imagejury.core.config import EvaluatorConfig
from imagejury.core.pipeline import Evaluator
from imagejury.judges.clip_scoring import looks_plain, plain_canvas
from imagejury.models.registry import ModelRegistry
from tests.support import shapes

TINY_CLIP = Path(__file__).parent / "assets" / "tiny_shapes_clip"
CLIP_JUDGES = {"prompt_adherence", "instructions", "attributes", "aesthetics", "safety", "reference_similarity"}


def _uri(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_every_clip_judge_shares_one_model_and_one_pass_per_image():
    rng = np.random.default_rng(77)
    images = [shapes.render(c, s, rng, size=64) for c, s in [("red", "circle"), ("blue", "square"), ("green", "cross")]]
    ref = shapes.render("red", "circle", rng, size=64)
    requests = [
        {
            "generated_image_url": _uri(img),
            "task_type": "image_generation",
            "generation_prompt": "a red circle",
            "evaluation_instructions": "no blue shapes.",
            "input_attributes": {"color": "red"},
            "reference_images": [{"url": _uri(ref), "kind": "object"}],
        }
        for img in images
    ]
    requests.append(dict(requests[0]))  # the same image again: no extra forward pass
    registry = ModelRegistry()
    config = EvaluatorConfig.model_validate({"models": {"clip": f"local-dir:{TINY_CLIP}"}})
    ev = Evaluator(config, registry=registry)
    out = ev.evaluate_many(requests)

    assert all(e.status == "completed" for e in out), [e.failure_message for e in out]
    ran = {j.name for j in out[0].judges}
    assert ran >= CLIP_JUDGES, ran
    embedder = ev.model_set("standard").embedder()
    # one model object for all judges, loaded once
    clip_keys = [k for k in registry.loaded() if k[0] == "image_text"]
    assert len(clip_keys) == 1 and registry.load_counts[clip_keys[0]] == 1
    # 3 distinct generated images + 1 distinct reference = 4 rows through the image tower,
    # plus one plain canvas per distinct mean colour of the generated images (the emptiness foil)
    canvases = {plain_canvas(img)[0] for img in images if looks_plain(img)}
    assert embedder.image_forward_calls == 4 + len(canvases)
    # and the verdicts make sense on this model: the red circle passes prompt adherence
    pa = {e.id: next(j for j in e.judges if j.name == "prompt_adherence") for e in out}
    assert pa[out[0].id].passed and not pa[out[1].id].passed
    tq = next(j for j in out[0].judges if j.name == "technical_quality")
    assert "clip_iqa" in tq.sub_point_results, "CLIP-IQA must run on the shared features too"
