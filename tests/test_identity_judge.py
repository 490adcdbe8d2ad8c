"""The identity judge with the dlib backend on real photos (no downloads).

The astronaut against her own flipped / rescaled / recompressed copies passes; against
each of the six people in insightface's t1.jpg and against Tom Hanks it fails; a blank
image is a gate failure; references without a usable face are reported, not used.
"""

from __future__ import annotations

import pytest

pytest.importorskip("dlib", reason="dlib-bin provides the dlib face backend")

from imagejury.judges.base import JudgeConfig  # noqa: E402
from imagejury.judges.features import FeatureCache  # noqa: E402
from imagejury.judges.identity import IdentityJudge  # noqa: E402
from imagejury.judges.types import JudgeItem, Reference  # noqa: E402
from imagejury.models.errors import ModelUnavailableError  # noqa: E402
from imagejury.models.provider import ModelSet  # noqa: E402
from imagejury.models.settings import ModelSettings  # noqa: E402
from tests.support import faces as F  # noqa: E402

CACHE = FeatureCache()  # one per module: each test photo is analysed once (keys are content hashes)


@pytest.fixture(scope="module")
def judge() -> IdentityJudge:
    j = IdentityJudge(model_set=ModelSet(ModelSettings(face_backend="dlib")))
    try:
        j.warmup()
    except ModelUnavailableError as exc:  # pragma: no cover
        pytest.skip(str(exc))
    return j


def make_item(image, refs=(), kind="identity", cache=CACHE, item_id="item") -> JudgeItem:
    return JudgeItem(
        item_id=item_id,
        image=image,
        image_key=F.content_key(image),
        task_type="headshot",
        references=[Reference(kind=kind, image=r, key=F.content_key(r)) for r in refs],
        features=cache,
    )


@pytest.fixture(scope="module")
def group_crops(judge) -> list:
    """Each person of t1.jpg cropped out with margin around its detected box."""
    group = F.group_photo()
    faces = CACHE.faces(judge._analyzer(), [F.content_key(group)], [group])[0]
    assert len(faces) == 6
    return [F.crop_box(group, f.box, margin=0.6) for f in faces]


def test_contract_attributes(judge):
    assert judge.name == "identity" and judge.category == "identity"
    assert judge.requires == frozenset({"identity_reference"}) and judge.models == frozenset({"face"})
    assert isinstance(judge.config, JudgeConfig)
    assert judge.judge([]) == []
    assert judge.applies(make_item(F.astronaut(), [F.astronaut()]))
    assert not judge.applies(make_item(F.astronaut()))
    assert not judge.applies(make_item(F.astronaut(), [F.astronaut()], kind="garment"))
    assert judge.applies(make_item(F.astronaut(), [F.astronaut()], kind="Person"))


@pytest.mark.parametrize(
    "name, distort",
    [
        ("flip", F.flip),
        ("rescale_0.5", lambda im: F.rescale(im, 0.5)),
        ("rescale_1.5", lambda im: F.rescale(im, 1.5)),
        ("jpeg_q30", lambda im: F.jpeg(im, 30)),
        ("jpeg_q10", lambda im: F.jpeg(im, 10)),
    ],
)
def test_same_person_passes(judge, name, distort):
    res = judge.judge([make_item(distort(F.astronaut()), [F.astronaut()])])[0]
    assert res.passed, res.reasoning
    assert res.score is not None and res.threshold is not None and res.score >= res.threshold
    assert res.confidence > 0.9  # distance ≤ 0.35 is ≥ 0.25 from the threshold
    assert not res.gate_failures
    assert any("similarity" in e and "threshold" in e for e in res.evidence)
    assert any("[" in e and "vs reference 1 face [" in e for e in res.evidence)  # boxes
    assert not [i for i in res.issues if i.subcategory == "multiple_faces"]  # the suit patch is a weak detection


@pytest.mark.parametrize("index", range(6))
def test_each_group_member_fails(judge, group_crops, index):
    res = judge.judge([make_item(group_crops[index], [F.astronaut()])])[0]
    assert not res.passed, res.reasoning
    assert res.score < res.threshold
    assert "identity_mismatch" in {i.subcategory for i in res.issues}
    assert not res.gate_failures


def test_tom_hanks_fails(judge):
    res = judge.judge([make_item(F.tom_hanks(), [F.astronaut()])])[0]
    assert not res.passed
    assert "different person" in res.reasoning


def test_blank_image_is_a_gate_failure(judge):
    res = judge.judge([make_item(F.blank(), [F.astronaut()])])[0]
    assert not res.passed
    assert len(res.gate_failures) == 1
    gate = res.gate_failures[0]
    assert (gate.output_key, gate.module) == ("face", "identity") and "no face" in gate.reason
    assert "no_face" in {i.subcategory for i in res.issues}


def test_group_photo_reports_multiple_faces_and_the_compared_one(judge):
    group = F.group_photo()
    # the reference is one of the six people: the judge must pick that face out of the group
    faces = CACHE.faces(judge._analyzer(), [F.content_key(group)], [group])[0]
    target = faces[2]
    ref = F.crop_box(group, target.box, margin=0.8)
    res = judge.judge([make_item(group, [ref])])[0]
    assert res.passed, res.reasoning
    multi = [i for i in res.issues if i.subcategory == "multiple_faces"]
    assert len(multi) == 1
    box = "[" + ", ".join(str(int(round(v))) for v in target.box) + "]"
    assert f"compared the best-matching one at {box}" in multi[0].detail
    assert box in res.reasoning


