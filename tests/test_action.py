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
    # already in the prompt: stressed where it stands, not repeated
    assert a.improved_prompt == "a red hat in clear view on a table."
    a2 = act([r("prompt_adherence", False, issues=[JudgeIssue("missing_element", "x", target="a blue cup")])])
    assert a2.improved_prompt == "a red hat on a table, a blue cup."  # no "clearly showing" boilerplate


def test_improved_prompt_never_duplicates_a_phrase():
    issues = [
        JudgeIssue("missing_element", "x", target="a blue square"),
        JudgeIssue("wrong_attribute", "x", target="a blue square", instead="a red square"),
    ]
    a = act([r("prompt_adherence", False, issues=issues)], prompt="a blue square on a white table")
    assert a.improved_prompt.lower().count("a blue square") == 1, a.improved_prompt
    # the wrong attribute gets the strongest wording: what came out instead is to be avoided
    assert a.improved_prompt.endswith("Avoid: a red square.")


def test_a_wrong_style_attribute_reads_as_prompt_words():
    issue = JudgeIssue("attribute_mismatch", "x", target="a corporate stock photo", instead="a cartoon")
    a = act([r("attributes", False, issues=[issue])], prompt="a team meeting in an office")
    assert a.improved_prompt == "a team meeting in an office, a corporate stock photo. Avoid: a cartoon."
    assert "clearly showing" not in a.improved_prompt


def test_no_fragment_when_there_is_no_prompt():
    blurred = [r("technical_signals", False, issues=[JudgeIssue("blur", "blurred")])]
    assert act(blurred, prompt=None).improved_prompt is None
    asked = [r("attributes", False, issues=[JudgeIssue("attribute_mismatch", "x", target="a red circle")])]
    assert act(asked, prompt=None).improved_prompt == "a red circle."


def test_quality_hints_never_contradict_the_request():
    clipped = [r("technical_signals", False, issues=[JudgeIssue("exposure", "81% blown-out highlights")])]
    on_white = act(clipped, prompt="a blue mug on a white seamless background, product photo")
    assert on_white.improved_prompt is None or "exposure" not in on_white.improved_prompt
    assert "balanced exposure" in act(clipped, prompt="a blue mug on a wooden table").improved_prompt
    grainy = [r("technical_quality", False, issues=[JudgeIssue("noise", "noisy")])]
    assert act(grainy, prompt="a street at dusk, 35mm film grain").improved_prompt is None
    # the rubric and attributes are part of the request too
    v = aggregate(clipped, pass_threshold=0.7)
    a = decide_action(v, clipped, "a blue mug", also_asked="the background must be pure white")
    assert a.improved_prompt is None


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
    assert a.improved_prompt == "a red hat on a table, sharp focus, clean, noise-free."


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
