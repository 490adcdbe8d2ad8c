"""A calibrated config changes live votes the way ``imagejury rescore`` changes stored ones:
the judge's recorded measurements are re-decided under the overridden thresholds."""

from __future__ import annotations

from imagejury.judges.calibration import recalibrate
from imagejury.judges.types import JudgeResult, Measurement


def _result(value: float, *, passed: bool, confidence: float = 0.8) -> JudgeResult:
    m = Measurement("distance", value, 0.6, higher_is_better=False, units="euclidean", model="dlib")
    return JudgeResult(
        name="identity",
        category="identity",
        passed=passed,
        confidence=confidence,
        weight=3.0,
        reasoning="same person",
        measurements=[m],
        decision_rule="all",
    )


def _table(table: dict):
    def lookup(name: str, default: float, model: str) -> float:
        entry = table.get(name, default)
        return float(entry.get(model, entry.get("*", default))) if isinstance(entry, dict) else float(entry)

    return lookup


def test_a_stricter_calibrated_threshold_flips_the_vote_and_says_why() -> None:
    res = recalibrate(_result(0.5, passed=True), _table({"distance": {"dlib": 0.45}}))
    assert res.passed is False
    assert res.measurements[0].threshold == 0.45 and res.measurements[0].passed is False
    assert "calibrated thresholds (distance 0.45): failed" in res.reasoning
    assert [i.subcategory for i in res.issues] == ["calibrated_threshold"]


def test_a_looser_threshold_passes_and_a_gate_drops_its_failure() -> None:
    from imagejury.judges.types import GateFailure

    res = _result(0.65, passed=False)
    res.gate_failures = [GateFailure("image", "identity", "too far")]
    res = recalibrate(res, _table({"distance": 0.7}), is_gate=True)
    assert res.passed is True and res.gate_failures == []


def test_a_failing_gate_gains_its_gate_failure() -> None:
    res = recalibrate(_result(0.5, passed=True), _table({"distance": 0.4}), is_gate=True)
    assert res.passed is False and [g.module for g in res.gate_failures] == ["identity"]


def test_other_models_and_unnamed_measurements_are_left_alone() -> None:
    before = _result(0.5, passed=True)
    res = recalibrate(before, _table({"distance": {"insightface": 0.2}}))
    assert res.passed is True and res.measurements[0].threshold == 0.6 and res.issues == []
    assert recalibrate(_result(0.5, passed=True), _table({"other": 0.1})).passed is True


def test_confidence_follows_the_new_margin() -> None:
    res = recalibrate(_result(0.5, passed=True, confidence=0.8), _table({"distance": 0.55}))
    assert res.passed is True and res.confidence < 0.8  # margin 0.1 -> 0.05


def test_a_calibrated_config_changes_a_live_identity_vote() -> None:
    """Through the real pipeline and dlib: the same pair passes identity by default and fails
    under a calibrated threshold no real pair reaches."""
    from pathlib import Path

    from imagejury import Evaluator, EvaluatorConfig

    ex = Path(__file__).resolve().parents[1] / "examples"
    request = {
        "generated_image_url": str(ex / "astronaut_headshot.jpg"),
        "task_type": "headshot",
        "reference_images": [{"url": str(ex / "astronaut_reference.jpg"), "kind": "identity"}],
    }
    off = {n: {"enabled": False} for n in ("aesthetics", "safety", "prompt_adherence", "instructions", "attributes")}

    def identity(calibration: dict) -> object:
        judges = {**off, "identity": {"calibration": calibration}} if calibration else off
        config = EvaluatorConfig.model_validate({"judges": judges})
        ev = Evaluator(config).evaluate(request)
        return next(j for j in ev.judges if j.name == "identity")

    default = identity({})
    assert default.passed is True
    strict = identity({"best_similarity": 0.9999})
    assert strict.passed is False
    best = next(m for m in strict.measurements if m.name == "best_similarity")
    assert best.threshold == 0.9999 and "calibrated thresholds" in strict.reasoning


def test_a_measurement_survives_the_api_json_with_every_field() -> None:
    """The API object and rescore share one conversion: band and its source included."""
    m = Measurement("best_similarity", 0.61, 0.6, True, "cosine", model="dlib", band=0.04, band_source="520 pairs")
    out = m.as_json()
    assert out["band_source"] == "520 pairs" and out["borderline"] is True and out["margin"] == 0.01
    assert Measurement.from_json(out) == m
    assert Measurement.from_json(m.with_threshold(0.7).as_json()).band_source == "520 pairs"
