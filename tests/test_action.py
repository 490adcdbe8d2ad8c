"""The action is deterministic and follows its documented rules."""

from __future__ import annotations

from imagejury.core.verdict.action import ACTION_CODES, decide_action
from imagejury.core.verdict.aggregate import aggregate
from imagejury.judges.types import GateFailure, JudgeIssue, JudgeResult


def r(name, passed, conf=0.9, issues=(), gates=(), critical=False, weight=1.0):
    return JudgeResult(
        name=name,
        category=name,
        passed=passed,
        confidence=conf,
        weight=weight,
        reasoning=name,
        issues=list(issues),
        gate_failures=list(gates),
        critical=critical,
    )


def act(results, prompt="a red hat on a table"):
    v = aggregate(results, pass_threshold=0.7)
    return decide_action(v, results, prompt)


def test_accept_when_confident_pass():
    a = act([r("prompt_adherence", True), r("technical_signals", True)])
    assert a.primary_action == "accept" and a.failure_summary is None and a.improved_prompt is None


def test_manual_review_when_low_confidence_pass():
    assert (
        act([r("prompt_adherence", True, 0.52), r("technical_signals", True, 0.55)]).primary_action == "manual_review"
    )


def test_reject_on_gate():
    a = act([r("safety", False, gates=[GateFailure("image", "safety", "nsfw")]), r("technical_signals", True)])
    assert a.primary_action == "reject"
    assert "safety" in a.failure_summary


def test_fix_identity():
    assert act([r("identity", False, critical=True), r("technical_signals", True)]).primary_action == "fix_identity"


def test_regenerate_with_prompt_names_the_missing_sub_point():
    a = act(
        [
            r("prompt_adherence", False, issues=[JudgeIssue("missing_element", "sub-point not found: 'a red hat'")]),
            r("technical_signals", True, weight=0.1),
        ]
    )
    assert a.primary_action == "regenerate_with_prompt"
    assert a.improved_prompt.startswith("a red hat on a table")
    # already in the prompt: not repeated
    a2 = act([r("prompt_adherence", False, issues=[JudgeIssue("missing_element", "x", target="a blue cup")])])
    assert "clearly showing a blue cup" in a2.improved_prompt


def test_prohibitions_become_avoid_clause():
    a = act([r("instructions", False, issues=[JudgeIssue("prohibited_element", "found", target="text or watermark")])])
    assert a.improved_prompt.endswith("Avoid: text or watermark.")


def test_enhance_quality_when_only_quality_failed():
    a = act(
        [
            r(
                "technical_quality",
                False,
                issues=[JudgeIssue("blur", "image is blurred"), JudgeIssue("noise", "noisy")],
            ),
            r("prompt_adherence", True, weight=0.1),
        ]
    )
    assert a.primary_action == "enhance_quality"
    assert "sharp focus" in a.improved_prompt and "noise-free" in a.improved_prompt


def test_codes_are_documented_set():
    cases = [
        [r("prompt_adherence", True)],
        [r("headshot", False, issues=[JudgeIssue("framing", "face too small")])],
    ]
    for c in cases:
        assert act(c).primary_action in ACTION_CODES
    assert act(cases[1]).primary_action == "regenerate"
    assert "centered head-and-shoulders" in act(cases[1]).improved_prompt


def test_deterministic():
    res = [r("prompt_adherence", False, issues=[JudgeIssue("missing_element", "sub-point not found: 'a cat'")])]
    assert act(res) == act(res)


def test_manual_review_when_a_gate_or_critical_check_could_not_run():
    from imagejury.core.verdict.aggregate import SkippedCheck

    results = [r("prompt_adherence", True), r("technical_signals", True)]
    v = aggregate(results, pass_threshold=0.7, skipped=[SkippedCheck("safety", "safety", "no CLIP", gate=True)])
    a = decide_action(v, results, "a hat")
    assert v.overall_passed and a.primary_action == "manual_review" and "safety" in a.failure_summary
    v2 = aggregate(
        results, pass_threshold=0.7, skipped=[SkippedCheck("identity", "identity", "no face model", critical=True)]
    )
    assert not v2.overall_passed and decide_action(v2, results, "a hat").primary_action == "manual_review"


def test_no_improved_prompt_for_an_unsafe_image():
    res = [
        r("safety", False, gates=[GateFailure("image", "safety", "nsfw")]),
        r("aesthetics", False, issues=[JudgeIssue("aesthetics", "dull")]),
    ]
    a = act(res)
    assert a.primary_action == "reject" and a.improved_prompt is None


def test_the_action_follows_what_failed_not_what_was_skipped():
    from imagejury.core.verdict.aggregate import SkippedCheck

    safety_skipped = [SkippedCheck("safety", "safety", "model ViT-L-14:openai not available", gate=True)]
    blank = [r("technical_signals", False, issues=[JudgeIssue("blank", "the image is blank")])]
    v = aggregate(blank, pass_threshold=0.7, skipped=safety_skipped)
    # a broken image gets the same advice whether or not safety ran
    assert decide_action(v, blank, "a hat").primary_action == "enhance_quality"
    assert act(blank).primary_action == "enhance_quality"
    framing = [r("headshot", False, issues=[JudgeIssue("framing", "face too small")])]
    v = aggregate(framing, pass_threshold=0.7, skipped=safety_skipped)
    assert decide_action(v, framing, "a hat").primary_action == "regenerate"


def test_enhance_quality_only_when_nothing_but_quality_failed():
    # a quality failure next to a framing failure is not fixed by upscaling: regenerate
    res = [
        r("technical_signals", False, issues=[JudgeIssue("blur", "blurred")]),
        r("headshot", False, issues=[JudgeIssue("framing", "face too small")]),
    ]
    assert act(res).primary_action == "regenerate"


def test_a_critical_pass_inside_its_uncertainty_band_goes_to_manual_review():
    from imagejury.judges.types import Measurement

    def identity(value):
        m = Measurement("similarity", value, 0.4, True, "1 - dlib distance", band=0.04, band_source="labeled pairs")
        res = r("identity", True, critical=True)
        res.measurements, res.decision_rule = [m], "all"
        return res

    close = [identity(0.42), r("technical_signals", True)]
    a = act(close)
    assert a.primary_action == "manual_review"
    assert "identity" in a.failure_summary and "±0.04" in a.failure_summary and "labeled pairs" in a.failure_summary
    assert act([identity(0.55), r("technical_signals", True)]).primary_action == "accept"
    # the same close call on a judge the preset does not mark critical is not escalated
    loose = identity(0.42)
    loose.critical = False
    assert act([loose, r("technical_signals", True)]).primary_action == "accept"
