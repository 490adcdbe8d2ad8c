"""The verdict is a pure function: property-based checks of its rules."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from imagejury.core.verdict.aggregate import SkippedCheck, aggregate
from imagejury.judges.types import GateFailure, JudgeIssue, JudgeResult


def _result(
    name: str, passed: bool, weight: float, conf: float = 0.9, critical: bool = False, gate: bool = False
) -> JudgeResult:
    return JudgeResult(
        name=name,
        category="c-" + name[:1],
        passed=passed,
        confidence=conf,
        weight=weight,
        reasoning=f"{name} {'ok' if passed else 'bad'}",
        issues=[] if passed else [JudgeIssue("x", f"{name} problem")],
        gate_failures=[GateFailure("image", name, "unsafe")] if gate else [],
        critical=critical,
    )


results_strategy = st.lists(
    st.tuples(st.booleans(), st.floats(0.01, 10), st.floats(0.5, 1.0), st.booleans()),
    min_size=1,
    max_size=8,
).map(lambda rows: [_result(f"j{i}", p, w, c, crit) for i, (p, w, c, crit) in enumerate(rows)])


@given(results_strategy, st.floats(0.0, 1.0))
@settings(max_examples=200, deadline=None)
def test_rate_is_weight_of_passed_over_weight_of_run(results, threshold):
    v = aggregate(results, pass_threshold=threshold)
    total = sum(r.weight for r in results)
    passed = sum(r.weight for r in results if r.passed)
    assert abs(v.weighted_pass_rate - passed / total) < 1e-3
    assert 0.0 <= v.weighted_pass_rate <= 1.0
    assert v.analysis_modules_executed == len(results)


@given(results_strategy, st.floats(0.0, 1.0))
@settings(max_examples=200, deadline=None)
def test_pass_needs_rate_no_gate_and_no_critical_failure(results, threshold):
    v = aggregate(results, pass_threshold=threshold)
    critical_failed = any(r.critical and not r.passed for r in results)
    assert v.overall_passed == (v.weighted_pass_rate >= threshold and not critical_failed)
    if critical_failed:
        assert v.override_reason and "critical" in v.override_reason


@given(results_strategy, st.floats(0.0, 1.0))
@settings(max_examples=100, deadline=None)
def test_a_gate_failure_always_fails(results, threshold):
    gated = results + [_result("safety", True, 1.0, gate=True)]
    v = aggregate(gated, pass_threshold=threshold)
    assert not v.overall_passed
    assert v.override_reason.startswith("gate failed")
    assert v.top_issues[0].startswith("safety:")


@given(results_strategy, st.floats(0.0, 1.0))
@settings(max_examples=100, deadline=None)
def test_a_judge_that_did_not_apply_leaves_the_rest_renormalised(results, threshold):
    """Dropping a judge is the same as never having had it: the rate over the others."""
    v_all = aggregate(results, pass_threshold=threshold)
    if len(results) > 1:
        v_less = aggregate(results[1:], pass_threshold=threshold)
        total = sum(r.weight for r in results[1:])
        assert abs(v_less.weighted_pass_rate - sum(r.weight for r in results[1:] if r.passed) / total) < 1e-3
    assert v_all.check_summary["executed"] == len(results)


@given(st.permutations([_result("a", False, 3.0, 0.9), _result("b", False, 1.0, 0.9), _result("c", False, 1.0, 0.55)]))
def test_top_issues_ranked_by_weight_times_confidence(perm):
    v = aggregate(perm, pass_threshold=0.5)
    assert [t.split(":")[0] for t in v.top_issues] == ["a", "b", "c"]


def test_skipped_checks_are_listed_never_silent():
    v = aggregate(
        [_result("a", True, 1.0)],
        pass_threshold=0.5,
        skipped=[SkippedCheck("prompt_adherence", "prompt_adherence", "model not available: ViT-L-14")],
    )
    assert v.check_summary["skipped"] == 1
    assert v.check_summary["skipped_checks"][0]["judge"] == "prompt_adherence"
    assert any("prompt_adherence" in t and "not run" in t for t in v.top_issues)
    assert v.overall_passed  # skipping is reported, the remaining weights decide


def test_no_judges_means_no_pass():
    v = aggregate([], pass_threshold=0.0)
    assert not v.overall_passed
    assert v.override_reason == "no check could run"


def test_strengths_come_from_confident_passes():
    v = aggregate([_result("a", True, 1.0, 0.95), _result("b", True, 1.0, 0.55)], pass_threshold=0.5)
    assert v.top_strengths == ["a: a ok"]


def test_a_skipped_critical_check_cannot_pass():
    v = aggregate(
        [_result("headshot", True, 2.0)],
        pass_threshold=0.5,
        skipped=[SkippedCheck("identity", "identity", "model 'insightface' is not available here", critical=True)],
    )
    assert not v.overall_passed
    assert v.override_reason.startswith("critical check could not run: identity")
    assert v.check_summary["critical_skipped"] == ["identity"]


def test_check_summary_states_incompleteness_in_a_stable_shape():
    how = "model 'ViT-L-14:openai' is not available: looked in X. To supply it: Y"
    skipped = [
        SkippedCheck(
            "safety", "safety", "model ViT-L-14:openai not available", how, gate=True, model="ViT-L-14:openai"
        ),
        SkippedCheck(
            "prompt_adherence", "prompt_adherence", "model ViT-L-14:openai not available", how, model="ViT-L-14:openai"
        ),
    ]
    v = aggregate([_result("technical_signals", True, 1.0)], pass_threshold=0.7, skipped=skipped)
    cs = v.check_summary
    assert cs["incomplete"] is True
    assert [set(s) for s in cs["skipped_checks"]] == [{"judge", "reason", "detail", "model"}] * 2
    assert [s["model"] for s in cs["skipped_checks"]] == ["ViT-L-14:openai"] * 2
    # the how-to once per model, not once per judge
    assert cs["missing_models"] == [
        {"model": "ViT-L-14:openai", "judges": ["safety", "prompt_adherence"], "how_to": how}
    ]
    assert sum(how in s["detail"] for s in cs["skipped_checks"]) == 0
    assert [t for t in v.top_issues if t.startswith("check not run")] == [
        "check not run: safety and prompt_adherence — model ViT-L-14:openai not available"
    ]
    complete = aggregate([_result("technical_signals", True, 1.0)], pass_threshold=0.7)
    assert complete.check_summary["incomplete"] is False
