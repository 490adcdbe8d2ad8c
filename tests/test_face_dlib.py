"""The dlib face backend on real photos shipped with installed packages (no downloads).

Same face under flip / rescale / JPEG must stay on the same-person side of dlib's 0.6
distance; the six people of insightface's t1.jpg and Tom Hanks must stay on the other.
"""

from __future__ import annotations

import importlib.util
import threading

import numpy as np
import pytest

pytest.importorskip("dlib", reason="dlib-bin provides the dlib face backend")

from imagejury.models.errors import ModelUnavailableError  # noqa: E402
from imagejury.models.face import dlib_backend as face_dlib  # noqa: E402
from imagejury.models.face.dlib_backend import DlibFaceAnalyzer, load_dlib, locate_dlib  # noqa: E402
from imagejury.models.interfaces import FaceAnalyzer  # noqa: E402
from imagejury.models.provider import ModelSet  # noqa: E402
from imagejury.models.registry import ModelRegistry  # noqa: E402
from imagejury.models.settings import ModelSettings  # noqa: E402
from tests.support import faces as F  # noqa: E402


@pytest.fixture(scope="module")
def analyzer() -> DlibFaceAnalyzer:
    try:
        return load_dlib(landmarks68=True)
    except ModelUnavailableError as exc:  # pragma: no cover - the test extra installs them
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def astro_faces(analyzer):
    return analyzer.analyze([F.astronaut()])[0]


@pytest.fixture(scope="module")
def astro_face(astro_faces):
    return astro_faces[0]


@pytest.fixture(scope="module")
def group_faces(analyzer):
    return analyzer.analyze([F.group_photo()])[0]


def _raw(face) -> np.ndarray:
    return face.extra["descriptor"]


# -- locating and loading ------------------------------------------------------------
def test_locate_finds_the_shipped_model_files():
    folder = locate_dlib()
    for name in face_dlib.FILES.values():
        assert (face_dlib.Path(folder) / name).is_file(), name


def test_missing_package_is_a_clear_error(monkeypatch):
    real = importlib.util.find_spec

    def fake(name, *args, **kwargs):
        return None if name == face_dlib.PACKAGE else real(name, *args, **kwargs)

    monkeypatch.setattr(face_dlib.importlib.util, "find_spec", fake)
    with pytest.raises(ModelUnavailableError) as err:
        load_dlib()
    msg = str(err.value)
    assert "face_recognition_models" in msg and "pip install dlib-bin face_recognition_models" in msg


def test_missing_model_file_is_a_clear_error(monkeypatch, tmp_path):
    pkg = tmp_path / "face_recognition_models"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    spec = importlib.util.spec_from_file_location("face_recognition_models", pkg / "__init__.py")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        face_dlib.importlib.util, "find_spec", lambda n, *a, **k: spec if n == face_dlib.PACKAGE else real(n, *a, **k)
    )
    with pytest.raises(ModelUnavailableError, match="missing shape_predictor_5_face_landmarks.dat"):
        locate_dlib()


def test_analyzer_meets_the_interface(analyzer):
    assert isinstance(analyzer, FaceAnalyzer)
    assert analyzer.name == "dlib"
    # the similarity threshold corresponds exactly to dlib's distance 0.6
    assert analyzer.same_person_threshold == pytest.approx(1.0 - 0.6)
    assert "0.6" in analyzer.threshold_source
    assert analyzer.key != load_dlib(landmarks68=False).key


def test_model_set_loads_dlib_once_through_the_registry():
    ms = ModelSet(ModelSettings(face_backend="dlib"), registry=ModelRegistry())
    a, b = ms.face_analyzer(), ms.face_analyzer()
    assert a is b and isinstance(a, DlibFaceAnalyzer)
    assert sum(ms.registry.load_counts.values()) == 1


def test_bad_options_and_inputs(analyzer):
    with pytest.raises(ValueError):
        load_dlib(upsample=7)
    with pytest.raises(TypeError):
        analyzer.analyze([np.zeros((64, 64, 3), dtype=np.uint8)])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        analyzer.similarity(np.zeros(128), np.zeros(64))


# -- detection and the Face record ---------------------------------------------------------
def test_astronaut_face_box_keypoints_and_embedding(astro_face):
    x1, y1, x2, y2 = astro_face.box
    # the face is in the upper middle of the photo (checked by eye: 175,76 - 266,167)
    assert 150 < x1 < 200 and 50 < y1 < 100 and 240 < x2 < 290 and 140 < y2 < 190
    kp = astro_face.keypoints
    assert kp.shape == (5, 2) and np.all(np.isfinite(kp))
    left_eye, right_eye, nose, left_mouth, right_mouth = kp
    assert left_eye[0] < nose[0] < right_eye[0]
    assert left_mouth[0] < right_mouth[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1])
    for x, y in kp:
        assert x1 <= x <= x2 and y1 <= y <= y2
    assert astro_face.landmarks is not None and astro_face.landmarks.shape == (68, 2)
    assert astro_face.embedding.shape == (128,)
    assert np.linalg.norm(astro_face.embedding) == pytest.approx(1.0, abs=1e-5)
    raw = _raw(astro_face)
    assert raw.shape == (128,) and np.linalg.norm(raw) > 0.5  # raw descriptors are not unit length


def test_faces_are_sorted_largest_first(astro_faces, group_faces):
    for faces in (astro_faces, group_faces):
        areas = [f.area for f in faces]
        assert areas == sorted(areas, reverse=True)


def test_group_photo_has_six_confident_faces(group_faces):
    assert len(group_faces) == 6
    assert all(f.score > 0.3 for f in group_faces)


