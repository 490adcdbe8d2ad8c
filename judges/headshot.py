"""Headshot checks: one dominant face, well framed, sharp, eyes open, facing the camera.

Applies to items whose ``task_type`` is ``headshot``. Every check is a sub-point
``{text, passed, score}`` (score 0..1, 0.5 at the threshold) and every failure an issue
with a short subcategory: ``no_face``, ``multiple_faces``, ``framing``, ``blur``,
``eyes_closed``, ``pose``. A missing face fails the judge; the identity judge, not this
one, turns a missing face into a gate failure.

Where the bounds come from (all overridable in ``HeadshotConfig``):

- **Framing.** Passport rules (US Department of State; ICAO 9303 ``portrait`` guidance)
  want the head, chin to crown, at 50-69% of the image height and the face centred. A
  professional headshot shows head and shoulders, so we are deliberately more lenient:
  the detector's face box (≈ brows to chin, about 0.7 of the head height) must be
  15-70% of the image height, its centre within the middle third horizontally and
  between 15% and 65% of the height from the top. These lenient bounds are our choice,
  not a published standard; the astronaut portrait (face box 18% of the height, centre at
  43% / 24%) passes them.
- **Sharpness** on the face crop only: the crop is resampled to 128x128 (so the measure
  does not depend on face size), filtered by a Laplacian of Gaussian with sigma 1, and
  the LoG variance is divided by the crop's intensity variance (so dim, low-contrast faces
  are not called blurred): ``sharpness = 1000 * var(LoG) / var(I)``. Noise would read as
  detail (blur sigma 2 plus noise sigma 25 scores 28 uncorrected, above the sharp
  original), so the noise share is estimated (Haar MAD) and subtracted — see
  ``face_sharpness``. Measured on the astronaut headshot crop with dlib boxes: original
  17.1; Gaussian blur sigma 0.5: 11.8, 1: 5.0, 1.5: 2.2, 2: 1.2, 3: 0.5; noise sigma 25:
  16.5; blur sigma 2 + noise sigma 10: 1.3, + noise sigma 25: 2.2; JPEG q10: 15.3; the same
  face downscaled to 44 px: 9.8; the six faces of ``t1.jpg``: 8.9-16.4; Tom Hanks sample:
  12.7. Threshold 4.0 sits between the softest real face (8.9) and blur sigma 1.5 (2.2),
  just below blur sigma 1 (5.0).
- **Eyes open**: eye aspect ratio (Soukupová & Čech, "Real-Time Eye Blink Detection
  using Facial Landmarks", CVWW 2016) from 68-point landmarks, mean of both eyes; below
  0.2 counts as closed. The paper classifies EAR sequences with an SVM; 0.2 is the common
  single-frame cut-off of implementations that follow it, not a value from the paper.
  Measured: astronaut 0.29-0.36; Tom Hanks 0.36; squinting smiles in ``t1.jpg`` 0.15.
  Needs 68-point landmarks (dlib with ``landmarks68`` on; insightface with its
  ``landmark_3d_68`` model); otherwise the check is skipped and the reasoning says so.
- **Pose**: roll from the eye line, yaw from the nose offset along it (see
  ``imagejury.judges.face_common.head_pose``; a rough geometric estimate, not calibrated against
  measured head angles). ICAO asks passport photos to be
  frontal; headshots tolerate more, so |roll| ≤ 15° and |yaw| ≤ 30°. Measured: astronaut
  roll 3°, yaw 4°; the astronaut rotated 20° reads roll 17°; people turned away in
  ``t1.jpg`` read yaw 46-49°.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image
from pydantic import Field
from scipy import ndimage

from imagejury.judges.base import JudgeConfig, confidence_from_margin
from imagejury.judges.face_common import (
    DEFAULT_MIN_FACE_SCORE,
    FaceJudge,
    analyze_cached,
    describe_analyzer,
    eye_aspect_ratio,
    fmt_box,
    head_pose,
    image_key,
    signed_score,
    split_weak,
)
from imagejury.judges.taxonomy import HEADSHOT_CHECK_ASPECT, canonical_task_type
from imagejury.judges.types import JudgeIssue, JudgeItem, JudgeResult, Measurement
from imagejury.models.interfaces import Face, FaceAnalyzer

log = logging.getLogger(__name__)

SHARPNESS_SIDE = 128  # face crops are resampled to this square before measuring
# what a rubric may say to switch a check off (item.directives.ignore holds the aspect
# names of taxonomy.ASPECTS: "ignore the blur" skips the face-sharpness check only)
IGNORE_ASPECTS: dict[str, str] = HEADSHOT_CHECK_ASPECT


class HeadshotConfig(JudgeConfig):
    """Bounds for each check; where they come from is in the module docstring."""

    min_face_height: float = Field(
        0.15, gt=0, lt=1, description="face box height / image height, lower bound (lenient; see module doc)"
    )
    max_face_height: float = Field(
        0.70, gt=0, le=1, description="face box height / image height, upper bound (passport head max 69%)"
    )
    center_x: tuple[float, float] = Field(
        (1 / 3, 2 / 3), description="face-centre x / width must lie in this range (the middle third)"
    )
    center_y: tuple[float, float] = Field((0.15, 0.65), description="face-centre y / height, from the top")
    secondary_area_fraction: float = Field(
        0.25,
        gt=0,
        le=1,
        description="another face with at least this fraction of the main face's area is a second subject (our choice)",
    )
    min_face_score: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_MIN_FACE_SCORE),
        description="per-backend detection-score floor below which a detection is not counted as another face",
    )
    min_sharpness: float = Field(
        4.0,
        gt=0,
        description="noise-corrected 1000·var(LoG σ1)/var(I) on the 128 px face crop; measured, see module doc",
    )
    min_eye_aspect_ratio: float = Field(
        0.2, gt=0, description="mean eye aspect ratio below this is eyes closed (Soukupová & Čech 2016)"
    )
    max_abs_roll: float = Field(15.0, gt=0, description="degrees; lenient against ICAO's frontal pose")
    max_abs_yaw: float = Field(30.0, gt=0, description="degrees; lenient against ICAO's frontal pose")


class HeadshotJudge(FaceJudge):
    name = "headshot"
    category = "composition"
    description = "one sharp, well-framed face with eyes open, facing the camera"
    default_weight = 2.0
    version = "1"
    requires = frozenset()
    Config = HeadshotConfig

    def applies(self, item: JudgeItem) -> bool:
        # aliases and case count: 'Headshot', 'portrait', 'profile-photo' (taxonomy.TASK_TYPES)
        return canonical_task_type(item.task_type) == "headshot" and super().applies(item)

    def judge(self, batch: Sequence[JudgeItem]) -> list[JudgeResult]:
        if not batch:
            return []
        analyzer = self._analyzer()
        faces = analyze_cached(analyzer, [(i.features, image_key(i.image, i.image_key), i.image) for i in batch])
        return [self._judge_one(item, analyzer, f) for item, f in zip(batch, faces)]

    # -- one item --------------------------------------------------------------------
    def _judge_one(self, item: JudgeItem, analyzer: FaceAnalyzer, faces: list[Face]) -> JudgeResult:
        cfg: HeadshotConfig = self.config  # type: ignore[assignment]
        backend = getattr(analyzer, "name", "")
        evidence = [f"backend {describe_analyzer(analyzer)}"]
        counted, weak = split_weak(faces, backend, cfg.min_face_score)
        if weak:
            evidence.append(
                f"ignored {len(weak)} weak detection(s): "
                + ", ".join(f"{fmt_box(f)} score {f.score:.2f}" for f in weak)
            )
        if not counted:
            detail = "no face found in the image"
            return self.result(
                passed=False,
                confidence=0.95,
                score=0.0,
                reasoning=detail,
                evidence=evidence,
                issues=[JudgeIssue("no_face", detail, severity=1.0)],
                measurements=[Measurement("faces_in_image", 0.0, 1.0, True, "faces detected", model=backend)],
                sub_point_results={"one_face": {"text": detail, "passed": False, "score": 0.0}},
                sub_points_evaluated=1,
            )
        ignored = {check for check, aspect in IGNORE_ASPECTS.items() if aspect in item.directives.ignore}
        face = counted[0]
        evidence.append(
            f"main face {fmt_box(face)} (score {face.score:.2f}) in a {item.image.width}x{item.image.height} image"
        )
        checks: list[tuple[str, dict[str, Any], JudgeIssue | None, float, list[Measurement]]] = []
        skipped: list[str] = []
        for name, fn in (
            ("one_face", lambda: self._one_face(counted, cfg)),
            ("framing", lambda: self._framing(face, item.image, cfg)),
            ("sharpness", lambda: self._sharpness(face, item.image, cfg)),
            ("eyes_open", lambda: self._eyes(face, cfg)),
            ("pose", lambda: self._pose(face, cfg)),
        ):
            if name in ignored:
                skipped.append(f"{name} (ignored by the rubric)")
                continue
            out = fn()
            if out is None:
                skipped.append(f"{name} (no landmarks from this backend)")
                continue
            checks.append((name, *out))

        subs = {name: sp for name, sp, _, _, _ in checks}
        issues = [iss for _, _, iss, _, _ in checks if iss is not None]
        passed = not issues
        model = describe_analyzer(analyzer)
        measurements = [Measurement(**{**m.__dict__, "model": model}) for *_, ms in checks for m in ms]
        # a failure is as sure as its surest failing check; a pass only as sure as its closest call
        confs = [conf for _, _, _, conf, _ in checks]
        failing = [conf for _, _, iss, conf, _ in checks if iss is not None]
        confidence = max(failing) if failing else (min(confs) if confs else 0.5)
        score = min(sp["score"] for sp in subs.values()) if subs else None
        evidence += [sp["text"] for sp in subs.values()]
        parts = [f"{name}: {'ok' if sp['passed'] else 'FAILED'}" for name, sp in subs.items()]
        reasoning = ("headshot checks pass: " if passed else "headshot checks fail: ") + ", ".join(parts)
        if skipped:
            reasoning += "; not checked: " + ", ".join(skipped)
        return self.result(
            passed=passed,
            confidence=confidence,
            score=score,
            reasoning=reasoning,
            evidence=evidence,
            issues=issues,
            strengths=[sp["text"] for sp in subs.values() if sp["passed"]],
            sub_point_results=subs,
            sub_points_evaluated=len(subs),
            measurements=measurements,
            decision_rule="all",
        )

    # -- checks: each returns (sub-point, issue or None, confidence) ------------------
    @staticmethod
    def _one_face(faces: list[Face], cfg: HeadshotConfig) -> tuple[dict, JudgeIssue | None, float, list[Measurement]]:
        main = faces[0]
        rivals = [f for f in faces[1:] if main.area > 0 and f.area / main.area >= cfg.secondary_area_fraction]
        ratio = max((f.area / main.area for f in faces[1:]), default=0.0) if main.area > 0 else 0.0
        margin = cfg.secondary_area_fraction - ratio
        sp = {
            "text": (
                f"one dominant face ({len(faces) - 1} smaller face(s) below {cfg.secondary_area_fraction:.0%} of its area)"
                if not rivals
                else f"{len(rivals) + 1} comparable faces: {', '.join(fmt_box(f) for f in [main, *rivals])}"
            ),
            "passed": not rivals,
            "score": signed_score(margin, 0.25),
        }
        issue = None if not rivals else JudgeIssue("multiple_faces", str(sp["text"]), severity=1.0)
        m = Measurement(
            "largest_other_face_area", ratio, cfg.secondary_area_fraction, False, "fraction of the main face's area"
        )
        return sp, issue, confidence_from_margin(margin, 0.25), [m]

    @staticmethod
    def _framing(
        face: Face, image: Image.Image, cfg: HeadshotConfig
    ) -> tuple[dict, JudgeIssue | None, float, list[Measurement]]:
        w, h = image.size
        x1, y1, x2, y2 = face.box
        height = (y2 - y1) / h
        cx, cy = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h
        # signed margins: positive inside the bounds, in units of the image size
        margins = {
            "face height": min(height - cfg.min_face_height, cfg.max_face_height - height),
            "horizontal centre": min(cx - cfg.center_x[0], cfg.center_x[1] - cx),
            "vertical centre": min(cy - cfg.center_y[0], cfg.center_y[1] - cy),
        }
        bad = [k for k, m in margins.items() if m < 0]
        worst = min(margins.values())
        text = (
            f"face height {height:.0%} of the image (bounds {cfg.min_face_height:.0%}-{cfg.max_face_height:.0%}), "
            f"centre at ({cx:.0%}, {cy:.0%}) (x {cfg.center_x[0]:.0%}-{cfg.center_x[1]:.0%}, "
            f"y {cfg.center_y[0]:.0%}-{cfg.center_y[1]:.0%})"
        )
        sp = {"text": text, "passed": not bad, "score": signed_score(worst, 0.05)}
        issue = None
        if bad:
            issue = JudgeIssue("framing", f"out of bounds: {', '.join(bad)} — {text}", severity=0.7)
        measurements = [
            Measurement("face_height_min", height, cfg.min_face_height, True, "face height / image height"),
            Measurement("face_height_max", height, cfg.max_face_height, False, "face height / image height"),
            Measurement("centre_x_min", cx, cfg.center_x[0], True, "face centre x / image width"),
            Measurement("centre_x_max", cx, cfg.center_x[1], False, "face centre x / image width"),
            Measurement("centre_y_min", cy, cfg.center_y[0], True, "face centre y / image height, from the top"),
            Measurement("centre_y_max", cy, cfg.center_y[1], False, "face centre y / image height, from the top"),
        ]
        return sp, issue, confidence_from_margin(worst, 0.05), measurements

    @staticmethod
    def _sharpness(
        face: Face, image: Image.Image, cfg: HeadshotConfig
    ) -> tuple[dict, JudgeIssue | None, float, list[Measurement]]:
        value = face_sharpness(image, face.box)
        # judged on a log scale: blur divides the measure, it does not subtract from it
        margin = float(np.log2(max(value, 1e-6) / cfg.min_sharpness))
        sp = {
            "text": f"face sharpness {value:.1f} (minimum {cfg.min_sharpness:.1f})",
            "passed": value >= cfg.min_sharpness,
            "score": signed_score(margin, 1.0),
        }
        issue = None if sp["passed"] else JudgeIssue("blur", f"the face is blurred: {sp['text']}", severity=0.8)
        m = Measurement(
            "face_sharpness",
            value,
            cfg.min_sharpness,
            True,
            "noise-corrected 1000·var(LoG σ1)/var(I), 128 px face crop",
        )
        return sp, issue, confidence_from_margin(margin, 1.0), [m]

    @staticmethod
    def _eyes(face: Face, cfg: HeadshotConfig) -> tuple[dict, JudgeIssue | None, float, list[Measurement]] | None:
        lm = face.landmarks
        if lm is None or np.asarray(lm).shape[0] != 68:
            return None
        lm = np.asarray(lm)[:, :2]
        ears = [eye_aspect_ratio(lm[36:42]), eye_aspect_ratio(lm[42:48])]
        ear = float(np.nanmean(ears))
        margin = ear - cfg.min_eye_aspect_ratio
        sp = {
            "text": f"eye aspect ratio {ear:.2f} (eyes {ears[0]:.2f} / {ears[1]:.2f}; closed below {cfg.min_eye_aspect_ratio:.2f})",
            "passed": margin >= 0,
            "score": signed_score(margin, 0.05),
        }
        issue = None if sp["passed"] else JudgeIssue("eyes_closed", f"the eyes look closed: {sp['text']}", severity=0.8)
        m = Measurement("eye_aspect_ratio", ear, cfg.min_eye_aspect_ratio, True, "mean eye aspect ratio")
        return sp, issue, confidence_from_margin(margin, 0.05), [m]

    @staticmethod
    def _pose(face: Face, cfg: HeadshotConfig) -> tuple[dict, JudgeIssue | None, float, list[Measurement]] | None:
        pose = head_pose(face.keypoints)
        if pose is None:
            return None
        roll, yaw = pose
        margins = {"roll": cfg.max_abs_roll - abs(roll), "yaw": cfg.max_abs_yaw - abs(yaw)}
        worst = min(margins.values())
        bad = [k for k, m in margins.items() if m < 0]
        text = f"head roll {roll:+.0f}° (max ±{cfg.max_abs_roll:.0f}°), yaw {yaw:+.0f}° (max ±{cfg.max_abs_yaw:.0f}°)"
        sp = {"text": text, "passed": not bad, "score": signed_score(worst, 10.0)}
        issue = (
            None
            if not bad
            else JudgeIssue("pose", f"head turned or tilted too far ({', '.join(bad)}): {text}", severity=0.6)
        )
        measurements = [
            Measurement("abs_roll", abs(roll), cfg.max_abs_roll, False, "degrees"),
            Measurement("abs_yaw", abs(yaw), cfg.max_abs_yaw, False, "degrees"),
        ]
        return sp, issue, confidence_from_margin(worst, 10.0), measurements


def face_sharpness(image: Image.Image, box: tuple[float, float, float, float]) -> float:
    """Noise-corrected ``1000 · var(LoG σ=1) / var(intensity)`` on the face crop at 128 px.

    Scale- and contrast-normalised so faces of any size and lighting share one threshold.
    Pixel noise would otherwise read as detail, so its share is subtracted: the noise
    level is estimated on the native crop (median absolute Haar HH coefficient / 0.6745,
    Donoho & Johnstone 1994, robust to edges) and the response of this exact pipeline to
    unit white noise of the same crop size is removed from both variances.
    """
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, y1 = max(0, x1), max(0, y1)
    x2, y2 = min(image.width, x2), min(image.height, y2)
    if x2 - x1 < 4 or y2 - y1 < 4:
        return 0.0
    native = np.asarray(image.convert("L").crop((x1, y1, x2, y2)), dtype=np.float64)
    g = _resample(native)
    signal_var = float(g.var())
    if signal_var < 1e-6:
        return 0.0
    log_var = float(ndimage.gaussian_laplace(g, 1.0).var())
    sigma = _noise_sigma(native)
    if sigma > 0:
        unit = _resample(np.random.default_rng(0).normal(0.0, 1.0, native.shape))
        log_var = max(0.0, log_var - sigma**2 * float(ndimage.gaussian_laplace(unit, 1.0).var()))
        signal_var = max(signal_var - sigma**2 * float(unit.var()), 1e-6)
    return 1000.0 * log_var / signal_var


def _resample(arr: np.ndarray) -> np.ndarray:
    im = Image.fromarray(arr.astype(np.float32), mode="F")
    upscale = im.width < SHARPNESS_SIDE or im.height < SHARPNESS_SIDE
    im = im.resize((SHARPNESS_SIDE, SHARPNESS_SIDE), Image.Resampling.BICUBIC if upscale else Image.Resampling.LANCZOS)
    return np.asarray(im, dtype=np.float64)


def _noise_sigma(g: np.ndarray) -> float:
    """Gaussian noise sigma from the finest Haar diagonal band (MAD / 0.6745)."""
    h, w = (g.shape[0] // 2) * 2, (g.shape[1] // 2) * 2
    if h < 2 or w < 2:
        return 0.0
    g = g[:h, :w]
    hh = (g[0::2, 0::2] - g[0::2, 1::2] - g[1::2, 0::2] + g[1::2, 1::2]) / 2.0
    return float(np.median(np.abs(hh)) / 0.6745)
