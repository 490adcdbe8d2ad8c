"""The emptiness foil on the tiny shapes CLIP: a blank, plain or unrelated image must not
pass "a red circle", and the right shape must still pass.

What is measured: P(this image over a plain canvas of its own mean colour | prompt)
(``imagejury.judges.clip_scoring.emptiness_score``) on

- positives: one coloured shape per image with its own caption ("a red circle"), from
  ``tests/support/shapes.py`` with seeds the tiny CLIP was not trained on;
- empties: uniform canvases (white, gray, black and each of the 6 shape colours), random
  noise, and two photos that hold no shape (skimage's astronaut and cat), each with every
  one of the 24 shape captions.

The foil applies to near-uniform images only (``looks_plain``); elsewhere it counts as
passed. The calibration split sweeps the pass threshold (it must be above 0.5: a plain image ties
with its own canvas); the held-out split reports the chosen one — and, end to end through
``PromptAdherenceJudge``, how many positives pass and how many empties are refused with
and without the foil.

Usage::

    .venv/bin/python benchmarks/emptiness_foil.py                # prints a Markdown table
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from imagejury.judges.clip_scoring import EMPTY_THRESHOLD  # noqa: E402
from imagejury.judges.prompt_adherence import PromptAdherenceJudge  # noqa: E402
from imagejury.judges.types import JudgeItem, decide  # noqa: E402
from imagejury.models.provider import ModelSet  # noqa: E402
from imagejury.models.settings import ModelSettings  # noqa: E402
from tests.support import shapes  # noqa: E402

TINY = ROOT / "tests" / "assets" / "tiny_shapes_clip"


def _key(img: Image.Image) -> str:
    return hashlib.sha256(img.tobytes() + str(img.size).encode()).hexdigest()


def _empties(seed: int) -> list[Image.Image]:
    from skimage import data

    rng = np.random.default_rng(seed)
    colours = [(255, 255, 255), (128, 128, 128), (0, 0, 0), *shapes.COLORS.values()]
    out = [Image.new("RGB", (64, 64), c) for c in colours]
    out.append(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    out += [Image.fromarray(data.astronaut()).resize((64, 64)), Image.fromarray(data.chelsea()).resize((64, 64))]
    return out


def _run(judge: PromptAdherenceJudge, images: list[Image.Image], prompts: list[str]) -> list:
    items = [JudgeItem(str(n), im, _key(im), prompt=p) for n, (im, p) in enumerate(zip(images, prompts))]
    return judge.judge(items)


def _split(judge: PromptAdherenceJudge, seed: int, n: int) -> tuple[list, list]:
    ds = shapes.dataset(n, seed=seed, size=64)
    positives = _run(judge, [s.image for s in ds], [shapes.caption(s.color, s.shape) for s in ds])
    empties_img = _empties(seed)
    captions = shapes.class_captions()
    pairs = [(im, c) for im in empties_img for c in captions]
    empties = _run(judge, [im for im, _ in pairs], [c for _, c in pairs])
    return positives, empties


def _empty_value(r) -> float:  # noqa: ANN001 - 1.0 where the foil does not apply (not near-uniform)
    return next((m.value for m in r.measurements if m.name == "not_empty"), 1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=300, help="positives per split")
    args = ap.parse_args()
    judge = PromptAdherenceJudge(None, ModelSet(ModelSettings(clip=f"local-dir:{TINY}")))
    judge.warmup()
    cal_pos, cal_emp = _split(judge, 4242, args.n)
    print("## Calibration split (seed 4242): emptiness foil alone\n")
    print("| threshold | positives kept | empties refused |")
    print("|---|---|---|")
    for t in (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8):
        kept = np.mean([_empty_value(r) >= t for r in cal_pos])
        refused = np.mean([_empty_value(r) < t for r in cal_emp])
        print(f"| {t:.2f} | {kept:.1%} | {refused:.1%} |")
    test_pos, test_emp = _split(judge, 777, args.n)
    print(f"\n## Held-out split (seed 777), prompt_adherence end to end, threshold {EMPTY_THRESHOLD}\n")
    print("| | positives passed | empties passed (should be 0) |")
    print("|---|---|---|")

    def without(r) -> bool:  # noqa: ANN001 - the same vote without the emptiness foil
        return bool(decide([m for m in r.measurements if m.name != "not_empty"], r.decision_rule))

    print(
        f"| without the foil | {np.mean([without(r) for r in test_pos]):.1%} | "
        f"{np.mean([without(r) for r in test_emp]):.1%} ({sum(without(r) for r in test_emp)}/{len(test_emp)}) |"
    )
    print(
        f"| with the foil | {np.mean([r.passed for r in test_pos]):.1%} | "
        f"{np.mean([r.passed for r in test_emp]):.1%} ({sum(r.passed for r in test_emp)}/{len(test_emp)}) |"
    )


if __name__ == "__main__":
    main()
