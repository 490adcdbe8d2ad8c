"""Hostile and unlucky inputs against the API in-process (TestClient, no worker): every
answer is a 4xx, never a 5xx, and nothing is admitted unless the client gets its id."""

from __future__ import annotations

import base64
import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from imagejury.core.config import EvaluatorConfig
from imagejury.service.settings import ServerSettings
from imagejury.service.store import encode_cursor

TOKENS = {"tok-hard-alpha-01": "alpha", "tok-hard-bravo-02": "bravo"}


def _img() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


IMG = _img()


def make_client(folder: Path, **server: Any) -> Any:
    from fastapi.testclient import TestClient

    from imagejury.service.app import create_app

    settings = ServerSettings.load(
        {"tokens": TOKENS, **server}, env={}, db_path=folder / "db.sqlite", embedded_worker=False
    )
    client = TestClient(create_app(EvaluatorConfig(), settings), raise_server_exceptions=False)
    client.headers["Authorization"] = "Bearer tok-hard-alpha-01"
    return client


@pytest.fixture(scope="module")
def api(tmp_path_factory):  # type: ignore[no-untyped-def]
    with make_client(tmp_path_factory.mktemp("hardening")) as client:
        yield client


def _count(api: Any) -> int:
    return len(api.get("/v1/evaluations", params={"limit": 100}).json()["data"])


def _post_raw(api: Any, attr_json: str, **extra: str) -> Any:
    fields = "".join(f', "{k}": {v}' for k, v in extra.items())
    body = '{"generated_image_url": "%s", "task_type": "x", "input_attributes": {"a": %s}%s}' % (IMG, attr_json, fields)
    return api.post("/v1/evaluations", content=body, headers={"content-type": "application/json"})


@pytest.mark.parametrize("depth", [40, 200, 250, 600])
def test_deeply_nested_attributes_are_422_and_never_admitted(api: Any, depth: int) -> None:
    # before: ~200-250 deep was queued, the client got a 500 with no id, and the pending row
    # made GET /v1/evaluations answer 500 for the whole org
    before = _count(api)
    r = _post_raw(api, '{"a":' * depth + "1" + "}" * depth)
    assert r.status_code == 422 and "nested" in r.json()["detail"], r.text
    assert _count(api) == before
    assert api.get("/v1/evaluations").status_code == 200


@pytest.mark.parametrize(
    "attr, extra",
    [
        ('"\\udfff"', {}),
        ("1", {"client_ref": '"ok\\ud800"'}),
        ('{"\\udc80": 1}', {}),
        ("1", {"generation_prompt": '"a \\udfff"'}),
    ],
)
def test_lone_surrogates_are_422_and_never_admitted(api: Any, attr: str, extra: dict[str, str]) -> None:
    # before: a surrogate in an attribute key was admitted and every later list answered 500
    before = _count(api)
    r = _post_raw(api, attr, **extra)
    assert r.status_code == 422 and "surrogate" in r.json()["detail"], r.text
    assert _count(api) == before
    assert api.get("/v1/evaluations").status_code == 200


