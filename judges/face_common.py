"""Small helpers the face judges share: cached analysis, weak detections, geometry.

Detection scores are on each backend's own scale, so "is this a real second face or a
weak false positive" needs a per-backend floor (``DEFAULT_MIN_FACE_SCORE``):

- ``dlib`` (HOG SVM margin, detector threshold 0): 0.3. Measured: the mission patch on
  the astronaut's suit is detected at 0.07-0.13 with one upsampling, while the six real
  faces of insightface's ``t1.jpg`` score 0.63-2.72 and the astronaut's face 0.9-1.5.
- ``insightface`` (SCRFD probability): 0.5, its own ``det_thresh`` default (a no-op
  for faces that backend returns).

A weak detection is never counted as an extra face; if every detection in an image is
weak they are all kept (the detector's own threshold decides whether there is a face).
The cost: a real but weakly detected second face (small, blurred, turned away) is not
counted either; it is still listed in the judges' evidence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from imagejury.judges.base import Judge
from imagejury.judges.features import FeatureCache, content_key, group_by_cache
from imagejury.models.interfaces import Face, FaceAnalyzer

DEFAULT_MIN_FACE_SCORE: dict[str, float] = {"dlib": 0.3, "insightface": 0.5}


class FaceJudge(Judge):
    """Base of the judges on the shared face analyzer: loaded on warmup (or first use), never in __init__."""

    models = frozenset({"face"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._analyzer_obj: FaceAnalyzer | None = None

    def warmup(self) -> None:
        self._analyzer()

    def _analyzer(self) -> FaceAnalyzer:
        if self._analyzer_obj is None:
            self._analyzer_obj = self.model_set.face_analyzer()
        return self._analyzer_obj


#: the cache key of an image: the given key, or a content hash when it is empty
image_key = content_key


def analyze_cached(
    analyzer: FaceAnalyzer, requests: Sequence[tuple[FeatureCache, str, Image.Image]]
) -> list[list[Face]]:
    """Faces for each (cache, key, image), one analyzer call per distinct cache.

    Items of one batch normally share a cache, so the whole batch (generated images and
    references) goes through the analyzer in one call, each image once.
    """
    out: list[list[Face]] = [[] for _ in requests]
    for cache, idxs in group_by_cache([r[0] for r in requests]):
        keys = [requests[i][1] for i in idxs]
        images = [requests[i][2] for i in idxs]
        for i, faces in zip(idxs, cache.faces(analyzer, keys, images)):
            out[i] = list(faces)
    return out


def split_weak(faces: Sequence[Face], backend: str, floors: dict[str, float]) -> tuple[list[Face], list[Face]]:
    """(counted, weak): faces below the backend's score floor are weak.

    If all are weak, all are counted (largest first, as the analyzer returned them).
    """
    floor = floors.get(backend, 0.0)
    strong = [f for f in faces if f.score >= floor]
    weak = [f for f in faces if f.score < floor]
    if not strong:
        return list(faces), []
    return strong, weak


def face_vector(face: Face) -> np.ndarray:
    """The vector the backend's ``similarity`` expects: dlib's raw descriptor if kept."""
    raw = face.extra.get("descriptor") if face.extra else None
    return np.asarray(raw if raw is not None else face.embedding)


def fmt_box(face: Face) -> str:
    return "[" + ", ".join(str(int(round(v))) for v in face.box) + "]"


def eye_aspect_ratio(eye: np.ndarray) -> float:
    """EAR of one eye's six 68-point landmarks (Soukupová & Čech 2016)."""
    p = np.asarray(eye, dtype=np.float64)
    width = float(np.linalg.norm(p[0] - p[3]))
    if width <= 0:
        return float("nan")
    return float((np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])) / (2.0 * width))


# Nose-tip depth in front of the eye centres, as a fraction of the inter-ocular
# distance, from the generic 3D face model used with solvePnP in many head-pose tools
# (outer eye corners at x = ±225, z = -135 relative to the nose tip; eye centres taken
# at ±150, i.e. 300 apart → 135 / 300 = 0.45). A rough average face, so yaw is an estimate, not a
# measurement: it has not been checked against ground-truth head angles.
NOSE_DEPTH_PER_IOD = 0.45


def head_pose(keypoints: np.ndarray) -> tuple[float, float] | None:
    """(roll, yaw) in degrees from the eye centres and the nose keypoint, or None.

    Roll is the angle of the eye line; yaw comes from how far the nose sits from the
    eye midpoint along that line (``atan(offset / (0.45 * IOD))``), positive when the
    nose is to the image's right.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.shape[0] < 3 or not np.all(np.isfinite(kp[:3])):
        return None
    left, right, nose = kp[0], kp[1], kp[2]
    d = right - left
    iod = float(np.hypot(d[0], d[1]))
    if iod <= 1e-6:
        return None
    roll = math.degrees(math.atan2(d[1], d[0]))
    u = d / iod
    offset = float(np.dot(nose - (left + right) / 2.0, u)) / iod
    yaw = math.degrees(math.atan(offset / NOSE_DEPTH_PER_IOD))
    return roll, yaw


def signed_score(margin: float, scale: float) -> float:
    """0..1 with 0.5 at the threshold: above 0.5 passes (per-check score)."""
    return round(0.5 + 0.5 * math.tanh(margin / scale), 4)


def describe_analyzer(analyzer: Any) -> str:
    return f"{getattr(analyzer, 'name', '?')} ({getattr(analyzer, 'key', '?')})"
