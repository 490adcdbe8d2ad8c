"""Regressions for cases found by exercising imagejury the way a new user would.

Each test names the defect it guards against: bad flags that were only noticed when a
model loaded (or crashed with a traceback), references numbered within a judge's own
subset instead of by their place in ``reference_images``, judge order that depended on
what else shared an ``evaluate_many`` batch, an ``improved_prompt`` longer than the
request limit (so it could not be sent back), ``--attr x=NaN`` turning into a NaN, and
unsupported image files dropped from a batch directory without a word.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagejury.batch.manifest import iter_image_files, open_manifest, parse_scalar
from imagejury.cli import EXIT_INVALID, main
from imagejury.core.config import EvaluatorConfig
from imagejury.core.pipeline import Evaluator
from imagejury.core.schema import GENERATION_PROMPT_MAX, EvaluationRequest
from imagejury.core.verdict.action import _improved_prompt, decide_action
from imagejury.core.verdict.aggregate import aggregate
from imagejury.errors import ConfigError, InvalidRequestError
from imagejury.judges.features import FeatureCache
from imagejury.judges.types import JudgeIssue, JudgeItem, JudgeResult, Reference
from tests.support import shapes

ROOT = Path(__file__).resolve().parents[1]
TINY_DIR = ROOT / "tests" / "assets" / "tiny_shapes_clip"
TINY = f"local-dir:{TINY_DIR}"
EX = ROOT / "examples"


def _png_uri(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _shape(color: str, shape: str, seed: int) -> Image.Image:
    return shapes.render(color, shape, np.random.default_rng(seed), size=64)


# ---------------------------------------------------------------- model flags are validated up front
@pytest.mark.parametrize(
    "overrides", [{"device": "tpu"}, {"device": "cuda:x"}, {"torch_threads": -1}, {"dtype": "int8"}]
)
def test_bad_model_flags_are_refused_when_the_config_is_built(overrides):
    with pytest.raises(ConfigError):
        EvaluatorConfig().with_overrides(**overrides)


def test_good_model_flags_still_apply():
    cfg = EvaluatorConfig().with_overrides(device="cuda:1", torch_threads=2, clip=TINY, face_backend=None)
    assert (cfg.models.device, cfg.models.torch_threads, cfg.models.clip) == ("cuda:1", 2, TINY)
    assert cfg.models.face_backend == "dlib"  # None means "not given": the file's value stays


@pytest.mark.parametrize("flags", [["--device", "tpu"], ["--threads", "-1"]])
def test_cli_bad_model_flag_is_exit_2_not_a_traceback_or_a_model_failure(capsys, flags):
    # before: --device tpu ran the whole evaluation and ended processing_failed (exit 3);
    # --threads -1 crashed in torch.set_num_threads with a traceback (exit 1 = "failed")
    code = main(["evaluate", str(EX / "astronaut_headshot.jpg"), "--clip", TINY, *flags])
    err = capsys.readouterr().err
    assert code == EXIT_INVALID
    assert err.startswith("error:") and "Traceback" not in err


def test_models_command_bad_flag_is_exit_2(capsys):
    assert main(["models", "--device", "tpu"]) == EXIT_INVALID
    assert "device" in capsys.readouterr().err


# ---------------------------------------------------------------- --attr values
@pytest.mark.parametrize(
    "raw, value",
    [
        ("3", 3),
        ("1.5", 1.5),
        ("true", True),
        ("corporate", "corporate"),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("-Infinity", "-Infinity"),
        ("1e400", "1e400"),
        ("[1, 2]", "[1, 2]"),
    ],
)
def test_attr_values_never_become_non_finite_numbers(raw, value):
    got = parse_scalar(raw)  # the --attr parser, shared with CSV attribute cells
    assert got == value and type(got) is type(value)
    json.dumps({"v": got}, allow_nan=False)


# ---------------------------------------------------------------- improved prompt fits the request limit
def _failed_prompt_result() -> JudgeResult:
    return JudgeResult(
        name="prompt_adherence",
        category="prompt_adherence",
        passed=False,
        confidence=0.9,
        weight=1.0,
        reasoning="missing",
        issues=[
            JudgeIssue("missing_element", "missing 'a red hat'", target="a red hat"),
            JudgeIssue("prohibited_element", "shows text", target="text"),
        ],
    )


@pytest.mark.parametrize("prompt", ["a" * GENERATION_PROMPT_MAX, "word " * 2000, "x" * (GENERATION_PROMPT_MAX - 10)])
def test_improved_prompt_of_a_maximal_prompt_can_be_sent_back(prompt):
    out = _improved_prompt(prompt, [_failed_prompt_result()])
    assert out is not None and len(out) <= GENERATION_PROMPT_MAX
    assert "a red hat" in out and out.endswith("Avoid: text.")
    EvaluationRequest.model_validate({"generated_image_url": "x.png", "task_type": "t", "generation_prompt": out})


def test_improved_prompt_of_a_short_prompt_is_unchanged_by_the_cap():
    out = _improved_prompt("a man in a suit.", [_failed_prompt_result()])
    assert out == "a man in a suit, a red hat. Avoid: text."
    r = _failed_prompt_result()
    action = decide_action(aggregate([r], pass_threshold=0.7), [r], "a" * GENERATION_PROMPT_MAX)
    assert action.primary_action == "regenerate_with_prompt"
    assert len(action.improved_prompt or "") <= GENERATION_PROMPT_MAX


# ---------------------------------------------------------------- batch directory: unsupported images are said
def test_directory_batch_names_the_images_it_cannot_grade(tmp_path, caplog):
    img = Image.new("RGB", (8, 8), (200, 10, 10))
    img.save(tmp_path / "b.png")
    img.save(tmp_path / "a.gif")
    img.save(tmp_path / "c.bmp")
    (tmp_path / "notes.txt").write_text("not an image")
    with caplog.at_level(logging.WARNING, logger="imagejury.batch.manifest"):
        manifest = open_manifest(tmp_path, shared={"task_type": "x"})
        assert manifest.count_rows() == 1
        assert not caplog.records  # counting rows does not warn
        rows = list(manifest.rows())
    assert [r.data["generated_image_url"] for r in rows] == ["b.png"]
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 1 and "a.gif" in msgs[0] and "c.bmp" in msgs[0] and "notes.txt" not in msgs[0]
    assert [p.name for p in iter_image_files(tmp_path, warn=False)] == ["b.png"]


# ---------------------------------------------------------------- references are numbered by request position
@pytest.fixture(scope="module")
def tiny_evaluator() -> Evaluator:
    if not (TINY_DIR / "open_clip_config.json").is_file():
        pytest.fail(f"the tiny shapes CLIP is missing from {TINY_DIR}")
    cfg = EvaluatorConfig.model_validate({"models": {"clip": TINY}, "evaluation": {"allow_missing_models": True}})
    return Evaluator(cfg)


def test_reference_similarity_numbers_references_by_their_place_in_the_request(tiny_evaluator):
    from imagejury.judges.reference_similarity import ReferenceSimilarityJudge

    judge = ReferenceSimilarityJudge(model_set=tiny_evaluator.model_set("standard"))
    judge.warmup()
    img = _shape("yellow", "square", 1)
    key = lambda im: str(hash(im.tobytes()))  # noqa: E731
    face = Image.new("RGB", (64, 64), (128, 128, 128))
    refs = [
        Reference("identity", face, key=key(face)),  # reference_images[0]: not this judge's
        Reference("object", img, key=key(img)),  # [1]: matches
        Reference("background", _shape("green", "cross", 2), key="bg"),
    ]  # [2]: does not
    item = JudgeItem(item_id="i", image=img, image_key=key(img), references=refs, features=FeatureCache())
    (res,) = judge.judge([item])
    assert set(res.sub_point_results) == {"reference_2_object", "reference_3_background"}
    if not res.passed:  # the tiny CLIP tells a green cross from a yellow square
        assert "background reference 3" in res.reasoning and "reference 2" not in res.reasoning.replace(
            "background reference 3", ""
        )


def test_identity_numbers_references_by_their_place_in_the_request():
    pytest.importorskip("dlib", reason="dlib-bin provides the dlib face backend")
    from imagejury.judges.identity import IdentityJudge
    from imagejury.models.errors import ModelUnavailableError
    from imagejury.models.provider import ModelSet
    from imagejury.models.settings import ModelSettings
    from tests.support import faces as F

    judge = IdentityJudge(model_set=ModelSet(ModelSettings(face_backend="dlib")))
    try:
        judge.warmup()
    except ModelUnavailableError as exc:  # pragma: no cover
        pytest.skip(str(exc))
    astro = F.astronaut()
    blank = Image.new("RGB", (128, 128), (90, 90, 90))
    refs = [
        Reference("garment", astro, key=F.content_key(astro)),  # reference_images[0]
        Reference("identity", blank, key=F.content_key(blank)),  # [1]: no face
        Reference("identity", astro, key=F.content_key(astro)),
    ]  # [2]: the same person
    item = JudgeItem(
        item_id="i",
        image=astro,
        image_key=F.content_key(astro),
        task_type="headshot",
        references=refs,
        features=FeatureCache(),
    )
    (res,) = judge.judge([item])
    assert res.passed
    assert "reference 2: no face found, excluded" in res.reasoning
    assert "(reference 3)" in res.reasoning
    assert set(res.sub_point_results) == {"reference_2", "reference_3"}


# ---------------------------------------------------------------- evaluate_many: order and bad requests
def test_evaluate_many_gives_each_request_the_judges_of_a_single_evaluate(tiny_evaluator):
    img = _png_uri(_shape("red", "circle", 3))
    plain = {"generated_image_url": img, "task_type": "image_generation", "job_class": "quick"}
    prompted = {**plain, "generation_prompt": "a red circle"}
    # the first item has no prompt: prompt_adherence joined the batch last and used to come last
    many = tiny_evaluator.evaluate_many([plain, prompted])
    single = tiny_evaluator.evaluate(prompted)
    assert [j.name for j in many[1].judges] == [j.name for j in single.judges]
    assert [j.name for j in single.judges] == ["technical_signals", "prompt_adherence", "safety"]
    assert many[1].to_api()["top_issues"] == single.to_api()["top_issues"]


def test_evaluate_many_names_the_invalid_request_and_decodes_nothing(tiny_evaluator, monkeypatch):
    decoded = []
    monkeypatch.setattr(tiny_evaluator, "prepare", lambda *a, **k: decoded.append(a) or None)
    good = {"generated_image_url": "missing.png", "task_type": "x"}
    with pytest.raises(InvalidRequestError, match=r"^requests\[2\]: invalid request: task_type"):
        tiny_evaluator.evaluate_many([good, good, {**good, "task_type": "x" * 101}])
    assert decoded == []


def test_evaluate_many_mixed_batch_keeps_order_and_fails_only_the_bad_items(tiny_evaluator, tmp_path):
    good = _png_uri(_shape("blue", "square", 4))
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    reqs = [
        {"generated_image_url": good, "task_type": "image_generation", "client_ref": "0"},
        {"generated_image_url": str(tmp_path / "bad.jpg"), "task_type": "x", "client_ref": "1"},
        {"generated_image_url": good, "task_type": "image_generation", "client_ref": "2", "job_class": "quick"},
        {"generated_image_url": str(tmp_path / "nope.png"), "task_type": "x", "client_ref": "3"},
        {"generated_image_url": good, "task_type": "image_generation", "client_ref": "4"},
    ]
    out = tiny_evaluator.evaluate_many(reqs)
    assert [e.client_ref for e in out] == ["0", "1", "2", "3", "4"]
    assert [e.status.value for e in out] == ["completed", "failed", "completed", "failed", "completed"]
    assert [getattr(e.failure_code, "value", e.failure_code) for e in out] == [
        None,
        "invalid_media",
        None,
        "invalid_media",
        None,
    ]
    assert out[2].job_class.value == "quick" and out[0].job_class.value == "standard"
    assert out[0].weighted_pass_rate == out[4].weighted_pass_rate  # duplicates agree
    for e in out:
        json.dumps(e.to_api(), allow_nan=False)


# ---------------------------------------------------------------- rubric: negated and excepted ignores
@pytest.mark.parametrize(
    "text",
    [
        "don't ignore the background",
        "do not ignore the background",
        "Never skip the background",
        "you can't ignore the background",
        "don’t ignore the background",
    ],
)
def test_a_negated_ignore_ignores_nothing(text):
    from imagejury.judges.rubric import parse_directives

    d = parse_directives(text)  # before: read as "ignore background"
    assert d.ignore == set()
    assert any("negated" in n for n in d.notes)


@pytest.mark.parametrize(
    "text, kept",
    [
        ("ignore everything except the face", {"face"}),
        ("Ignore all but the lighting and the face", {"lighting", "face"}),
        ("ignore everything other than the identity", {"identity"}),
    ],
)
def test_ignore_everything_except_x_keeps_x(text, kept):
    from imagejury.judges.rubric import parse_directives

    d = parse_directives(text)  # before: "ignore everything except the face" ignored the face
    assert d.ignore == set() and d.prioritise == kept


def test_ignore_with_an_exception_ignores_only_the_head():
    from imagejury.judges.rubric import parse_directives

    assert parse_directives("ignore the background except the colour").ignore == {"background"}
    assert parse_directives("ignore the text but not the logo").ignore == set()
    d = parse_directives("do not ignore the face. ignore the text")
    assert d.ignore == {"text"}


def test_headshot_rubric_ignore_everything_but_the_face_still_checks_identity(tiny_evaluator):
    pytest.importorskip("dlib", reason="dlib-bin provides the dlib face backend")
    from tests.support import faces as F

    img = _png_uri(F.astronaut().resize((256, 256)))
    req = {
        "generated_image_url": img,
        "task_type": "headshot",
        "job_class": "quick",
        "evaluation_instructions": "ignore everything except the face",
        "reference_images": [{"url": img, "kind": "identity"}],
    }
    e = tiny_evaluator.evaluate(req)
    names = [j.name for j in e.judges]
    assert "identity" in names and "headshot" in names
    assert e.check_summary["ignored_by_rubric"] == []


@pytest.mark.parametrize(
    "text, ignored",
    [
        ("ignore background, text and lighting", {"background", "text", "lighting"}),
        ("ignore the background, the face must be sharp", {"background"}),
        ("ignore the background, focus on the face", {"background"}),
    ],
)
def test_ignore_reads_a_plain_list_of_aspects_after_a_comma(text, ignored):
    from imagejury.judges.rubric import parse_directives

    # before: only the first item ("background") was ignored
    assert parse_directives(text).ignore == ignored


@pytest.mark.parametrize(
    "cell, value", [("NaN", "NaN"), ("Infinity", "Infinity"), ("1e400", "1e400"), ("2", 2), ("false", False)]
)
def test_csv_attribute_cells_never_become_non_finite_numbers(cell, value):
    from imagejury.batch.manifest import table_row_to_request

    got = table_row_to_request({"generated_image_url": "a.png", "task_type": "x", "attr_k": cell})["input_attributes"][
        "k"
    ]
    assert got == value and type(got) is type(value)


# ---------------------------------------------------------------- server: bodies Python's json accepts but JSON does not
@pytest.fixture(scope="module")
def api_only(tmp_path_factory):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from imagejury.service.app import create_app
    from imagejury.service.settings import ServerSettings

    folder = tmp_path_factory.mktemp("unseen_api")
    settings = ServerSettings.load(
        {"tokens": {"tok-unseen-0001": "unseen"}}, env={}, db_path=folder / "db.sqlite", embedded_worker=False
    )
    with TestClient(create_app(EvaluatorConfig(), settings)) as client:
        client.headers["Authorization"] = "Bearer tok-unseen-0001"
        yield client


@pytest.mark.parametrize(
    "value, says",
    [
        ("NaN", "NaN"),
        ("-Infinity", "Infinity"),
        ("1e400", "1e400"),
        ("9" * 5000, "digits"),
        ("[" * 50_000 + "]" * 50_000, "nested"),
    ],
)
def test_submit_refuses_non_json_numbers_and_absurd_nesting_with_422(api_only, value, says):
    # before: NaN / 1e400 were admitted (and could only come back out as invalid JSON);
    # a 5,000-digit integer or 50,000 nested arrays answered 500
    img = _png_uri(Image.new("RGB", (8, 8), (1, 2, 3)))
    body = '{"generated_image_url": "%s", "task_type": "x", "input_attributes": {"a": %s}}' % (img, value)
    r = api_only.post("/v1/evaluations", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("body: not valid JSON") and says in r.json()["detail"]


def test_submit_still_takes_ordinary_numbers(api_only):
    img = _png_uri(Image.new("RGB", (8, 8), (1, 2, 3)))
    body = {"generated_image_url": img, "task_type": "x", "input_attributes": {"a": 1.5e300, "b": 10**40, "c": -0.0}}
    r = api_only.post("/v1/evaluations", json=body)
    assert r.status_code == 202, r.text


def test_csv_row_with_surplus_cells_is_a_rejected_row_not_a_crash(tmp_path):
    # before: csv puts surplus cells under the key None; hashing the bad row for its id
    # (json.dumps sort_keys) raised TypeError and stopped the whole batch
    (tmp_path / "m.csv").write_text("generated_image_url,task_type\na.png,x\nb.png,x,surplus,cells\n", encoding="utf-8")
    rows = list(open_manifest(tmp_path / "m.csv", shared={}).rows())
    assert [r.error for r in rows] == [None, "the row has more cells than the header has columns"]
    assert rows[1].row_id and rows[1].row_id != rows[0].row_id


def test_data_uri_base64_wrapped_in_lines_is_decoded(tmp_path):
    # `base64 photo.png` wraps at 76 columns; before, such a data URI was "not valid base64"
    from imagejury.core.intake.media import MediaLimits, load_request_images
    from imagejury.errors import InvalidMediaError

    buf = io.BytesIO()
    _shape("red", "circle", 9).save(buf, "PNG")
    text = base64.b64encode(buf.getvalue()).decode()
    wrapped = "\n".join(text[i : i + 76] for i in range(0, len(text), 76)) + "\r\n"
    req = EvaluationRequest.model_validate(
        {"generated_image_url": "data:image/png;base64," + wrapped, "task_type": "x"}
    )
    main_img, _ = load_request_images(req, MediaLimits())
    assert main_img.image.size == (64, 64)
    bad = EvaluationRequest.model_validate(
        {"generated_image_url": "data:image/png;base64,iVBOR!!!\n", "task_type": "x"}
    )
    with pytest.raises(InvalidMediaError, match="not valid base64"):
        load_request_images(bad, MediaLimits())


@pytest.mark.parametrize(
    "flags, says",
    [
        (["--job-class", "turbo"], "job_class"),
        (["--task-type", "x" * 101], "task_type"),
        (["--prompt", "p" * 10_001], "generation_prompt"),
    ],
)
def test_batch_bad_shared_flag_is_one_error_before_any_row(tmp_path, capsys, flags, says):
    # before: exit 0 and one identical "rejected" row per image
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    out = tmp_path / "out.jsonl"
    code = main(["batch", str(tmp_path), "-o", str(out), "--no-progress", *flags])
    assert code == EXIT_INVALID
    assert says in capsys.readouterr().err and not out.exists()
