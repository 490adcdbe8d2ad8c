"""The API schema: pinned to docs/api's examples, and every SPEC.md limit enforced by name."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from imagejury.core.schema import (
    ActionOut,
    Evaluation,
    EvaluationJudge,
    EvaluationRequest,
    FailureCode,
    GateFailureOut,
    JobClass,
    JudgeIssueOut,
    ReferenceImageIn,
    Source,
    Status,
    new_id,
    parse_request,
)
from imagejury.errors import InvalidMediaError, InvalidRequestError, UnsafeURLError

API_DOCS = Path(__file__).resolve().parents[1] / "docs" / "api"


def api_docs() -> Path:
    """The API this project mirrors, as the repository keeps it (docs/api)."""
    return API_DOCS


@pytest.fixture(scope="module")
def api_dir() -> Path:
    return api_docs()


@pytest.fixture(scope="module")
def example_response(api_dir: Path) -> dict[str, Any]:
    return json.loads((api_dir / "response.example.json").read_text())


@pytest.fixture(scope="module")
def example_request(api_dir: Path) -> dict[str, Any]:
    return json.loads((api_dir / "request.example.json").read_text())


def _full_evaluation() -> Evaluation:
    """An evaluation as the pipeline will build it, with every nested block present."""
    eid = new_id()
    judge_id = new_id()
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    judge = EvaluationJudge(
        id=judge_id,
        evaluation_id=eid,
        name="technical_signals",
        description="resolution, blankness, exposure, sharpness",
        category="technical",
        passed=False,
        confidence=0.8,
        weight=1.0,
        reasoning="image is blurry",
        evidence=["laplacian variance 12.0 < 60"],
        sub_point_results={"sharpness": False},
        sub_points_evaluated=1,
        created_at=now,
        issues=[
            JudgeIssueOut(
                evaluation_id=eid,
                evaluation_judge_id=judge_id,
                category="technical",
                subcategory="blur",
                detail="the image is soft",
                created_at=now,
            )
        ],
    )
    return Evaluation(
        id=eid,
        status=Status.completed,
        source=Source.api,
        job_class=JobClass.standard,
        failure_code=None,
        task_type="headshot",
        generated_image_url="https://images.example.com/a.png",
        reference_images=[{"url": "https://images.example.com/ref.png", "kind": "identity", "description": None}],
        overall_passed=False,
        weighted_pass_rate=0.5,
        override_reason="gate: no face",
        top_issues=["blur: the image is soft"],
        top_strengths=["framing"],
        check_summary={"technical": {"passed": 0, "failed": 1}},
        analysis_modules_executed=1,
        primary_action_code="regenerate",
        eval_duration_ms=12,
        created_at=now,
        updated_at=now,
        submitted_at=now,
        completed_at=now,
        cost="0.000",
        judges=[judge],
        gate_failures=[
            GateFailureOut(evaluation_id=eid, output_key="face", module="gates", reason="no face", created_at=now)
        ],
        action=ActionOut(
            evaluation_id=eid,
            primary_action="regenerate",
            failure_summary="blurry",
            improved_prompt="a sharp photo",
            created_at=now,
        ),
    )


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def _assert_keys(ours: dict[str, Any], theirs: dict[str, Any], where: str) -> None:
    missing = sorted(set(theirs) - set(ours))
    assert not missing, f"{where}: keys of the example response missing from ours: {missing}"
    for key, value in theirs.items():
        if value is not None and ours[key] is not None:
            assert _kind(ours[key]) == _kind(value), f"{where}.{key}: {_kind(ours[key])} vs {_kind(value)}"


# ---------------------------------------------------------------- snapshot
def test_evaluation_json_has_every_key_of_the_example_response(example_response: dict[str, Any]) -> None:
    ours = _full_evaluation().to_api()
    _assert_keys(ours, example_response, "top level")
    _assert_keys(ours["judges"][0], example_response["judges"][0], "judges[]")
    _assert_keys(ours["judges"][0]["issues"][0], example_response["judges"][0]["issues"][0], "judges[].issues[]")
    _assert_keys(ours["gate_failures"][0], example_response["gate_failures"][0], "gate_failures[]")
    _assert_keys(ours["action"], example_response["action"], "action")
    for extra in ("status", "source", "failure_code", "job_class"):
        assert extra in ours, extra
    assert ours["status"] == "completed" and ours["source"] == "api" and ours["job_class"] == "standard"


def test_a_pending_evaluation_still_has_every_key(example_response: dict[str, Any]) -> None:
    request = parse_request({"generated_image_url": "https://images.example.com/a.png", "task_type": "headshot"})
    ours = Evaluation.from_request(request).to_api()
    assert not sorted(set(example_response) - set(ours))
    assert ours["status"] == "pending" and ours["judges"] == [] and ours["action"] is None


def test_timestamps_and_ids_serialise_like_the_example(example_response: dict[str, Any]) -> None:
    ours = _full_evaluation().to_api()
    assert example_response["created_at"].endswith("Z")
    for key in ("created_at", "updated_at", "submitted_at", "completed_at"):
        assert ours[key].endswith("Z"), ours[key]
        datetime.fromisoformat(ours[key].replace("Z", "+00:00"))
    assert ours["judges"][0]["issues"][0]["created_at"] == "2026-01-02T03:04:05Z"
    for key in ("id",):
        uuid.UUID(ours[key])
    assert ours["judges"][0]["evaluation_id"] == ours["id"]
    json.dumps(ours)  # plain JSON types only


def test_round_trip_through_json() -> None:
    original = _full_evaluation()
    again = Evaluation.model_validate(json.loads(json.dumps(original.to_api())))
    assert again == original


def test_naive_and_non_utc_timestamps_become_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    ev = Evaluation(
        task_type="t",
        generated_image_url="u",
        created_at=datetime(2026, 1, 1, 12, 0, 0, tzinfo=plus2),
        updated_at=datetime(2026, 1, 1, 12, 0, 0),
    )
    data = ev.to_api()
    assert data["created_at"] == "2026-01-01T10:00:00Z"
    assert data["updated_at"] == "2026-01-01T12:00:00Z"


def test_embed_selects_nested_blocks() -> None:
    ev = _full_evaluation()
    everything = ev.to_api()
    assert everything["judges"] and everything["action"] and everything["gate_failures"]
    none = ev.to_api(embed=[])
    assert none["judges"] is None and none["action"] is None and none["gate_failures"] is None
    only = ev.to_api(embed={"judges"})
    assert only["judges"] == everything["judges"] and only["action"] is None and only["gate_failures"] is None
    assert ev.to_api(embed=["action", " gate_failures"])["action"] == everything["action"]
    from_query = ev.to_api(embed="judges,action")
    assert from_query["judges"] == everything["judges"] and from_query["gate_failures"] is None
    with pytest.raises(ValueError, match="embed"):
        ev.to_api(embed=["judgez"])


# ---------------------------------------------------------------- request example and limits
def _fill_placeholders(request: dict[str, Any]) -> dict[str, Any]:
    filled = copy.deepcopy(request)
    values = {
        "generated_image_url": "https://images.example.com/generated.png",
        "task_type": "headshot",
        "callback_url": "https://hooks.example.com/imagejury",
        "url": "https://images.example.com/reference.png",
        "kind": "identity",
    }

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: (values.get(k, f"a {k}") if v == "<string>" else walk(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(filled)


def test_the_example_request_validates(example_request: dict[str, Any]) -> None:
    body = _fill_placeholders(example_request)
    assert set(body) == set(EvaluationRequest.model_fields), "our request fields differ from the example's"
    req = parse_request(body)
    assert req.job_class is JobClass.standard
    assert req.run_id == uuid.UUID("3c90c3cc-0d44-4b50-8888-8dd25736052a")
    assert req.reference_images[0].kind == "identity"
    # and as raw JSON, as the server receives it
    assert parse_request(json.dumps(body).encode()) == req


def test_the_example_request_unfilled_is_refused_for_its_callback(example_request: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError, match="callback_url"):
        parse_request(example_request)


def _base(**extra: Any) -> dict[str, Any]:
    return {"generated_image_url": "https://images.example.com/a.png", "task_type": "headshot", **extra}


LIMITS = [
    ("generated_image_url", 12_000_000),
    ("task_type", 100),
    ("task_description", 4_000),
    ("generation_prompt", 10_000),
    ("evaluation_instructions", 4_000),
    ("client_ref", 255),
]


@pytest.mark.parametrize(("field", "limit"), LIMITS)
def test_each_text_limit_is_enforced_and_named(field: str, limit: int) -> None:
    assert getattr(parse_request(_base(**{field: "a" * limit})), field) == "a" * limit
    with pytest.raises(InvalidRequestError) as err:
        parse_request(_base(**{field: "a" * (limit + 1)}))
    assert err.value.detail.startswith(f"{field}:"), err.value.detail
    assert str(limit) in err.value.detail
    assert err.value.failure_code == "invalid_request"
    assert err.value.errors[0]["loc"] == [field]


def test_callback_url_length_is_enforced_and_named() -> None:
    url = "https://hooks.example.com/" + "a" * (2048 - 26)
    assert parse_request(_base(callback_url=url)).callback_url == url
    with pytest.raises(InvalidRequestError, match=r"^callback_url: .*2048"):
        parse_request(_base(callback_url=url + "a"))


@pytest.mark.parametrize(
    "body",
    [
        {"task_type": "headshot"},
        {"generated_image_url": "https://x.example/a.png"},
        _base(generated_image_url=""),
        _base(task_type=""),
        _base(task_type="   "),
    ],
)
def test_required_fields(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError, match=r"^(generated_image_url|task_type): "):
        parse_request(body)


def test_task_type_is_stripped() -> None:
    assert parse_request(_base(task_type="  headshot ")).task_type == "headshot"


def test_at_most_four_reference_images() -> None:
    ref = {"url": "https://images.example.com/r.png", "kind": "identity"}
    assert len(parse_request(_base(reference_images=[ref] * 4)).reference_images) == 4
    with pytest.raises(InvalidRequestError, match=r"^reference_images: .*at most 4"):
        parse_request(_base(reference_images=[ref] * 5))


def test_reference_image_fields() -> None:
    req = parse_request(_base(reference_images=[{"url": "https://x.example/r.png"}, {"url": "u", "kind": " Garment "}]))
    assert [r.kind for r in req.reference_images] == ["identity", "garment"]
    for bad, where in (
        ({"kind": "identity"}, "reference_images.0.url"),
        ({"url": "u", "kind": "k" * 51}, "reference_images.0.kind"),
        ({"url": "u", "kind": " "}, "reference_images.0.kind"),
        ({"url": "u", "description": "d" * 4001}, "reference_images.0.description"),
        ({"url": "u", "weight": 2}, "reference_images.0.weight"),
    ):
        with pytest.raises(InvalidRequestError) as err:
            parse_request(_base(reference_images=[bad]))
        assert err.value.detail.startswith(where + ":"), err.value.detail


def test_job_class_enum_and_length() -> None:
    assert parse_request(_base()).job_class is JobClass.standard
    assert parse_request(_base(job_class="quick")).job_class is JobClass.quick
    with pytest.raises(InvalidRequestError, match=r"^job_class: .*'standard' or 'quick'"):
        parse_request(_base(job_class="slow"))
    with pytest.raises(InvalidRequestError, match=r"^job_class: .*at most 50"):
        parse_request(_base(job_class="q" * 51))


def test_run_id_must_be_a_uuid() -> None:
    with pytest.raises(InvalidRequestError, match=r"^run_id: "):
        parse_request(_base(run_id="not-a-uuid"))


def test_unknown_fields_are_refused_by_name() -> None:
    with pytest.raises(InvalidRequestError, match=r"^generation_promt: unknown field"):
        parse_request(_base(generation_promt="a cat"))


def test_input_attributes_must_be_an_object_and_null_means_empty() -> None:
    assert (
        parse_request(_base(input_attributes={"style": "corporate", "width": 1024})).input_attributes["width"] == 1024
    )
    assert parse_request(_base(input_attributes=None, reference_images=None)).input_attributes == {}
    with pytest.raises(InvalidRequestError, match=r"^input_attributes: "):
        parse_request(_base(input_attributes=["style"]))


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/x",
        "ftp://hooks.example.com/x",
        "https://user:pw@hooks.example.com/x",
        "https://10.0.0.1/hook",
        "https://169.254.169.254/latest",
        "https://[::1]/hook",
        "https://localhost/hook",
        "http://127.0.0.1:8000/hook",
        "not a url",
    ],
)
def test_callback_url_must_be_public_https(url: str) -> None:
    with pytest.raises(InvalidRequestError, match=r"^callback_url: "):
        parse_request(_base(callback_url=url))


def test_loopback_callbacks_only_with_the_testing_flag() -> None:
    url = "http://127.0.0.1:8000/hook"
    assert parse_request(_base(callback_url=url), allow_loopback_callbacks=True).callback_url == url
    assert parse_request(_base(callback_url="http://localhost:9/h"), allow_loopback_callbacks=True).callback_url
    with pytest.raises(InvalidRequestError, match=r"^callback_url: "):  # the flag admits loopback only
        parse_request(_base(callback_url="http://10.0.0.1/hook"), allow_loopback_callbacks=True)


def test_invalid_json_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequestError):
        parse_request(b"{not json")


def test_the_model_itself_raises_validation_errors_for_the_server() -> None:
    with pytest.raises(ValidationError) as err:
        EvaluationRequest.model_validate(_base(task_type="a" * 101))
    assert err.value.errors()[0]["loc"] == ("task_type",)


# ---------------------------------------------------------------- response fields
@pytest.mark.parametrize("cost", ["0", "0.012", "12.50", "+1.5", "-0.5", ".5", "007", "5."])
def test_good_costs(cost: str) -> None:
    assert Evaluation(task_type="t", generated_image_url="u", cost=cost).cost == cost


@pytest.mark.parametrize("cost", ["", "abc", "1e5", "-", ".", "+.", "1.2.3", "<string>", "1,5", " 1"])
def test_bad_costs(cost: str) -> None:
    with pytest.raises(ValidationError, match="cost"):
        Evaluation(task_type="t", generated_image_url="u", cost=cost)


def test_cost_must_be_a_string() -> None:
    with pytest.raises(ValidationError, match="cost"):
        Evaluation(task_type="t", generated_image_url="u", cost=0.5)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", "done"),
        ("source", "web"),
        ("failure_code", "oops"),
        ("job_class", "fast"),
        ("id", "not-a-uuid"),
        ("run_id", "12"),
    ],
)
def test_enum_and_uuid_fields_refuse_bad_values(field: str, value: str) -> None:
    with pytest.raises(ValidationError, match=field):
        Evaluation(task_type="t", generated_image_url="u", **{field: value})


def test_enum_values_are_exactly_the_specs() -> None:
    assert [s.value for s in Status] == ["pending", "running", "completed", "failed"]
    assert [s.value for s in Source] == ["platform", "api"]
    # the spec's four codes, plus imagejury's invalid_request and fetch_failed (the network, not the input);
    # invalid_request: (batch rows that could not be read;
    # the service answers those with a 4xx and never stores them as evaluations)
    assert [f.value for f in FailureCode] == [
        "invalid_request",
        "invalid_media",
        "fetch_failed",
        "dispatch_failed",
        "processing_failed",
        "timed_out",
    ]
    assert [j.value for j in JobClass] == ["standard", "quick"]


def test_failed_evaluation_carries_code_and_message() -> None:
    ev = Evaluation(
        task_type="t",
        generated_image_url="u",
        status="failed",
        failure_code="invalid_media",
        failure_message="generated_image_url: GIF is not supported; use JPEG, PNG or WebP",
    )
    data = ev.to_api()
    assert data["status"] == "failed" and data["failure_code"] == "invalid_media"
    assert "GIF" in data["failure_message"]


def test_judge_numbers_are_bounded() -> None:
    eid = new_id()
    with pytest.raises(ValidationError, match="confidence"):
        EvaluationJudge(evaluation_id=eid, name="n", category="c", passed=True, confidence=1.5, weight=1, reasoning="r")
    with pytest.raises(ValidationError, match="weight"):
        EvaluationJudge(
            evaluation_id=eid, name="n", category="c", passed=True, confidence=0.5, weight=-1, reasoning="r"
        )
    with pytest.raises(ValidationError, match="weighted_pass_rate"):
        Evaluation(task_type="t", generated_image_url="u", weighted_pass_rate=1.2)


def test_output_models_refuse_misspelt_keys() -> None:
    with pytest.raises(ValidationError, match="overal_passed"):
        Evaluation(task_type="t", generated_image_url="u", overal_passed=True)


def test_from_request_echoes_the_request() -> None:
    req = parse_request(
        _base(
            generation_prompt="a portrait",
            client_ref="abc",
            run_id=str(uuid.UUID(int=7)),
            job_class="quick",
            reference_images=[{"url": "https://x.example/r.png", "kind": "identity", "description": "me"}],
        )
    )
    ev = Evaluation.from_request(req, source=Source.platform)
    assert ev.generation_prompt == "a portrait" and ev.client_ref == "abc" and ev.run_id == uuid.UUID(int=7)
    assert ev.job_class is JobClass.quick and ev.source is Source.platform and ev.status is Status.pending
    assert ev.reference_images == [{"url": "https://x.example/r.png", "kind": "identity", "description": "me"}]
    assert ev.submitted_at == ev.created_at


# ---------------------------------------------------------------- errors
def test_media_error_names_its_field() -> None:
    media = InvalidMediaError("GIF is not supported", "reference_images[0].url")
    assert media.failure_code == "invalid_media" and media.is_bad_input
    assert media.detail == "reference_images[0].url: GIF is not supported" == str(media)
    assert media.reason == "GIF is not supported" and media.field == "reference_images[0].url"
    assert isinstance(UnsafeURLError("no"), InvalidMediaError)


def test_reference_model_standalone() -> None:
    assert ReferenceImageIn(url="u").kind == "identity"


def test_the_request_schema_lists_the_known_task_types_and_kinds() -> None:
    from imagejury.judges.taxonomy import REFERENCE_KINDS, TASK_TYPES

    schema = EvaluationRequest.model_json_schema()
    task = schema["properties"]["task_type"]
    assert task["examples"] == list(TASK_TYPES) and "profile_photo" in task["description"]
    kind = schema["$defs"]["ReferenceImageIn"]["properties"]["kind"]
    assert kind["examples"] == list(REFERENCE_KINDS) and "face" in kind["description"]