@pytest.mark.parametrize("image", [F.blank(), F.blank((300, 200), (0, 0, 0)), F.blank((8, 8), (255, 255, 255))])
def test_faceless_images_give_no_faces(analyzer, image):
    assert analyzer.analyze([image]) == [[]]


def test_grayscale_rgba_and_palette_inputs(analyzer, astro_face):
    head = F.astronaut_headshot()
    images = [head.convert("L"), head.convert("RGBA"), head.convert("P")]
    for faces in analyzer.analyze(images):
        assert len(faces) >= 1
        assert analyzer.similarity(_raw(faces[0]), _raw(astro_face)) >= analyzer.same_person_threshold


def test_large_image_is_downscaled_for_detection_and_boxes_map_back(analyzer, astro_face):
    head = F.astronaut_headshot()
    big = F.paste_small(head, canvas=(2048, 1600))
    ox, oy = (2048 - head.width) // 2, (1600 - head.height) // 2
    faces = analyzer.analyze([big])[0]
    assert len(faces) == 1
    x1, y1, x2, y2 = faces[0].box
    # the face in the headshot crop sits at about (66, 56, 156, 147); allow the detector's
    # coarser box on the downscaled image
    assert abs(x1 - (ox + 66)) < 15 and abs(y1 - (oy + 56)) < 15
    assert abs(x2 - (ox + 156)) < 15 and abs(y2 - (oy + 147)) < 15
    assert analyzer.similarity(_raw(faces[0]), _raw(astro_face)) >= analyzer.same_person_threshold


# -- the same person stays the same; different people stay apart ----------------------------
SAME = {
    "flip": lambda im: F.flip(im),
    "rescale_0.5": lambda im: F.rescale(im, 0.5),
    "rescale_0.75": lambda im: F.rescale(im, 0.75),
    "rescale_1.5": lambda im: F.rescale(im, 1.5),
    "jpeg_q30": lambda im: F.jpeg(im, 30),
}


@pytest.mark.parametrize("name", list(SAME))
def test_same_person_under_distortions(analyzer, astro_face, name):
    faces = analyzer.analyze([SAME[name](F.astronaut())])[0]
    assert faces, f"no face found after {name}"
    best = max(analyzer.similarity(_raw(astro_face), _raw(f)) for f in faces)
    distance = 1.0 - best
    assert best >= analyzer.same_person_threshold
    assert distance < 0.6
    # FINDINGS.md measured 0.06-0.19 for these distortions; well clear of 0.6
    assert distance < 0.35


def test_similarity_is_exact_dlib_distance(analyzer, astro_face, group_faces):
    a, b = _raw(astro_face), _raw(group_faces[0])
    assert analyzer.similarity(a, b) == pytest.approx(1.0 - float(np.linalg.norm(a - b)))
    assert analyzer.similarity(a, a) == pytest.approx(1.0)


@pytest.mark.parametrize("index", range(6))
def test_each_person_in_the_group_photo_is_someone_else(analyzer, astro_face, group_faces, index):
    face = group_faces[index]
    assert analyzer.similarity(_raw(astro_face), _raw(face)) < analyzer.same_person_threshold


def test_group_members_are_distinct_from_each_other(analyzer, group_faces):
    for i, a in enumerate(group_faces):
        for b in group_faces[i + 1 :]:
            assert analyzer.similarity(_raw(a), _raw(b)) < analyzer.same_person_threshold


def test_tom_hanks_is_someone_else(analyzer, astro_face, group_faces):
    faces = analyzer.analyze([F.tom_hanks()])[0]
    assert len(faces) == 1
    for other in [astro_face, *group_faces]:
        assert analyzer.similarity(_raw(faces[0]), _raw(other)) < analyzer.same_person_threshold


# -- options ------------------------------------------------------------------------------
def test_without_68_points_mouth_keypoints_are_nan(monkeypatch):
    monkeypatch.setenv(face_dlib.LANDMARKS68_ENV, "0")
    an = load_dlib()
    assert an.landmarks68 is False and "lm5" in an.key
    face = an.analyze([F.astronaut_headshot()])[0][0]
    assert face.landmarks is None
    kp = face.keypoints
    assert np.all(np.isfinite(kp[:3])) and np.all(np.isnan(kp[3:]))
    assert kp[0][0] < kp[2][0] < kp[1][0]


def test_upsampling_finds_small_faces():
    small = F.rescale(F.astronaut_headshot(), 0.5)  # face ~45 px: below HOG's 80 px window
    assert load_dlib(landmarks68=False, upsample=0).analyze([small]) == [[]]
    assert len(load_dlib(landmarks68=False, upsample=1).analyze([small])[0]) == 1


@pytest.mark.slow
def test_cnn_detector_agrees_with_hog(astro_face):
    an = load_dlib(cnn=True, landmarks68=False, upsample=0)
    assert an.key.startswith("dlib:cnn")
    faces = an.analyze([F.astronaut_headshot()])[0]
    assert len(faces) == 1
    assert an.similarity(_raw(faces[0]), _raw(astro_face)) >= an.same_person_threshold


def test_concurrent_calls_are_serialised_and_consistent(analyzer):
    image = F.tom_hanks()
    expected = analyzer.analyze([image])[0][0]
    results: list = []

    def work() -> None:
        results.append(analyzer.analyze([image, image]))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3
    for per_image in results:
        for faces in per_image:
            assert faces[0].box == expected.box
            assert np.allclose(_raw(faces[0]), _raw(expected), atol=1e-5)
