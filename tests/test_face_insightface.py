"""insightface backend on a tiny pack built by tests/support/insightface_pack.py.

The pack goes through the real loading code (locate → manifest/router → insightface's
model_zoo classes → onnxruntime); only the weights are synthetic. A GPU test runs real
buffalo_l when a CUDA onnxruntime and the pack (env IMAGEJURY_BUFFALO_L) are present.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("insightface")
import onnxruntime  # noqa: E402

from imagejury.models.errors import ModelError, ModelUnavailableError  # noqa: E402
from imagejury.models.face.insightface_backend import (  # noqa: E402
    SAME_PERSON_THRESHOLD,
    InsightFaceAnalyzer,
    load_insightface,
    locate_insightface,
)
from imagejury.models.interfaces import FaceAnalyzer  # noqa: E402
from imagejury.models.provider import ModelSet  # noqa: E402
from imagejury.models.registry import ModelRegistry  # noqa: E402
from imagejury.models.settings import ModelSettings  # noqa: E402
from tests.support import insightface_pack as pack  # noqa: E402

HAS_CUDA_EP = "CUDAExecutionProvider" in onnxruntime.get_available_providers()


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    """Any attempt by insightface to download fails the test at once."""
    import insightface.utils.storage as storage

    def refuse(*args, **kwargs):
        raise AssertionError(f"insightface tried to download: {args}")

    monkeypatch.setattr(storage, "download", refuse)
    monkeypatch.setattr(storage, "download_file", refuse)


@pytest.fixture(scope="module")
def packs(tmp_path_factory):
    root = tmp_path_factory.mktemp("insightface_packs")
    return {
        "v2": pack.build_pack(root / "v2", manifest="insightface"),
        "roles": pack.build_pack(root / "roles", manifest="imagejury"),
        "routed": pack.build_pack(root / "routed", manifest=None),
        "fixed": pack.build_pack(root / "fixed", manifest="insightface", fixed_batch=True),
        "batch_one": pack.build_pack(root / "batch_one", manifest="insightface", batch_one_graph=True),
        "odd": pack.build_pack(root / "odd", manifest=None, extra_unroutable=True),
    }


@pytest.fixture(scope="module")
def analyzer(packs) -> InsightFaceAnalyzer:
    return load_insightface(str(packs["v2"]), device="cpu", det_size=320, threads=1)


def _count_runs(monkeypatch, model) -> list[int]:
    """Record the batch size of every onnxruntime call the model's session makes."""
    session = model.session
    real_run = session.run
    sizes: list[int] = []

    def run(output_names, feeds, *args, **kwargs):
        sizes.append(int(next(iter(feeds.values())).shape[0]))
        return real_run(output_names, feeds, *args, **kwargs)

    monkeypatch.setattr(session, "run", run)
    return sizes


# -- loading --------------------------------------------------------------------------------
def test_loads_through_insightface_classes(analyzer, packs):
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX
    from insightface.model_zoo.scrfd import SCRFD

    assert isinstance(analyzer, FaceAnalyzer)
    assert isinstance(analyzer.detector, SCRFD) and analyzer.detector.use_kps
    assert isinstance(analyzer.recognizer, ArcFaceONNX)
    assert analyzer.roles == {"detection": pack.DETECTOR_FILE, "recognition": pack.RECOGNIZER_FILE}
    assert analyzer.role_source == "insightface manifest V2"
    assert analyzer.providers == ["CPUExecutionProvider"] and analyzer.provider == "CPUExecutionProvider"
    assert analyzer.key == f"insightface:{packs['v2'].resolve()}:cpu"
    assert analyzer.embed_dim == pack.EMBED_DIM
    assert analyzer.batched_recognition
    assert analyzer.same_person_threshold == SAME_PERSON_THRESHOLD
    assert "DEFAULT_THRESHOLD" in analyzer.threshold_source


@pytest.mark.skipif(HAS_CUDA_EP, reason="checks the CPU fallback; this onnxruntime has CUDA")
def test_cuda_request_without_cuda_provider_falls_back_to_cpu(packs, caplog):
    caplog.set_level("WARNING", logger="imagejury.models.face.insightface_backend")
    analyzer = load_insightface(str(packs["v2"]), device="cuda", det_size=320, threads=1)
    assert analyzer.providers == ["CPUExecutionProvider"]
    assert "no CUDAExecutionProvider" in caplog.text