def test_feedback_with_a_lone_surrogate_is_422(api: Any) -> None:
    eid = _post_raw(api, "1").json()["id"]
    body = '{"is_positive": true, "reason": "bad \\udfff"}'
    r = api.patch(f"/v1/evaluations/{eid}/feedback", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("seq", [2**63, 10**19 - 1, 2**63 - 1])
def test_forged_cursor_beyond_int64_is_422(api: Any, seq: int) -> None:
    r = api.get("/v1/evaluations", params={"cursor": encode_cursor(seq)})
    assert r.status_code == (200 if seq <= 2**63 - 1 else 422), r.text


def test_huge_numbers_are_a_clear_answer(api: Any) -> None:
    assert _post_raw(api, "9" * 5000).status_code == 422  # past Python's int parsing limit
    ok = _post_raw(api, "9" * 400)
    assert ok.status_code == 202 and api.get(f"/v1/evaluations/{ok.json()['id']}").status_code == 200


def test_the_202_answer_is_what_get_serves(api: Any) -> None:
    ev = _post_raw(api, '{"nested": [1, 2, {"x": "y"}]}').json()
    assert api.get(f"/v1/evaluations/{ev['id']}").json() == ev
    assert uuid.UUID(ev["id"]) and json.dumps(ev)


def test_readyz_details_need_a_token_and_never_show_paths(api: Any) -> None:
    # before: /readyz showed every worker's host and model problems, with cache paths, to anyone
    store = api.app.state.store
    problem = "weights not found: /home/ops/.cache/huggingface/hub/models--x/open_clip_model.safetensors (offline)"
    store.heartbeat("host-a:1:abc", ready=False, problems={"prompt_adherence": problem}, started_at=0.0)
    bare = api.get("/readyz", headers={"Authorization": ""})
    assert bare.status_code == 503 and bare.json() == {"status": "not_ready"}
    wrong = api.get("/readyz", headers={"Authorization": "Bearer not-a-known-token"})
    assert wrong.json() == {"status": "not_ready"}
    full = api.get("/readyz")
    (worker,) = [w for w in full.json()["workers"] if w["id"] == "host-a:1:abc"]
    shown = worker["problems"]["prompt_adherence"]
    assert "/home" not in shown and ".cache" not in shown and "open_clip_model.safetensors" in shown, shown


def test_one_org_cannot_fill_the_whole_queue(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # before: the queue limit was shared by all orgs, so one org could starve the rest
    with make_client(tmp_path, max_queue_depth=6) as api:  # two orgs: each may fill half
        codes = [_post_raw(api, str(i)).status_code for i in range(5)]
        assert codes == [202, 202, 202, 429, 429], codes
        r = _post_raw(api, "9")
        assert "share of the queue (3 of 6)" in r.json()["detail"] and r.headers["retry-after"]
        bravo = {"Authorization": "Bearer tok-hard-bravo-02"}
        body = {"generated_image_url": IMG, "task_type": "x"}
        assert [api.post("/v1/evaluations", json=body, headers=bravo).status_code for _ in range(4)] == [
            202,
            202,
            202,
            429,
        ]


def test_org_queue_share_setting() -> None:
    one = ServerSettings(tokens={"tok-only-one-01": "a"}, max_queue_depth=10)
    two = ServerSettings(tokens=TOKENS, max_queue_depth=10)
    assert one.org_queue_limit() == 10 and two.org_queue_limit() == 5
    assert ServerSettings(tokens=TOKENS, max_queue_depth=10, org_queue_share=0.25).org_queue_limit() == 3


def test_idempotency_fingerprint_is_canonical_json(api: Any) -> None:
    # before: 1.0 for 1 (or 1e2 for 100) was "a different body": 422
    first = '{"generated_image_url": "%s", "task_type": "x", "input_attributes": {"n": 1, "m": 100, "s": "\u00e9"}}'
    again = '{ "input_attributes" : { "s" : "é" , "m" : 1e2 , "n" : 1.0 } , "task_type" : "x" , "generated_image_url" : "%s" }'
    other = '{"generated_image_url": "%s", "task_type": "x", "input_attributes": {"n": 1.5, "m": 100, "s": "é"}}'
    h = {"content-type": "application/json", "Idempotency-Key": "canon-1"}
    a = api.post("/v1/evaluations", content=(first % IMG).encode(), headers=h)
    b = api.post("/v1/evaluations", content=(again % IMG).encode(), headers=h)
    assert a.status_code == 202 and b.status_code == 200 and b.json()["id"] == a.json()["id"], b.text
    c = api.post("/v1/evaluations", content=(other % IMG).encode(), headers=h)
    assert c.status_code == 422 and "Idempotency-Key" in c.json()["detail"]


def _vanish(api: Any, evaluation_id: str) -> None:
    with api.app.state.store.write() as db:
        db.execute("DELETE FROM evaluations WHERE id=?", (evaluation_id,))


def _finished(api: Any) -> str:
    store = api.app.state.store
    eid = _post_raw(api, "1").json()["id"]
    with store.write() as db:
        db.execute("UPDATE evaluations SET status='running', lease_owner='w' WHERE id=?", (eid,))
    row = store.get_any(eid)
    assert store.finish("w", eid, status="completed", failure_code=None, result_json=row["result_json"], outbox=None)
    return eid


def test_a_vanished_idempotency_key_evaluation_is_admitted_anew_by_submit_and_reevaluate(api: Any) -> None:
    # before: submit answered 409 "gone" while reevaluate went on and then failed to mark the key
    h = {"Idempotency-Key": "vanish-submit"}
    body = {"generated_image_url": IMG, "task_type": "x", "client_ref": "vanish"}
    first = api.post("/v1/evaluations", json=body, headers=h).json()["id"]
    _vanish(api, first)
    again = api.post("/v1/evaluations", json=body, headers=h)
    assert again.status_code == 202 and again.json()["id"] != first
    assert api.post("/v1/evaluations", json=body, headers=h).json()["id"] == again.json()["id"]  # a replay now

    parent = _finished(api)
    h = {"Idempotency-Key": "vanish-reevaluate"}
    child = api.post(f"/v1/evaluations/{parent}/reevaluate", headers=h).json()["id"]
    _vanish(api, child)
    with api.app.state.store.write() as db:  # the parent is no longer superseded by anything
        db.execute("UPDATE evaluations SET superseded_at=NULL WHERE id=?", (parent,))
    redo = api.post(f"/v1/evaluations/{parent}/reevaluate", headers=h)
    assert redo.status_code == 202 and redo.json()["id"] != child, redo.text
    replay = api.post(f"/v1/evaluations/{parent}/reevaluate", headers=h)
    assert replay.status_code == 200 and replay.json()["id"] == redo.json()["id"]


def test_docs_and_redoc_load_only_local_assets(api: Any) -> None:
    # before: both pages loaded Swagger UI / ReDoc from a CDN and were blank offline
    import re

    for page in ("/docs", "/redoc"):
        r = api.get(page)
        assert r.status_code == 200 and "text/html" in r.headers["content-type"]
        urls = re.findall(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]""", r.text)
        assert urls and all(u.startswith("/") for u in urls), urls
        assert "cdn." not in r.text and "fonts.googleapis" not in r.text
        for url in urls:
            got = api.get(url)
            assert got.status_code == 200 and len(got.content) > 1000, url
    assert api.get("/docs-assets/../../etc/passwd").status_code == 404
    assert api.get("/docs-assets/secrets.txt").status_code == 404


def test_docs_fall_back_to_a_local_page_without_the_assets(api: Any, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from imagejury.service.routes import docs

    monkeypatch.setattr(docs, "assets_dir", lambda: None)
    r = api.get("/docs")
    assert r.status_code == 200 and "/openapi.json" in r.text and "POST /v1/evaluations" in r.text
    assert "cdn." not in r.text


def test_an_unexpected_error_is_a_logged_500_that_keeps_the_connection(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # before: Starlette answered 500 and re-raised, and uvicorn dropped the keep-alive
    # connection; here the error must not escape the app (TestClient would re-raise it)
    from fastapi.testclient import TestClient

    from imagejury.service.app import create_app

    settings = ServerSettings.load({"tokens": TOKENS}, env={}, db_path=tmp_path / "db.sqlite", embedded_worker=False)
    app = create_app(EvaluatorConfig(), settings)
    with TestClient(app, raise_server_exceptions=True) as api:

        def broken(*a: Any, **k: Any) -> Any:
            raise RuntimeError("disk on fire")

        monkeypatch.setattr(app.state.store, "list", broken)
        r = api.get("/v1/evaluations", headers={"Authorization": "Bearer tok-hard-alpha-01"})
        assert r.status_code == 500 and r.json() == {"detail": "internal error (logged on the server)"}
        assert "disk on fire" not in r.text


def test_strict_config_refuses_an_unknown_task_type_at_admission(tmp_path: Path) -> None:
    """[evaluation] strict = true: a typo is a 422 naming the value and the closest known
    one, not a queued job that fails later; without strict the job is admitted."""
    from fastapi.testclient import TestClient

    from imagejury.service.app import create_app

    settings = ServerSettings.load({"tokens": TOKENS}, env={}, db_path=tmp_path / "db.sqlite", embedded_worker=False)
    strict = EvaluatorConfig.model_validate({"evaluation": {"strict": True}})
    client = TestClient(create_app(strict, settings), raise_server_exceptions=False)
    client.headers["Authorization"] = "Bearer tok-hard-alpha-01"
    body = {"generated_image_url": _img(), "task_type": "headsot"}
    r = client.post("/v1/evaluations", json=body)
    assert r.status_code == 422, r.text
    assert "did you mean 'headshot'" in r.json()["detail"]
    assert client.post("/v1/evaluations", json={**body, "task_type": "Portrait"}).status_code == 202
    lenient = make_client(tmp_path / "lenient")
    assert lenient.post("/v1/evaluations", json=body).status_code == 202
