"""Headshot checks with the dlib backend on real photos (no downloads).

The astronaut headshot crop passes; a blurred copy fails with ``blur`` (also under
noise); a tiny face in a large canvas fails ``framing``; the six people of t1.jpg fail
``multiple_faces``; a tilted head fails ``pose``; a blank image fails ``no_face``.
No closed-eye photo ships with any installed package, so ``eyes_closed`` is tested on
the astronaut's real landmarks with the eyelid points moved shut.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

pytest.importorskip("dlib", reason="dlib-bin provides the dlib face backend")

from imagejury.judges.face_common import eye_aspect_ratio, head_pose  # noqa: E402
from imagejury.judges.features import FeatureCache  # noqa: E402
from imagejury.judges.headshot import HeadshotJudge, face_sharpness  # noqa: E402
from imagejury.judges.types import Directives, JudgeItem  # noqa: E402
from imagejury.models.errors import ModelUnavailableError  # noqa: E402
from imagejury.models.face.dlib_backend import load_dlib  # noqa: E402
from imagejury.models.provider import ModelSet  # noqa: E402
from imagejury.models.settings import ModelSettings  # noqa: E402
from tests.support import faces as F  # noqa: E402

CACHE = FeatureCache()  # one per module: each test photo is analysed once


@pytest.fixture(scope="module")
def judge() -> HeadshotJudge:
    j = HeadshotJudge(model_set=ModelSet(ModelSettings(face_backend="dlib")))
    try:
        j.warmup()
    except ModelUnavailableError as exc:  # pragma: no cover
        pytest.skip(str(exc))
    return j


def make_item(image, task_type="headshot", cache=CACHE, ignore=(), item_id="item") -> JudgeItem:
    return JudgeItem(
        item_id=item_id,
        image=image,
        image_key=F.content_key(image),
        task_type=task_type,
        directives=Directives(ignore=set(ignore)),
        features=cache,
    )


def run(judge, image, **kw):
    return judge.judge([make_item(image, **kw)])[0]


def subcats(res) -> set[str]:
    return {i.subcategory for i in res.issues}


def test_contract_attributes(judge):
    assert judge.name == "headshot" and judge.category == "composition"
    assert judge.requires == frozenset() and judge.models == frozenset({"face"})
    assert judge.judge([]) == []
    assert judge.applies(make_item(F.blank()))
    assert not judge.applies(make_item(F.blank(), task_type="image_generation"))


def test_astronaut_headshot_passes_every_check(judge):
    res = run(judge, F.astronaut_headshot())
    assert res.passed, res.reasoning
    assert set(res.sub_point_results) == {"one_face", "framing", "sharpness", "eyes_open", "pose"}
    for name, sp in res.sub_point_results.items():
        assert sp["passed"] is True and sp["score"] >= 0.5 and sp["text"], name
    assert res.sub_points_evaluated == 5 and not res.issues and not res.gate_failures
    assert 0.5 <= res.confidence < 1 and res.score >= 0.5


def test_full_astronaut_portrait_passes_and_ignores_the_suit_patch(judge):
    # the mission patch is a weak HOG detection (score ~0.1) of the same size as the face
    res = run(judge, F.astronaut())
    assert res.passed, res.reasoning
    assert any("weak detection" in e for e in res.evidence)


@pytest.mark.parametrize("sigma, noise", [(2.0, 0.0), (3.0, 0.0), (2.0, 10.0), (2.0, 25.0)])
def test_blurred_face_fails_with_blur(judge, sigma, noise):
    image = F.noise(F.blur(F.astronaut_headshot(), sigma), noise)
    res = run(judge, image)
    assert not res.passed
    assert subcats(res) == {"blur"}, res.reasoning
    assert res.sub_point_results["sharpness"]["score"] < 0.5


def test_noise_alone_is_not_called_blur(judge):
    res = run(judge, F.noise(F.astronaut_headshot(), 25.0))
    assert "blur" not in subcats(res), res.reasoning


def test_sharpness_falls_with_blur_and_is_scale_free(judge):
    head = F.astronaut_headshot()
    analyzer = judge._analyzer()
    box = analyzer.analyze([head])[0][0].box
    values = [face_sharpness(F.blur(head, s), box) for s in (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)]
    assert values == sorted(values, reverse=True) and values[0] > 3 * values[2]
    big = F.rescale(head, 2.0)
    big_box = analyzer.analyze([big])[0][0].box
    assert face_sharpness(big, big_box) == pytest.approx(values[0], rel=0.25)


def test_tiny_face_in_a_large_canvas_fails_framing(judge):
    res = run(judge, F.paste_small(F.astronaut_headshot(), canvas=(1600, 1600)))
    assert not res.passed
    assert subcats(res) == {"framing"}, res.reasoning
    assert "face height" in res.sub_point_results["framing"]["text"]


def test_off_centre_face_fails_framing(judge):
    head = F.astronaut_headshot()
    wide = F.blank((head.width * 3, head.height), (200, 200, 200))
    wide.paste(head, (0, 0))  # face in the left third
    res = run(judge, wide)
    assert "framing" in subcats(res)
    assert "horizontal centre" in next(i.detail for i in res.issues if i.subcategory == "framing")


def test_rubric_can_switch_framing_off(judge):
    from imagejury.judges.rubric import parse_directives

    ignore = parse_directives("Ignore the framing.").ignore  # through the real parser
    res = run(judge, F.paste_small(F.astronaut_headshot(), canvas=(1600, 1600)), ignore=ignore)
    assert res.passed, res.reasoning
    assert "framing" not in res.sub_point_results and "ignored by the rubric" in res.reasoning


def test_rubric_ignoring_blur_skips_only_the_face_sharpness(judge):
    from imagejury.judges.rubric import parse_directives

    ignore = parse_directives("A soft focus is fine.").ignore  # through the real parser: the blur defect
    assert ignore == {"blur"}
    res = run(judge, F.blur(F.astronaut_headshot(), 3.0), ignore=ignore)
    assert "sharpness" not in res.sub_point_results and "framing" in res.sub_point_results
    assert "blur" not in subcats(res), res.reasoning


def test_group_photo_fails_multiple_faces(judge):
    res = run(judge, F.group_photo())
    assert not res.passed
    assert "multiple_faces" in subcats(res)
    assert res.sub_point_results["one_face"]["passed"] is False


def test_tilted_head_fails_pose(judge):
    tilted = F.astronaut_headshot().rotate(25, resample=3, fillcolor=(128, 128, 128))
    res = run(judge, tilted)
    assert subcats(res) == {"pose"}, res.reasoning
    assert "roll" in res.sub_point_results["pose"]["text"]


def test_blank_image_fails_no_face_without_a_gate(judge):
    res = run(judge, F.blank())
    assert not res.passed and subcats(res) == {"no_face"}
    assert not res.gate_failures  # the identity judge owns the gate


def test_closed_eyes_fail(judge):
    analyzer = judge._analyzer()
    face = analyzer.analyze([F.astronaut_headshot()])[0][0]
    shut = copy.deepcopy(face)
    lm = shut.landmarks.copy()
    for a, b in ((36, 42), (42, 48)):  # collapse each eyelid onto the eye's corner line
        y = (lm[a, 1] + lm[a + 3, 1]) / 2
        lm[a + 1 : a + 3, 1] = y + 0.5
        lm[a + 4 : b, 1] = y - 0.5
    shut.landmarks = lm
    assert eye_aspect_ratio(face.landmarks[36:42]) > 0.25
    assert eye_aspect_ratio(lm[36:42]) < 0.1

    class Shut:
        key, name = analyzer.key + ":eyes-shut-test", analyzer.name
        same_person_threshold, threshold_source = analyzer.same_person_threshold, analyzer.threshold_source
        similarity = staticmethod(analyzer.similarity)

        def analyze(self, images):
            return [[shut] for _ in images]

    j = HeadshotJudge(model_set=judge.model_set)
    j._analyzer_obj = Shut()  # type: ignore[assignment]
    res = j.judge([make_item(F.astronaut_headshot(), cache=FeatureCache())])[0]
    assert subcats(res) == {"eyes_closed"}, res.reasoning


def test_without_68_points_eyes_are_skipped_and_pose_still_checked():
    an = load_dlib(landmarks68=False)
    j = HeadshotJudge()
    j._analyzer_obj = an
    res = j.judge([make_item(F.astronaut_headshot(), cache=FeatureCache())])[0]
    assert res.passed, res.reasoning
    assert "eyes_open" not in res.sub_point_results and "pose" in res.sub_point_results
    assert "eyes_open (no landmarks from this backend)" in res.reasoning


def test_head_pose_geometry():
    iod = 60.0
    frontal = np.array([[100, 100], [100 + iod, 100], [130, 130], [110, 160], [150, 160]], dtype=float)
    roll, yaw = head_pose(frontal)
    assert roll == pytest.approx(0) and yaw == pytest.approx(0)
    turned = frontal.copy()
    turned[2, 0] += 0.45 * iod  # nose shifted by the assumed nose depth: 45° of yaw
    assert head_pose(turned)[1] == pytest.approx(45.0)
    theta = math.radians(20)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    assert head_pose(frontal @ rot.T)[0] == pytest.approx(20.0)
    nan_nose = frontal.copy()
    nan_nose[2] = np.nan
    assert head_pose(nan_nose) is None


def test_batch_equals_single_calls(judge):
    images = [F.astronaut_headshot(), F.blank(), F.blur(F.astronaut_headshot(), 2.0), F.astronaut_headshot()]
    cache = FeatureCache()
    batched = judge.judge([make_item(im, cache=cache, item_id=str(i)) for i, im in enumerate(images)])
    singles = [run(judge, im, cache=FeatureCache()) for im in images]
    assert len(batched) == 4
    for b, s in zip(batched, singles):
        assert (b.passed, b.score, b.confidence, subcats(b)) == (s.passed, s.score, s.confidence, subcats(s))
    assert len(cache) == 3  # the repeated image was analysed once