def test_reference_without_a_face_is_reported_and_others_still_work(judge):
    res = judge.judge([make_item(F.jpeg(F.astronaut(), 30), [F.blank(), F.flip(F.astronaut())])])[0]
    assert res.passed, res.reasoning
    assert "reference 1: no face found, excluded" in res.reasoning
    no_face = [i for i in res.issues if i.subcategory == "reference_no_face"]
    assert len(no_face) == 1 and no_face[0].severity < 1.0
    assert res.sub_points_evaluated == 2
    assert res.sub_point_results["reference_1"]["passed"] is False
    assert res.sub_point_results["reference_2"]["passed"] is True


def test_no_usable_reference_fails_without_crashing(judge):
    res = judge.judge([make_item(F.astronaut(), [F.blank(), F.blank((200, 300), (10, 10, 10))])])[0]
    assert not res.passed and res.score is None
    assert not res.gate_failures  # the image has a face; only the references are unusable
    subs = [i.subcategory for i in res.issues]
    assert subs.count("reference_no_face") == 2
    assert "no identity reference has a usable face" in res.reasoning


def test_reference_with_several_faces_uses_the_largest_and_says_so(judge):
    group = F.group_photo()
    res = judge.judge([make_item(F.astronaut(), [group])])[0]
    assert not res.passed
    assert "reference 1: 6 faces, used the largest" in res.reasoning
    assert "reference_multiple_faces" in {i.subcategory for i in res.issues}


def test_best_and_mean_over_several_references(judge, group_crops):
    res = judge.judge([make_item(F.astronaut(), [F.flip(F.astronaut()), group_crops[0], F.jpeg(F.astronaut(), 30)])])[0]
    assert res.passed
    sims = [res.sub_point_results[f"reference_{i}"]["score"] for i in (1, 2, 3)]
    assert res.score == pytest.approx(max(sims), abs=1e-4)
    assert f"mean {sum(sims) / 3:.3f}" in res.reasoning
    assert [res.sub_point_results[f"reference_{i}"]["passed"] for i in (1, 2, 3)] == [True, False, True]


def test_identity_is_decided_on_the_best_reference_not_the_mean(judge, group_crops):
    # one reference of her and five of other people: the best match passes, the mean would not
    res = judge.judge([make_item(F.flip(F.astronaut()), [F.astronaut(), *group_crops[:5]])])[0]
    sims = [res.sub_point_results[f"reference_{i}"]["score"] for i in range(1, 7)]
    assert sum(sims) / len(sims) < res.threshold <= max(sims), sims  # the case tells best from mean
    assert res.passed, res.reasoning
    best = res.measurements[0]
    assert best.name == "best_similarity" and best.decisive and best.value == pytest.approx(max(sims), abs=1e-4)
    assert [m.decisive for m in res.measurements[1:]] == [False] * 6


def test_a_pass_near_the_threshold_is_borderline_with_the_measured_band(judge):
    res = judge.judge([make_item(F.flip(F.astronaut()), [F.astronaut()])])[0]
    best = res.measurements[0]
    assert best.band == 0.04 and "520 labeled" in best.band_source
    assert not best.borderline  # a clear match: far outside the band
    # the same image judged against a threshold just below its score: a pass inside the band
    close = IdentityJudge({"threshold": best.value - 0.01}, model_set=judge.model_set)
    near = close.judge([make_item(F.flip(F.astronaut()), [F.astronaut()])])[0]
    assert near.passed and near.measurements[0].borderline and "borderline" in near.reasoning


def test_threshold_override(judge):
    strict = IdentityJudge({"threshold": 0.95}, model_set=judge.model_set)
    res = strict.judge([make_item(F.flip(F.astronaut()), [F.astronaut()])])[0]
    assert res.threshold == 0.95 and not res.passed
    assert any("config override" in e for e in res.evidence)


def test_batch_equals_single_calls_and_each_image_is_analysed_once(judge, group_crops):
    cache = FeatureCache()
    ref = F.astronaut()
    images = [F.flip(ref), group_crops[1], F.blank(), F.flip(ref)]
    batch = [make_item(im, [ref], cache=cache, item_id=str(i)) for i, im in enumerate(images)]
    calls: list[int] = []
    analyzer = judge._analyzer()
    real = analyzer.analyze

    class Counting:
        key, name = analyzer.key, analyzer.name
        same_person_threshold, threshold_source = analyzer.same_person_threshold, analyzer.threshold_source
        similarity = staticmethod(analyzer.similarity)

        def analyze(self, ims):
            calls.append(len(ims))
            return real(ims)

    counted = IdentityJudge(model_set=judge.model_set)
    counted._analyzer_obj = Counting()  # type: ignore[assignment]
    batched = counted.judge(batch)
    # one analyzer call for the whole batch; the repeated image and the shared reference once each
    assert calls == [4]
    singles = [judge.judge([make_item(im, [ref], item_id=str(i))])[0] for i, im in enumerate(images)]
    assert len(batched) == len(batch)
    for b, s in zip(batched, singles):
        assert (b.passed, b.score, b.confidence, len(b.gate_failures)) == (
            s.passed,
            s.score,
            s.confidence,
            len(s.gate_failures),
        )


def test_item_without_identity_reference_is_not_judged_as_a_failure(judge):
    res = judge.judge([make_item(F.astronaut())])[0]
    assert res.passed and "not applicable" in res.reasoning
