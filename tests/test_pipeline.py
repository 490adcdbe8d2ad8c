"""The pipeline's plumbing: planning, batching, skips, failures, shared features."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from imagejury.core.pipeline import Evaluator
from imagejury.errors import InvalidRequestError
from tests.support import pipeline_judges as pj


def _png(color: tuple[int, int, int], size: int = 32) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _evaluator(enabled, **kw) -> Evaluator:
    return Evaluator(pj.make_config(enabled, **kw), judges=pj.make_registry())


def _req(color=(220, 10, 10), **kw):
    return {"generated_image_url": _png(color), "task_type": "image_generation", **kw}


def test_one_image_forward_pass_per_image_for_all_judges():
    pj.EMBEDDER.image_rows = pj.EMBEDDER.calls = 0
    ev = _evaluator(["t_redness", "t_redness_twin"])
    out = ev.evaluate_many([_req((220, 10, 10)), _req((10, 10, 220)), _req((220, 10, 10))])
    assert [e.status for e in out] == ["completed"] * 3
    # two judges, three requests, two distinct images: two rows through the tower, in one call
    assert pj.EMBEDDER.image_rows == 2
    assert pj.EMBEDDER.calls == 1
    assert [e.overall_passed for e in out] == [True, False, True]


def test_judges_see_the_batch_once():
    pj.RednessJudge.calls.clear()
    ev = _evaluator(["t_redness"], batch_size=4)
    ev.evaluate_many([_req((i * 20, 0, 0)) for i in range(6)])
    assert pj.RednessJudge.calls == [4, 2]


def test_a_judge_that_does_not_apply_is_not_run_and_not_counted():
    ev = _evaluator(["t_redness", "t_prompt_only"])
    e = ev.evaluate(_req())
    assert [j.name for j in e.judges] == ["t_redness"]
    assert e.check_summary["not_applicable"] == ["t_prompt_only"]
    assert e.analysis_modules_executed == 1
    e2 = ev.evaluate(_req(generation_prompt="a red square"))
    assert {j.name for j in e2.judges} == {"t_redness", "t_prompt_only"}


def test_missing_model_fails_with_processing_failed_naming_it():
    ev = _evaluator(["t_redness", "t_missing_model"])
    e = ev.evaluate(_req())
    assert e.status == "failed" and e.failure_code == "processing_failed"
    assert "ViT-H-14:laion2b" in e.failure_message and "--allow-missing-models" in e.failure_message
    # not evaluated: no pass rate, no action — a dashboard must not read it as a 0% reject
    assert e.weighted_pass_rate is None and e.primary_action_code is None and e.action is None


def test_missing_model_allowed_is_skipped_and_listed():
    ev = _evaluator(["t_redness", "t_missing_model"], allow_missing=True)
    e = ev.evaluate(_req())
    assert e.status == "completed"
    assert [s["judge"] for s in e.check_summary["skipped_checks"]] == ["t_missing_model"]
    assert any(t.startswith("check not run: t_missing_model") for t in e.top_issues)
    assert e.analysis_modules_executed == 1
    assert e.check_summary["incomplete"] is True
    assert e.check_summary["skipped_checks"][0]["model"] == "ViT-H-14:laion2b"
    assert e.check_summary["missing_models"][0]["judges"] == ["t_missing_model"]


def test_a_judge_crash_fails_only_the_item_that_caused_it():
    ev = _evaluator(["t_redness", "t_exploding"])
    out = ev.evaluate_many([_req(generation_prompt="fine"), _req(generation_prompt="explode"), _req()])
    assert [e.status for e in out] == ["completed", "failed", "completed"]
    assert out[1].failure_code == "processing_failed" and "t_exploding" in out[1].failure_message


def test_gate_fails_whatever_the_votes():
    ev = _evaluator(["t_redness", "t_gate"])
    e = ev.evaluate(_req(generation_prompt="gate"))
    assert not e.overall_passed
    assert e.gate_failures[0].module == "t_gate"
    assert e.action.primary_action == "reject"


def test_invalid_request_raises_typed_error_naming_the_field():
    ev = _evaluator(["t_redness"])
    with pytest.raises(InvalidRequestError, match="task_type"):
        ev.evaluate({"generated_image_url": _png((1, 2, 3)), "task_type": ""})
    with pytest.raises(InvalidRequestError, match="job_class"):
        ev.evaluate(_req(job_class="turbo"))


@pytest.mark.parametrize(
    "url, needle",
    [
        ("data:image/png;base64,not-base64!!", "base64"),
        ("data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n garbage").decode(), ""),
        ("/definitely/not/here.png", "not"),
    ],
)
def test_bad_media_is_a_failed_evaluation_not_a_traceback(url, needle):
    ev = _evaluator(["t_redness"])
    e = ev.evaluate({"generated_image_url": url, "task_type": "headshot"})
    assert e.status == "failed" and e.failure_code == "invalid_media"
    assert needle in e.failure_message
    assert e.to_api()["failure_code"] == "invalid_media"
    assert e.to_api()["weighted_pass_rate"] is None and e.to_api()["primary_action_code"] is None


def test_bad_reference_names_its_field():
    ev = _evaluator(["t_redness"])
    e = ev.evaluate(_req(reference_images=[{"url": "data:image/gif;base64,R0lGODlhAQABAAAAACw=", "kind": "garment"}]))
    assert e.failure_code == "invalid_media"
    assert "reference_images[0]" in e.failure_message


def test_warmup_problems_are_said_once_per_problem() -> None:
    from imagejury.core.pipeline import summarize_problems

    missing_l = "model 'ViT-L-14:openai' is not available: looked in ... To supply it: ..."
    missing_b = "model 'ViT-B-32:openai' is not available: looked in ... To supply it: ..."
    problems = {f"{j} (standard)": missing_l for j in ("safety", "aesthetics", "prompt_adherence")}
    problems |= {f"{j} (quick)": missing_b for j in ("safety", "prompt_adherence")}
    lines = summarize_problems(problems)
    assert lines == [
        f"{missing_l} [judges: safety (standard), aesthetics (standard), prompt_adherence (standard)]",
        f"{missing_b} [judges: safety (quick), prompt_adherence (quick)]",
    ]


def test_a_typo_in_task_type_or_kind_is_reported_and_refused_when_strict():
    req = _req(task_type="headsot", reference_images=[{"url": _png((1, 2, 3)), "kind": "identiy"}])
    e = _evaluator(["t_redness"]).evaluate(req)
    assert e.status == "completed"
    fields = [(i["field"], i["suggestion"]) for i in e.check_summary["input_issues"]]
    assert fields == [("task_type", "headshot"), ("reference_images[0].kind", "identity")]
    assert any("did you mean 'identity'?" in t for t in e.top_issues)
    strict = pj.make_config(["t_redness"])
    strict = strict.model_copy(update={"evaluation": strict.evaluation.model_copy(update={"strict": True})})
    with pytest.raises(InvalidRequestError, match="unknown task_type 'headsot'.*did you mean 'headshot'") as err:
        Evaluator(strict, judges=pj.make_registry()).evaluate(req)
    assert err.value.failure_code == "invalid_request" and "known task types" in err.value.detail
    # known values and aliases pass strict mode untouched
    ok = Evaluator(strict, judges=pj.make_registry()).evaluate(_req(task_type="Portrait"))
    assert ok.status == "completed" and ok.check_summary["input_issues"] == []
