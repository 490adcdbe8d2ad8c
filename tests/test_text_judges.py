"""The judges that read text, on the project's tiny shapes CLIP and generated images.

Proof asked by the issue: right prompt passes and wrong colour / wrong shape fails with
the right sub-point named (>= 85% over a few hundred held-out images); attributes and
"no blue shapes" the same way; one image forward pass per image for all five judges
together; the safety gate's plumbing; the aesthetic head's loading and shape checks.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from imagejury.judges.aesthetics import AestheticsJudge, load_aesthetic_head
from imagejury.judges.attributes import AttributesJudge
from imagejury.judges.clip_scoring import EMPTY_THRESHOLD, looks_plain, plain_canvas
from imagejury.judges.features import FeatureCache
from imagejury.judges.instructions import InstructionsJudge
from imagejury.judges.prompt_adherence import WHOLE, PromptAdherenceJudge
from imagejury.judges.safety import SafetyJudge
from imagejury.judges.types import Directives, JudgeItem
from imagejury.models.errors import ModelError, ModelUnavailableError
from imagejury.models.provider import ModelSet
from imagejury.models.registry import ModelRegistry
from imagejury.models.settings import ModelSettings
from tests.support import shapes
from tests.support.clip_fixtures import TINY_CLIP_DIR, TINY_CLIP_SOURCE

VOCAB = {"colour": list(shapes.COLORS), "shape": list(shapes.SHAPES)}
HELD_OUT_SEED = 90417  # not a seed the tiny CLIP was trained or validated on (0, 1001, 2002)
N_IMAGES = 120  # x 3 prompts = 360 prompt cases


@pytest.fixture(scope="module")
def model_set() -> ModelSet:
    assert (TINY_CLIP_DIR / "open_clip_config.json").is_file(), f"tiny shapes CLIP missing at {TINY_CLIP_DIR}"
    return ModelSet(ModelSettings(clip=TINY_CLIP_SOURCE), registry=ModelRegistry())


@pytest.fixture(scope="module")
def held_out() -> list[shapes.Sample]:
    return shapes.dataset(N_IMAGES, seed=HELD_OUT_SEED, templates=False)


@pytest.fixture(scope="module")
def shared() -> FeatureCache:
    """One feature cache for the accuracy tests: each held-out image is encoded once."""
    return FeatureCache()


def _item(sample_or_image, cache: FeatureCache, **kw) -> JudgeItem:
    img = getattr(sample_or_image, "image", sample_or_image)
    key = hashlib.sha256(img.tobytes()).hexdigest()
    return JudgeItem(item_id=kw.pop("item_id", key[:8]), image=img, image_key=key, features=cache, **kw)


def _wrong(options, right, rng) -> str:
    others = [o for o in options if o != right]
    return others[int(rng.integers(len(others)))]


def test_prompt_adherence_right_passes_wrong_fails_and_names_the_sub_point(model_set, held_out, shared) -> None:
    judge = PromptAdherenceJudge({"vocabulary": VOCAB}, model_set=model_set)
    rng = np.random.default_rng(5)
    cache = shared
    items, expect = [], []
    for s in held_out:
        wc, ws = _wrong(shapes.COLORS, s.color, rng), _wrong(shapes.SHAPES, s.shape, rng)
        for colour, shape, want in (
            (s.color, s.shape, None),
            (wc, s.shape, "wrong_attribute"),
            (s.color, ws, "missing_element"),
        ):
            items.append(_item(s, cache, prompt=shapes.caption(colour, shape)))
            expect.append(want)
    results = judge.judge(items)
    assert len(results) == len(items) == 3 * N_IMAGES
    right = []
    for item, want, r in zip(items, expect, results):
        assert r.sub_points_evaluated == 1 and WHOLE in r.sub_point_results and item.prompt in r.sub_point_results
        if want is None:
            right.append(r.passed)
        else:
            named = [i for i in r.issues if i.target == item.prompt and i.subcategory == want]
            right.append(not r.passed and bool(named) and item.prompt in named[0].detail)
    accuracy = float(np.mean(right))
    assert accuracy >= 0.85, accuracy
    # the evidence carries the numbers
    assert any("p=" in e and "foil" in e for e in results[1].evidence)


def test_attributes_colour_passes_and_fails(model_set, held_out, shared) -> None:
    judge = AttributesJudge({"vocabulary": VOCAB}, model_set=model_set)
    rng = np.random.default_rng(6)
    cache = shared
    items, truth = [], []
    for s in held_out:
        for colour, t in ((s.color, True), (_wrong(shapes.COLORS, s.color, rng), False)):
            items.append(_item(s, cache, attributes={"color": colour}))
            truth.append(t)
    results = judge.judge(items)
    accuracy = float(np.mean([r.passed == t for r, t in zip(results, truth)]))
    assert accuracy >= 0.85, accuracy
    failed = next(r for r, t in zip(results, truth) if not t and not r.passed)
    assert failed.issues[0].subcategory == "attribute_mismatch" and "color" in failed.issues[0].detail


def test_attributes_never_guess_unknown_or_non_visual_keys(model_set, held_out) -> None:
    judge = AttributesJudge({"vocabulary": VOCAB}, model_set=model_set)
    r = judge.judge(
        [_item(held_out[0], FeatureCache(), attributes={"width": 64, "seed": 3, "mood_ring": "teal", "color": 5})]
    )[0]
    assert r.sub_points_evaluated == 0 and r.weight == 0.0
    for word in ("'width'", "technical_signals", "'seed'", "'mood_ring'", "unknown attribute key", "not a word"):
        assert word in r.reasoning
    r = judge.judge([_item(held_out[0], FeatureCache(), attributes={"color": held_out[0].color, "height": 64})])[0]
    assert r.sub_points_evaluated == 1 and "'height'" in r.reasoning


def test_no_blue_shapes_fails_an_image_with_a_blue_shape(model_set) -> None:
    judge = InstructionsJudge({"vocabulary": VOCAB}, model_set=model_set)
    rng = np.random.default_rng(7)
    cache = FeatureCache()
    items, truth = [], []
    for k in range(60):
        colour = "blue" if k % 2 == 0 else _wrong(shapes.COLORS, "blue", rng)
        shape = shapes.SHAPES[k % 4]
        items.append(
            _item(shapes.render(colour, shape, rng), cache, instructions="No blue shapes. Ignore the background.")
        )
        truth.append(colour != "blue")
    results = judge.judge(items)
    accuracy = float(np.mean([r.passed == t for r, t in zip(results, truth)]))
    assert accuracy >= 0.85, accuracy
    blue = next(r for r, t in zip(results, truth) if not t and not r.passed)
    assert blue.issues[0].subcategory == "prohibited_element" and blue.issues[0].target == "blue shapes"
    # the directive is read and reported
    assert "ignore ['background']" in blue.reasoning and "prohibition" in blue.reasoning


def test_one_image_forward_pass_per_image_for_all_text_judges(model_set) -> None:
    emb = model_set.embedder()
    seen: list[int] = []
    original = emb.encode_images

    def counting(images):
        seen.append(len(images))
        return original(images)

    rng = np.random.default_rng(8)
    cache = FeatureCache()
    items = [
        _item(
            shapes.render(c, s, rng),
            cache,
            prompt=f"a {c} {s}",
            instructions="no blue shapes",
            attributes={"color": c},
        )
        for c, s in shapes.CLASSES[:10]
    ]
    judges = [
        PromptAdherenceJudge({"vocabulary": VOCAB}, model_set=model_set),
        InstructionsJudge({"vocabulary": VOCAB}, model_set=model_set),
        AttributesJudge({"vocabulary": VOCAB}, model_set=model_set),
        AestheticsJudge(model_set=model_set),
        SafetyJudge(model_set=model_set),
    ]
    emb.encode_images = counting  # type: ignore[method-assign]
    try:
        before = emb.image_forward_calls
        for j in judges:
            assert len(j.judge(items)) == len(items)
        # one batched call for the images, for the first judge only; one for their emptiness
        # foils (plain canvases of each image's mean colour, shared by every judge that uses them)
        canvases = {plain_canvas(i.image)[0] for i in items if looks_plain(i.image)}
        assert seen == ([len(items), len(canvases)] if canvases else [len(items)])
        assert emb.image_forward_calls - before == len(items) + len(canvases)
        texts_before = emb.text_forward_calls
        for j in judges:  # a second round is all cache hits: no image or text forward pass
            j.judge(items)
        assert len(seen) == (2 if canvases else 1) and emb.text_forward_calls == texts_before
    finally:
        del emb.encode_images  # back to the bound method


def test_batch_equals_singles_and_empty_batch(model_set, held_out) -> None:
    judges = [
        PromptAdherenceJudge({"vocabulary": VOCAB}, model_set=model_set),
        InstructionsJudge({"vocabulary": VOCAB}, model_set=model_set),
        AttributesJudge({"vocabulary": VOCAB}, model_set=model_set),
        AestheticsJudge(model_set=model_set),
        SafetyJudge(model_set=model_set),
    ]
    samples = held_out[:4]

    def items(cache):
        return [
            _item(s, cache, prompt=f"a {s.color} {s.shape}", instructions="no blue shapes", attributes={"color": "red"})
            for s in samples
        ]

    for j in judges:
        assert j.judge([]) == []
        batch = j.judge(items(FeatureCache()))
        singles = [j.judge([it])[0] for it in items(FeatureCache())]
        assert [(r.passed, r.score) for r in batch] == [(r.passed, r.score) for r in singles], j.name


def test_directives_skip_ignored_aspects(model_set, held_out) -> None:
    judge = PromptAdherenceJudge({"vocabulary": VOCAB}, model_set=model_set)
    s = held_out[0]
    wrong_colour = _wrong(shapes.COLORS, s.color, np.random.default_rng(9))
    prompt = shapes.caption(wrong_colour, s.shape)
    plain = judge.judge([_item(s, FeatureCache(), prompt=prompt)])[0]
    ignoring = judge.judge([_item(s, FeatureCache(), prompt=prompt, directives=Directives(ignore={"colour"}))])[0]
    # with colour ignored only shape foils remain, so the right shape in the wrong colour is accepted
    assert all(
        f not in ignoring.sub_point_results[prompt]["top_foils"]
        for f in [shapes.caption(c, s.shape) for c in shapes.COLORS]
    )
    assert ignoring.sub_point_results[prompt]["foils_scored"] == len(shapes.SHAPES) - 1
    assert plain.sub_point_results[prompt]["foils_scored"] == len(shapes.COLORS) - 1 + len(shapes.SHAPES) - 1


def test_long_prompt_is_capped_with_a_note_not_cut(model_set, held_out) -> None:
    judge = PromptAdherenceJudge({"vocabulary": VOCAB, "max_sub_points": 5}, model_set=model_set)
    prompt = ", ".join(shapes.caption(c, s) for c, s in shapes.CLASSES) + ", all on a plain background"
    r = judge.judge([_item(held_out[0], FeatureCache(), prompt=prompt)])[0]
    assert r.sub_points_evaluated == 5
    assert "not scored (cap max_sub_points=5)" in r.reasoning
    assert "'an orange cross'" in r.reasoning  # the ones over the cap are named
    assert r.sub_point_results[WHOLE]["text"] == prompt  # the whole prompt is scored whole (the embedder chunks)
    assert "encoded it in chunks" in r.reasoning


def test_nothing_checkable_is_not_voted(model_set, held_out) -> None:
    judge = PromptAdherenceJudge({"vocabulary": VOCAB}, model_set=model_set)
    r = judge.judge([_item(held_out[0], FeatureCache(), prompt="something glorious")])[0]
    assert r.weight == 0.0 and r.sub_points_evaluated == 0 and "Not voted" in r.reasoning


def test_safety_gate_plumbing_with_a_test_concept(model_set) -> None:
    """Zero-shot safety cannot be validated on shapes; this shows a hit writes the gate row."""
    others = [shapes.caption(c, s) for c, s in shapes.CLASSES if (c, s) != ("red", "circle")]
    judge = SafetyJudge(
        {"unsafe_concepts": {"test_concept": ["a red circle"]}, "safe_concepts": others}, model_set=model_set
    )
    rng = np.random.default_rng(10)
    cache = FeatureCache()
    reds = [_item(shapes.render("red", "circle", rng), cache) for _ in range(8)]
    blues = [_item(shapes.render("blue", "square", rng), cache) for _ in range(8)]
    res = judge.judge(reds + blues)
    tripped = [r for r in res[:8] if not r.passed]
    assert len(tripped) >= 7
    g = tripped[0].gate_failures[0]
    assert (
        (g.output_key, g.module) == ("image", "safety")
        and "test_concept" in g.reason
        and "not a certified classifier" in g.reason
    )
    assert all(r.passed and not r.gate_failures for r in res[8:])
    assert SafetyJudge.is_gate


def test_aesthetics_antonym_scale(model_set, held_out) -> None:
    r = AestheticsJudge(model_set=model_set).judge([_item(held_out[0], FeatureCache())])[0]
    assert 0.0 <= r.score <= 1.0 and r.threshold == 0.5 and "antonym" in r.reasoning
    assert len(r.evidence) == 5


def _laion_mlp_state(in_dim: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    seq = torch.nn.Sequential(
        torch.nn.Linear(in_dim, 1024), torch.nn.Dropout(0.2), torch.nn.Linear(1024, 128), torch.nn.Dropout(0.2),
        torch.nn.Linear(128, 64), torch.nn.Dropout(0.1), torch.nn.Linear(64, 16), torch.nn.Linear(16, 1),
    )  # fmt: skip
    return {f"layers.{k}": v for k, v in seq.state_dict().items()}


def test_aesthetic_head_loads_scores_and_checks_shapes(model_set, held_out, tmp_path) -> None:
    dim = model_set.embedder().embed_dim
    good = tmp_path / "head.pth"
    torch.save(_laion_mlp_state(dim), good)
    head = load_aesthetic_head(good)
    assert head.format == "laion-mlp" and head.input_dim == dim

    ms = ModelSet(ModelSettings(clip=TINY_CLIP_SOURCE, aesthetic_head=str(good)), registry=model_set.registry)
    j = AestheticsJudge(model_set=ms)
    r = j.judge([_item(s, FeatureCache()) for s in held_out[:3]])
    assert all(np.isfinite(x.score) and x.threshold == 5.0 and "LAION aesthetic head" in x.reasoning for x in r)
    emb = j.image_embeddings([_item(held_out[0], FeatureCache())])
    assert r[0].score == pytest.approx(float(head.score(emb)[0]), abs=1e-4)

    # LAION's published head is 768-d (ViT-L-14): with the 64-d tiny CLIP that is a clear error
    big = tmp_path / "l14.pth"
    torch.save(_laion_mlp_state(768), big)
    with pytest.raises(ModelError, match=r"768-d.*64-d|768.*ViT-L-14"):
        AestheticsJudge(
            model_set=ModelSet(
                ModelSettings(clip=TINY_CLIP_SOURCE, aesthetic_head=str(big)), registry=model_set.registry
            )
        ).warmup()

    # broken chains and unknown layouts are refused, a missing file is ModelUnavailable
    state = _laion_mlp_state(dim)
    state["layers.2.weight"] = torch.zeros(128, 999)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(ModelError, match="does not chain"):
        load_aesthetic_head(bad)
    odd = tmp_path / "odd.pth"
    torch.save({"fc.weight": torch.zeros(1, dim)}, odd)
    with pytest.raises(ModelError, match="expected LAION"):
        load_aesthetic_head(odd)
    with pytest.raises(ModelUnavailableError, match="aesthetic head"):
        load_aesthetic_head(tmp_path / "absent.pth")

    # the older single-linear head and safetensors files load too
    from safetensors.torch import save_file

    lin = tmp_path / "linear.safetensors"
    save_file({"weight": torch.randn(1, dim), "bias": torch.zeros(1)}, str(lin))
    assert load_aesthetic_head(lin).format == "laion-linear"


def _nothing_images() -> dict[str, object]:
    """Images that show no red circle: blank, plain (each shape colour, red included), unrelated."""
    from PIL import Image
    from skimage import data

    rng = np.random.default_rng(31)
    out = {f"plain {name}": Image.new("RGB", (64, 64), rgb) for name, rgb in shapes.COLORS.items()}
    out |= {"blank white": Image.new("RGB", (64, 64), (255, 255, 255)), "blank black": Image.new("RGB", (64, 64))}
    out |= {
        "noise": Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)),
        "a photo (astronaut)": Image.fromarray(data.astronaut()).resize((64, 64)),
        "a photo (cat)": Image.fromarray(data.chelsea()).resize((64, 64)),
        "a blue square": shapes.render("blue", "square", rng),
    }
    return out


def test_a_blank_plain_or_unrelated_image_does_not_pass_a_red_circle(model_set) -> None:
    cache = FeatureCache()
    judges = [
        PromptAdherenceJudge({"vocabulary": VOCAB}, model_set=model_set),
        AttributesJudge({"vocabulary": VOCAB}, model_set=model_set),
        InstructionsJudge({"vocabulary": VOCAB}, model_set=model_set),
    ]
    nothing = _nothing_images()
    kw = {
        "prompt": "a red circle",
        "attributes": {"color": "red", "shape": "circle"},
        "instructions": "It must show a red circle.",
    }
    items = [_item(img, cache, item_id=name, **kw) for name, img in nothing.items()]
    right = _item(shapes.render("red", "circle", np.random.default_rng(5)), cache, item_id="a red circle", **kw)
    for judge in judges:
        results = judge.judge([*items, right])
        passed = [it.item_id for it, r in zip(items, results) if r.passed]
        assert passed == [], f"{judge.name} passed 'a red circle' on: {passed}"
        assert results[-1].passed, (judge.name, results[-1].reasoning)
    # the plain red canvas is the case the vocabulary foils miss ("a red circle" beats "a red
    # square" on pure red): the emptiness foil is what refuses it, and says so
    pa = judges[0].judge([_item(nothing["plain red"], cache, item_id="red", **kw)])[0]
    empty = next(m for m in pa.measurements if m.name == "not_empty")
    # a tie with its own canvas, up to the canvas colour quantisation
    assert empty.value < EMPTY_THRESHOLD and empty.value == pytest.approx(0.5, abs=0.02)
    assert "empty_image" in {i.subcategory for i in pa.issues}
