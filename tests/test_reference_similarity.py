"""reference_similarity on coloured shapes with the project's tiny CLIP.

The tiny OpenCLIP (``tests/assets/tiny_shapes_clip``, trained by
``scripts/train_tiny_clip.py``) is loaded through the real ``local-dir:`` path, the
same code that loads ViT-L-14 on a GPU box.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagejury.judges.features import FeatureCache
from imagejury.judges.reference_similarity import DEFAULT_THRESHOLDS, ReferenceSimilarityJudge
from imagejury.judges.types import Directives, JudgeItem, Reference
from imagejury.models.errors import ModelUnavailableError
from imagejury.models.provider import ModelSet
from imagejury.models.registry import ModelRegistry
from imagejury.models.settings import ModelSettings
from tests.support import shapes

TINY_CLIP = Path(__file__).parent / "assets" / "tiny_shapes_clip"
SOURCE = "local-dir:tests/assets/tiny_shapes_clip"
HAVE_TINY = (TINY_CLIP / "open_clip_config.json").is_file()

# Thresholds for the tiny shapes CLIP, measured on 200 random pairs of fresh renders:
# image-image cosine same class 0.941-0.999 (mean 0.986), same colour other shape
# -0.33-0.77, other colour same shape -0.79-0.67; image-text cosine right caption
# 0.957-0.993, right colour wrong shape -0.26-0.72. 0.85 sits in both gaps.
TINY = 0.85
TINY_KINDS = ("default", "object", "garment", "product", "background", "text")
TINY_PROFILE = {"tiny_shapes_clip": {k: TINY for k in TINY_KINDS}}


@pytest.fixture(scope="module")
def model_set() -> ModelSet:
    if not HAVE_TINY:
        pytest.fail(f"the tiny shapes CLIP is missing from {TINY_CLIP}: run scripts/train_tiny_clip.py --out DIR")
    return ModelSet(ModelSettings(clip=SOURCE), registry=ModelRegistry())


@pytest.fixture(scope="module")
def judge(model_set: ModelSet) -> ReferenceSimilarityJudge:
    j = ReferenceSimilarityJudge({"model_profiles": TINY_PROFILE}, model_set=model_set)
    j.warmup()
    return j


def _key(img: Image.Image) -> str:
    return hashlib.sha256(img.tobytes() + str(img.size).encode()).hexdigest()


def _render(color: str, shape: str, seed: int) -> Image.Image:
    return shapes.render(color, shape, np.random.default_rng(seed), size=64)


def _item(img: Image.Image, refs: list[Reference], cache: FeatureCache | None = None, **kw) -> JudgeItem:  # type: ignore[no-untyped-def]
    return JudgeItem(
        item_id=_key(img)[:8],
        image=img,
        image_key=_key(img),
        references=refs,
        features=cache if cache is not None else FeatureCache(),
        **kw,
    )


def _ref(color: str, shape: str, seed: int, kind: str = "object", description: str | None = None) -> Reference:
    img = _render(color, shape, seed)
    return Reference(kind, img, description=description, key=_key(img))


CASES = [("red", "circle"), ("blue", "square"), ("green", "triangle"), ("orange", "cross")]


def test_the_real_tiny_clip_is_used(judge: ReferenceSimilarityJudge) -> None:
    key = judge._embedder().key
    assert key.startswith("open_clip:") and "tiny_shapes_clip" in key


@pytest.mark.parametrize("color,shape", CASES)
def test_same_shape_same_colour_passes(judge: ReferenceSimilarityJudge, color: str, shape: str) -> None:
    item = _item(_render(color, shape, 1), [_ref(color, shape, 2, description=f"a {color} {shape}")])
    (r,) = judge.judge([item])
    assert r.passed, r.reasoning
    assert r.sub_point_results["reference_1_object"]["passed"]
    assert r.sub_point_results["reference_1_description"]["passed"]
    assert r.score is not None and r.score >= r.threshold


@pytest.mark.parametrize("color,shape", CASES)
def test_different_shape_or_colour_fails(judge: ReferenceSimilarityJudge, color: str, shape: str) -> None:
    other_shape = shapes.SHAPES[(shapes.SHAPES.index(shape) + 2) % 4]
    other_color = "purple" if color != "purple" else "yellow"
    cache = FeatureCache()
    img = _render(color, shape, 3)
    items = [
        _item(img, [_ref(color, other_shape, 4, kind="garment")], cache),
        _item(img, [_ref(other_color, shape, 5, kind="product")], cache),
    ]
    for r in judge.judge(items):
        assert not r.passed, r.reasoning
        assert {i.subcategory for i in r.issues} == {"reference_mismatch"}
        assert r.confidence > 0.5


def test_description_mismatch_fails(judge: ReferenceSimilarityJudge) -> None:
    item = _item(_render("red", "circle", 6), [_ref("red", "circle", 7, description="a blue square")])
    (r,) = judge.judge([item])
    assert not r.passed
    assert [i.subcategory for i in r.issues] == ["description_mismatch"]
    assert r.issues[0].target == "a blue square"


def test_every_reference_must_match_unless_ignored(judge: ReferenceSimilarityJudge) -> None:
    img = _render("yellow", "square", 8)
    refs = [_ref("yellow", "square", 9, kind="object"), _ref("green", "cross", 10, kind="background")]
    (r,) = judge.judge([_item(img, refs)])
    assert not r.passed and "background reference 2" in r.reasoning
    (ok,) = judge.judge([_item(img, refs, directives=Directives(ignore={"background"}))])
    assert ok.passed and any("ignored by the rubric" in e for e in ok.evidence)


def test_applies_only_with_non_identity_references(judge: ReferenceSimilarityJudge) -> None:
    img = _render("red", "circle", 11)
    assert not judge.applies(_item(img, []))
    assert not judge.applies(_item(img, [Reference("identity", img)]))
    assert judge.applies(_item(img, [Reference("style", img)]))


def test_batch_equals_singles_and_each_image_embeds_once(
    judge: ReferenceSimilarityJudge, monkeypatch: pytest.MonkeyPatch
) -> None:
    emb = judge._embedder()
    seen: list[int] = []
    real = emb.encode_images
    monkeypatch.setattr(emb, "encode_images", lambda ims: seen.append(len(ims)) or real(ims))
    shared_ref = _ref("blue", "square", 12)
    cache = FeatureCache()
    items = [_item(_render(c, s, 20 + n), [shared_ref], cache) for n, (c, s) in enumerate(CASES)]
    batch = judge.judge(items)
    assert seen == [5]  # 4 generated images + the shared reference, in one call
    judge.judge(items)
    assert seen == [5]  # second judge call: everything from the cache
    singles = [judge.judge([_item(it.image, [shared_ref])])[0] for it in items]
    assert [(r.passed, r.score) for r in batch] == [(r.passed, r.score) for r in singles]
    assert [r.passed for r in batch] == [False, True, False, False]
    assert judge.judge([]) == []


def test_default_thresholds_are_per_kind_and_profiles_override(judge: ReferenceSimilarityJudge) -> None:
    plain = ReferenceSimilarityJudge()
    thr, text, name = plain.profile("open_clip:ViT-B-32:openai|cpu|float32")
    assert thr == DEFAULT_THRESHOLDS and "default profile" in name
    assert thr["product"] > thr["style"]  # identity of an item vs a shared look
    thr2, text2, name2 = judge.profile(judge._embedder().key)
    assert thr2["object"] == TINY and text2 == TINY and "tiny_shapes_clip" in name2


def test_missing_clip_fails_fast_with_a_clear_error() -> None:
    j = ReferenceSimilarityJudge(
        model_set=ModelSet(ModelSettings(clip="local-dir:/nonexistent/clip"), registry=ModelRegistry())
    )
    with pytest.raises(ModelUnavailableError, match="nonexistent"):
        j.warmup()