def test_provider_choice_follows_device_and_availability(monkeypatch):
    from imagejury.models.face.insightface_backend import select_providers

    monkeypatch.setattr(
        onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    assert select_providers("cuda:1") == (["CUDAExecutionProvider", "CPUExecutionProvider"], [{"device_id": 1}, {}])
    assert select_providers("cuda")[1][0] == {"device_id": 0}
    assert select_providers("cpu") == (["CPUExecutionProvider"], [{}])
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert select_providers("cuda") == (["CPUExecutionProvider"], [{}])


def test_roles_manifest_and_router_packs_load_the_same_models(packs, analyzer):
    image = pack.face_image((320, 320), [(96, 64)], seed=3)
    reference = analyzer.analyze([image])[0][0].embedding
    for name, source in (("roles", "imagejury roles manifest"), ("routed", "insightface router (no manifest)")):
        other = load_insightface(str(packs[name]), det_size=320, threads=1)
        assert other.role_source == source
        assert other.roles == analyzer.roles
        np.testing.assert_allclose(other.analyze([image])[0][0].embedding, reference, atol=1e-6)


def test_unroutable_file_is_named(packs):
    with pytest.raises(ModelError, match=r"odd\.onnx.*maps this file to no role"):
        load_insightface(str(packs["odd"]), det_size=320, threads=1)


def test_declared_role_that_does_not_fit_names_the_file(packs, tmp_path):
    folder = tmp_path / "swapped"
    folder.mkdir()
    for name in (pack.DETECTOR_FILE, pack.RECOGNIZER_FILE):
        (folder / name).write_bytes((packs["routed"] / name).read_bytes())
    pack.write_manifest(folder, "imagejury", {pack.DETECTOR_FILE: "recognition", pack.RECOGNIZER_FILE: "detection"})
    with pytest.raises(ModelError, match=r"det_tiny\.onnx: declared recognition"):
        load_insightface(str(folder), threads=1)


def test_unknown_role_and_unknown_manifest_are_errors(packs, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / pack.DETECTOR_FILE).write_bytes((packs["routed"] / pack.DETECTOR_FILE).read_bytes())
    (folder / "manifest.json").write_text(json.dumps({"roles": {pack.DETECTOR_FILE: "face_swap"}}))
    with pytest.raises(ModelError, match="unknown role 'face_swap'"):
        load_insightface(str(folder))
    (folder / "manifest.json").write_text(json.dumps({"files": []}))
    with pytest.raises(ModelError, match="neither insightface's model-package manifest V2"):
        load_insightface(str(folder))


def test_insightface_manifest_hash_mismatch_names_the_file(packs, tmp_path):
    folder = tmp_path / "hashed"
    folder.mkdir()
    for name in (pack.DETECTOR_FILE, pack.RECOGNIZER_FILE, "MODEL.LICENSE"):
        (folder / name).write_bytes((packs["v2"] / name).read_bytes())
    document = json.loads((packs["v2"] / "manifest.json").read_text())
    document["tasks"]["recognition"]["sha256"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(document))
    with pytest.raises(ModelError, match=r"rec_tiny\.onnx.*SHA-256 mismatch"):
        load_insightface(str(folder), threads=1)


def test_pack_without_a_recognizer_is_an_error(packs, tmp_path):
    folder = tmp_path / "detonly"
    folder.mkdir()
    (folder / pack.DETECTOR_FILE).write_bytes((packs["routed"] / pack.DETECTOR_FILE).read_bytes())
    with pytest.raises(ModelError, match="no recognition model"):
        load_insightface(str(folder), threads=1)


# -- missing packs ------------------------------------------------------------------------
def test_no_pack_given_says_where_and_how(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ModelUnavailableError) as info:
        locate_insightface(None)
    message = str(info.value)
    assert ".insightface/models/buffalo_l does not exist" in message
    assert "--face-model PATH" in message and "never downloads" in message


def test_missing_and_empty_packs_name_every_place_looked(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ModelUnavailableError) as info:
        load_insightface("buffalo_l")
    message = str(info.value)
    assert "pack 'buffalo_l'" in message
    assert str(tmp_path / ".insightface" / "models" / "buffalo_l") in message
    empty = tmp_path / "empty_pack"
    empty.mkdir()
    with pytest.raises(ModelUnavailableError, match="no .onnx files"):
        locate_insightface(str(empty))
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        locate_insightface(str(tmp_path / "nowhere"))


def test_bare_pack_name_resolves_under_the_insightface_root(packs, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    target = tmp_path / ".insightface" / "models" / "tiny"
    target.parent.mkdir(parents=True)
    target.symlink_to(packs["v2"], target_is_directory=True)
    assert locate_insightface("tiny") == str(packs["v2"].resolve())


# -- detection and embeddings ---------------------------------------------------------------
def test_detection_lands_on_the_planted_square(analyzer):
    faces = analyzer.analyze([pack.face_image((320, 320), [(96, 64)])])[0]
    assert len(faces) == 1
    face = faces[0]
    np.testing.assert_allclose(face.box, (96, 64, 160, 128), atol=2.0)
    assert face.score > 0.9
    assert face.keypoints.shape == (5, 2)
    expected_kps = np.array([128.0, 96.0]) + pack.KEYPOINT_OFFSETS
    np.testing.assert_allclose(face.keypoints, expected_kps, atol=2.0)
    assert face.landmarks is None  # the tiny pack has no landmark model


def test_boxes_come_back_in_image_pixels_after_resizing(analyzer):
    # 640x480 is resized by 0.5 to fit det_size 320: the 128 px square is 64 px to the detector
    faces = analyzer.analyze([pack.face_image((640, 480), [(192, 128)], side=128)])[0]
    assert len(faces) == 1
    np.testing.assert_allclose(faces[0].box, (192, 128, 320, 256), atol=4.0)


def test_blank_image_has_no_faces(analyzer):
    from PIL import Image

    assert analyzer.analyze([Image.new("RGB", (200, 150), (10, 10, 10))]) == [[]]
    assert analyzer.analyze([]) == []


def test_embeddings_normalised_deterministic_and_distinct(analyzer):
    images = [pack.face_image((320, 320), [(32, 32), (192, 160)], seed=1)]
    first = analyzer.analyze(images)[0]
    second = analyzer.analyze(images)[0]
    assert len(first) == 2
    for a, b in zip(first, second):
        assert a.embedding.shape == (pack.EMBED_DIM,)
        assert abs(float(np.linalg.norm(a.embedding)) - 1.0) < 1e-5
        assert np.array_equal(a.embedding, b.embedding)
    assert analyzer.similarity(first[0].embedding, first[0].embedding) == pytest.approx(1.0, abs=1e-6)
    assert analyzer.similarity(first[0].embedding, first[1].embedding) < 0.95


def test_same_face_elsewhere_matches_itself_best(analyzer):
    # face index 0 of seed 5 drawn at two places; face index 1 is a different pattern
    pair = analyzer.analyze([pack.face_image((320, 320), [(32, 32), (192, 160)], seed=5)])[0]
    alone = analyzer.analyze([pack.face_image((320, 320), [(128, 96)], seed=5)])[0][0]
    by_x = sorted(pair, key=lambda f: f.box[0])
    assert analyzer.similarity(alone.embedding, by_x[0].embedding) > 0.999
    assert analyzer.similarity(alone.embedding, by_x[1].embedding) < 0.95


def test_recognition_is_one_batched_call_across_images(analyzer, monkeypatch):
    images = [
        pack.face_image((320, 320), [(32, 32), (192, 160)], seed=1),
        pack.face_image((320, 320), [(96, 64)], seed=2),
        pack.face_image((320, 320), [(40, 200)], seed=3),
    ]
    singles = [f.embedding for image in images for f in analyzer.analyze([image])[0]]
    calls = _count_runs(monkeypatch, analyzer.recognizer)
    faces = analyzer.analyze(images)
    assert [len(f) for f in faces] == [2, 1, 1]
    assert calls == [4]  # one onnxruntime call, four faces
    batched = [f.embedding for per_image in faces for f in per_image]
    np.testing.assert_allclose(np.stack(batched), np.stack(singles), atol=1e-5)


def test_fixed_batch_model_falls_back_to_one_call_per_face(packs, analyzer, monkeypatch, caplog):
    caplog.set_level("INFO", logger="imagejury.models.face.insightface_backend")
    fixed = load_insightface(str(packs["fixed"]), det_size=320, threads=1)
    assert not fixed.batched_recognition
    assert "batch axis fixed at 1" in caplog.text
    images = [
        pack.face_image((320, 320), [(32, 32), (192, 160)], seed=1),
        pack.face_image((320, 320), [(96, 64)], seed=2),
    ]
    calls = _count_runs(monkeypatch, fixed.recognizer)
    got = [f.embedding for per_image in fixed.analyze(images) for f in per_image]
    assert calls == [1, 1, 1]
    want = [f.embedding for per_image in analyzer.analyze(images) for f in per_image]
    np.testing.assert_allclose(np.stack(got), np.stack(want), atol=1e-5)


def test_model_that_fails_on_a_batch_falls_back_with_a_warning(packs, analyzer, monkeypatch, caplog):
    caplog.set_level("WARNING", logger="imagejury.models.face.insightface_backend")
    quirky = load_insightface(str(packs["batch_one"]), det_size=320, threads=1)
    assert quirky.batched_recognition  # its ONNX declares a dynamic batch axis
    images = [
        pack.face_image((320, 320), [(32, 32), (192, 160)], seed=1),
        pack.face_image((320, 320), [(96, 64)], seed=2),
    ]
    calls = _count_runs(monkeypatch, quirky.recognizer)
    got = [f.embedding for per_image in quirky.analyze(images) for f in per_image]
    assert calls == [3, 1, 1, 1]  # the batched try, then one call per face
    assert "falling back to one recognition call per face" in caplog.text
    assert not quirky.batched_recognition
    want = [f.embedding for per_image in analyzer.analyze(images) for f in per_image]
    np.testing.assert_allclose(np.stack(got), np.stack(want), atol=1e-5)


def test_faces_are_sorted_largest_first(analyzer, monkeypatch):
    real_detect = analyzer.detector.detect

    def detect_small_first(img, **kwargs):
        det, kps = real_detect(img, **kwargs)
        small = det.copy()
        small[:, 2:4] = small[:, 0:2] + 10  # a 10x10 box scored higher than the real one
        small[:, 4] = 0.99
        return np.vstack([small, det]), np.concatenate([kps, kps])

    monkeypatch.setattr(analyzer.detector, "detect", detect_small_first)
    faces = analyzer.analyze([pack.face_image((320, 320), [(96, 64)])])[0]
    assert [round(f.area) for f in faces] == [64 * 64, 100]


def test_bad_inputs_are_typed_errors(analyzer):
    with pytest.raises(TypeError):
        analyzer.analyze([np.zeros((10, 10, 3), dtype=np.uint8)])
    with pytest.raises(ValueError):
        analyzer.similarity(np.ones(4), np.ones(5))


# -- registry -----------------------------------------------------------------------------
def test_model_set_returns_one_cached_analyzer(packs):
    registry = ModelRegistry()
    settings = ModelSettings(face_backend="insightface", face_model=str(packs["v2"]))
    model_set = ModelSet(settings, registry=registry)
    first = model_set.face_analyzer()
    assert isinstance(first, InsightFaceAnalyzer)
    assert ModelSet(settings, registry=registry).face_analyzer() is first
    assert list(registry.load_counts.values()) == [1]
    # the default det_size (640) on a 640x640 image: the 64 px square is found where it is
    faces = first.analyze([pack.face_image((640, 640), [(320, 256)])])[0]
    assert len(faces) == 1
    np.testing.assert_allclose(faces[0].box, (320, 256, 384, 320), atol=2.0)


def test_model_set_without_pack_is_unavailable():
    model_set = ModelSet(ModelSettings(face_backend="insightface"), registry=ModelRegistry())
    with pytest.raises(ModelUnavailableError, match="--face-model"):
        model_set.face_analyzer()


# -- real buffalo_l on a GPU box ----------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA_EP, reason="needs onnxruntime with CUDAExecutionProvider")
@pytest.mark.skipif(
    not os.environ.get("IMAGEJURY_BUFFALO_L") or not Path(os.environ["IMAGEJURY_BUFFALO_L"]).is_dir(),
    reason="set IMAGEJURY_BUFFALO_L to a local buffalo_l folder",
)
def test_real_buffalo_l_on_t1(monkeypatch):
    import insightface
    from PIL import Image, ImageOps

    images_dir = Path(insightface.__file__).parent / "data" / "images"
    t1 = Image.open(images_dir / "t1.jpg").convert("RGB")
    analyzer = load_insightface(os.environ["IMAGEJURY_BUFFALO_L"], device="cuda")
    assert analyzer.provider == "CUDAExecutionProvider"
    calls = _count_runs(monkeypatch, analyzer.recognizer)
    faces, mirrored = analyzer.analyze([t1, ImageOps.mirror(t1)])
    assert len(faces) == 6 and len(mirrored) == 6
    if analyzer.batched_recognition:
        assert calls == [12]  # all faces of both images in one recognition call
    else:
        assert calls == [1] * 12
    for face in faces:
        assert face.embedding.shape == (512,)
        assert abs(float(np.linalg.norm(face.embedding)) - 1.0) < 1e-4
        if "landmark_3d_68" in analyzer.roles:
            assert face.landmarks is not None and face.landmarks.shape == (68, 2)
    # six different people: every pair is on the different-person side of the threshold
    for i in range(6):
        for j in range(i + 1, 6):
            assert analyzer.similarity(faces[i].embedding, faces[j].embedding) < analyzer.same_person_threshold
    # each face matches its own mirror image (paired by mirrored box centre)
    width = t1.width
    for face in faces:
        cx = (face.box[0] + face.box[2]) / 2
        twin = min(mirrored, key=lambda m: abs(width - (m.box[0] + m.box[2]) / 2 - cx) + abs(m.box[1] - face.box[1]))
        assert analyzer.similarity(face.embedding, twin.embedding) > analyzer.same_person_threshold
