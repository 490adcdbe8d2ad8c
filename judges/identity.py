"""Identity: is the face in the image the person in the identity references?

Faces are detected in every identity reference (kinds ``identity`` / ``face`` /
``person``) and in the generated image through the shared feature cache, so each image
is analysed once per backend. The judge passes when the best generated-face/reference
similarity is on the same-person side of the backend's documented threshold (dlib:
distance 0.6; insightface: cosine 0.4 — see the backends). No face in the image is a
gate failure: identity cannot be checked, so the evaluation fails outright.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from pydantic import Field

from imagejury.judges.base import JudgeConfig, confidence_from_margin
from imagejury.judges.face_common import (
    DEFAULT_MIN_FACE_SCORE,
    FaceJudge,
    analyze_cached,
    describe_analyzer,
    face_vector,
    fmt_box,
    image_key,
    split_weak,
)
from imagejury.judges.features import FeatureCache
from imagejury.judges.types import GateFailure, JudgeIssue, JudgeItem, JudgeResult, Measurement
from imagejury.models.interfaces import Face, FaceAnalyzer

log = logging.getLogger(__name__)


class IdentityConfig(JudgeConfig):
    threshold: float | None = Field(
        default=None,
        description=(
            "same-person similarity threshold on the backend's own scale (higher is more alike); "
            "None uses the backend's documented value (dlib: 0.4 = 1 - distance 0.6; insightface: cosine 0.4)"
        ),
    )
    confidence_scale: float = Field(
        default=0.15,
        gt=0,
        description=(
            "similarity margin at which confidence reaches ~0.88. dlib measurements (FINDINGS.md): the same "
            "face under flip/rescale/JPEG sits 0.06-0.34 in distance, different people 0.61-0.90, so most "
            "decisions are 0.15+ from the 0.6 threshold"
        ),
    )
    min_face_score: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_MIN_FACE_SCORE),
        description="per-backend detection-score floor below which a detection does not count as another face",
    )
    uncertainty_band: dict[str, float] = Field(
        default_factory=lambda: dict(UNCERTAINTY_BAND),
        description=(
            "per-backend half-width of the band around the threshold, in similarity units, inside which a "
            "pass is borderline (a critical identity passing inside it goes to manual_review). dlib: 0.04 — on "
            "520 labeled pairs (deepface's test photos) both errors lie within 0.04 of the 0.6 distance "
            "threshold. Backends without a measured band have none"
        ),
    )


#: measured bands (see IdentityConfig.uncertainty_band); a backend not listed has no band
UNCERTAINTY_BAND: dict[str, float] = {"dlib": 0.04}
BAND_SOURCE: dict[str, str] = {
    "dlib": "on 520 labeled face pairs (deepface's test photos) both errors lie within 0.04 of the 0.6 distance threshold",
}


@dataclass
class _RefFaces:
    index: int
    faces: list[Face]
    weak: list[Face]
    note: str = ""
    face: Face | None = None  # the face used, if any


@dataclass
class _Match:
    face: Face
    sims: list[float] = field(default_factory=list)  # per usable reference

    @property
    def best(self) -> float:
        return max(self.sims)

    @property
    def mean(self) -> float:
        return float(np.mean(self.sims))


class IdentityJudge(FaceJudge):
    name = "identity"
    category = "identity"
    description = "the face in the image is the person in the identity reference(s)"
    default_weight = 2.0
    version = "1"
    requires = frozenset({"identity_reference"})
    is_gate = True
    Config = IdentityConfig

    def judge(self, batch: Sequence[JudgeItem]) -> list[JudgeResult]:
        if not batch:
            return []
        analyzer = self._analyzer()
        requests: list[tuple[FeatureCache, str, Image.Image]] = []
        spans: list[tuple[int, int]] = []
        for item in batch:
            start = len(requests)
            requests.append((item.features, image_key(item.image, item.image_key), item.image))
            for ref in item.identity_references:
                requests.append((item.features, image_key(ref.image, ref.key), ref.image))
            spans.append((start, len(requests)))
        faces = analyze_cached(analyzer, requests)
        return [self._judge_one(item, analyzer, faces[a], faces[a + 1 : b]) for item, (a, b) in zip(batch, spans)]

    # -- one item --------------------------------------------------------------------
    def _judge_one(
        self, item: JudgeItem, analyzer: FaceAnalyzer, gen_faces: list[Face], ref_faces: list[list[Face]]
    ) -> JudgeResult:
        cfg: IdentityConfig = self.config  # type: ignore[assignment]
        threshold = cfg.threshold if cfg.threshold is not None else float(analyzer.same_person_threshold)
        source = "config override" if cfg.threshold is not None else analyzer.threshold_source
        backend = getattr(analyzer, "name", "")
        evidence = [f"backend {describe_analyzer(analyzer)}; same-person threshold {threshold:.3f} ({source})"]
        issues: list[JudgeIssue] = []
        notes: list[str] = []

        if not item.identity_references:
            return self.result(
                passed=True,
                confidence=0.5,
                reasoning="not applicable: the item has no identity reference",
                threshold=threshold,
                evidence=evidence,
            )

        # number references by their place in reference_images, not among identity references only
        positions = [n for n, r in enumerate(item.references) if any(r is i for i in item.identity_references)]
        refs = self._reference_faces(ref_faces, backend, cfg, positions)
        for r in refs:
            if r.note:
                notes.append(r.note)
                evidence.append(r.note)
        usable = [r for r in refs if r.face is not None]
        for r in refs:
            if r.face is None:
                # fatal when no reference is usable, a warning when others are
                issues.append(JudgeIssue("reference_no_face", r.note, severity=0.5 if usable else 1.0))
            elif len(r.faces) > 1:
                issues.append(JudgeIssue("reference_multiple_faces", r.note, severity=0.3))

        gen_counted, gen_weak = split_weak(gen_faces, backend, cfg.min_face_score)
        if gen_weak:
            evidence.append(
                f"ignored {len(gen_weak)} weak detection(s) in the image (score < {cfg.min_face_score.get(backend, 0.0)}): "
                + ", ".join(f"{fmt_box(f)} score {f.score:.2f}" for f in gen_weak)
            )
        gate_failures: list[GateFailure] = []
        if not gen_counted:
            reason = "no face found in the image, so identity cannot be checked"
            gate_failures.append(GateFailure(output_key="face", module="identity", reason=reason))
            issues.append(JudgeIssue("no_face", reason, severity=1.0))
            return self.result(
                passed=False,
                confidence=0.95,
                score=None,
                threshold=threshold,
                measurements=[Measurement("faces_in_image", 0.0, 1.0, True, "faces detected", model=backend)],
                reasoning=reason + ("; " + "; ".join(notes) if notes else ""),
                evidence=evidence,
                issues=issues,
                gate_failures=gate_failures,
                sub_point_results=self._sub_points(refs, None, threshold),
                sub_points_evaluated=len(refs),
            )
        if not usable:
            reason = "no identity reference has a usable face, so identity cannot be compared"
            return self.result(
                passed=False,
                confidence=0.5,
                score=None,
                threshold=threshold,
                measurements=[
                    Measurement("usable_references", 0.0, 1.0, True, "identity references with a face", model=backend)
                ],
                reasoning=reason + "; " + "; ".join(notes),
                evidence=evidence + [f"image faces: {', '.join(fmt_box(f) for f in gen_counted)}"],
                issues=issues,
                sub_point_results=self._sub_points(refs, None, threshold),
                sub_points_evaluated=len(refs),
            )

        matches = []
        for face in gen_counted:
            v = face_vector(face)
            matches.append(
                _Match(face, [float(analyzer.similarity(v, face_vector(r.face))) for r in usable if r.face is not None])
            )
        match = max(matches, key=lambda m: (m.best, m.mean))
        passed = match.best >= threshold
        margin = match.best - threshold
        confidence = confidence_from_margin(margin, cfg.confidence_scale)

        if len(gen_counted) > 1:
            detail = (
                f"{len(gen_counted)} faces in the image; compared the best-matching one at {fmt_box(match.face)} "
                f"(others: {', '.join(fmt_box(f) for f in gen_counted if f is not match.face)})"
            )
            issues.append(JudgeIssue("multiple_faces", detail, severity=0.5))
            notes.append(detail)
        best_ref = usable[int(np.argmax(match.sims))]
        for r, s in zip(usable, match.sims):
            evidence.append(
                f"similarity {s:.3f} vs threshold {threshold:.3f}: image face {fmt_box(match.face)} "
                f"vs reference {r.index + 1} face {fmt_box(r.face)}"  # type: ignore[arg-type]
            )
        if not passed:
            issues.append(
                JudgeIssue(
                    "identity_mismatch",
                    f"best similarity {match.best:.3f} is below the same-person threshold {threshold:.3f}",
                    severity=1.0,
                )
            )
        verdict = "the same person" if passed else "a different person"
        reasoning = (
            f"the face at {fmt_box(match.face)} looks like {verdict}: best similarity {match.best:.3f} "
            f"(reference {best_ref.index + 1}), mean {match.mean:.3f} over {len(usable)} usable reference(s), "
            f"threshold {threshold:.3f}"
        )
        if notes:
            reasoning += "; " + "; ".join(notes)
        measurements = self._measurements(match, usable, threshold, backend, describe_analyzer(analyzer))
        if measurements[0].borderline:
            reasoning += (
                f"; borderline: {match.best - threshold:+.3f} from the threshold, inside the ±"
                f"{measurements[0].band:g} band ({measurements[0].band_source})"
            )
        return self.result(
            passed=passed,
            confidence=confidence,
            measurements=measurements,
            decision_rule="all",
            score=round(match.best, 4),
            threshold=threshold,
            reasoning=reasoning,
            evidence=evidence,
            issues=issues,
            strengths=[f"identity matches the reference (similarity {match.best:.3f})"] if passed else [],
            sub_point_results=self._sub_points(refs, match, threshold),
            sub_points_evaluated=len(refs),
        )

    def _reference_faces(
        self, ref_faces: list[list[Face]], backend: str, cfg: IdentityConfig, positions: list[int]
    ) -> list[_RefFaces]:
        """``index`` is the reference's position in the request, so that "reference 3" is reference_images[2]."""
        out = []
        for i, faces in zip(positions, ref_faces):
            counted, weak = split_weak(faces, backend, cfg.min_face_score)
            r = _RefFaces(index=i, faces=counted, weak=weak)
            if not counted:
                r.note = f"reference {i + 1}: no face found, excluded"
            else:
                r.face = counted[0]
                if len(counted) > 1:
                    r.note = f"reference {i + 1}: {len(counted)} faces, used the largest at {fmt_box(r.face)}"
            out.append(r)
        return out

    def _measurements(
        self, match: _Match, usable: list[_RefFaces], threshold: float, backend: str, model: str
    ) -> list[Measurement]:
        """The decisive best similarity (the face must match at least one reference: a
        reference from an odd angle must not veto a good match), then each reference's
        similarity for information."""
        cfg: IdentityConfig = self.config  # type: ignore[assignment]
        units = f"similarity on the {backend or 'backend'} scale (dlib: 1 - euclidean distance of 128-d embeddings)"
        band = cfg.uncertainty_band.get(backend)
        best = Measurement(
            "best_similarity",
            match.best,
            threshold,
            True,
            units,
            model=model,
            band=band,
            band_source=BAND_SOURCE.get(backend, "configured") if band is not None else "",
        )
        per_ref = [
            Measurement(f"reference_{r.index + 1}_similarity", s, threshold, True, units, model=model, decisive=False)
            for r, s in zip(usable, match.sims)
        ]
        return [best, *per_ref]

    @staticmethod
    def _sub_points(refs: list[_RefFaces], match: _Match | None, threshold: float) -> dict:
        out: dict = {}
        usable = [r for r in refs if r.face is not None]
        for r in refs:
            key = f"reference_{r.index + 1}"
            if r.face is None or match is None:
                out[key] = {"text": r.note or f"reference {r.index + 1}: not compared", "passed": False, "score": None}
                continue
            s = match.sims[usable.index(r)]
            out[key] = {
                "text": f"reference {r.index + 1}: similarity {s:.3f} (threshold {threshold:.3f})",
                "passed": s >= threshold,
                "score": round(s, 4),
            }
        return out
