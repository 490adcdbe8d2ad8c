"""The review page (service/routes/review.py) against a real server, in a real headless Chromium:
sign in, the queue with manual_review and borderline first, filter, label with the keyboard
through the feedback API, reload and see the labels kept, and a second org that sees nothing of
the first. Also the JSON behind it: /v1/review/queue and /v1/calibration, org-scoped.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time

import httpx
import pytest
from PIL import Image

from imagejury.core.config import EvaluatorConfig
from imagejury.service.app import create_app
from imagejury.service.settings import ServerSettings, org_uuid
from imagejury.service.store import Store
from imagejury.service.worker import thumbnail_jpeg
from tests.support.server import free_port
from tests.test_calibrate import make_record

uvicorn = pytest.importorskip("uvicorn")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
TOKENS = {"tok-alpha-0001": "alpha", "tok-bravo-0002": "bravo"}
ALPHA, BRAVO = (org_uuid("alpha"), "tok-alpha-0001"), (org_uuid("bravo"), "tok-bravo-0002")


def _insert(store: Store, org: str, record: dict, created: float) -> None:
    with store.write() as db:
        db.execute(
            "INSERT INTO evaluations (id, org_id, status, job_class, client_ref, request_json, cost, created_at, "
            "updated_at, deadline, result_json) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                record["id"],
                org,
                "completed",
                "standard",
                record.get("client_ref"),
                "{}",
                "0",
                created,
                created,
                created + 60,
                json.dumps(record),
            ),
        )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("review")
    store = Store(root / "s.db")
    now = time.time()
    for i, sim in enumerate((0.9, 0.8, 0.62, 0.5, 0.7)):
        rec = make_record(sim, client_ref=f"alpha-{i}")
        if i == 1:
            rec["primary_action_code"] = "manual_review"
        if i == 3:
            rec["judges"][0]["confidence"] = 0.55  # an unsure vote
        _insert(store, ALPHA[0], rec, now - 100 + i)
        if i == 0:  # what the worker keeps at evaluation time (tests/test_server_worker.py)
            thumb = thumbnail_jpeg(Image.new("RGB", (640, 480), (200, 30, 30)), 96)
            store.put_thumbnails([(ALPHA[0], rec["id"], thumb)])
    _insert(store, BRAVO[0], make_record(0.9, client_ref="bravo-secret"), now)
    settings = ServerSettings(db_path=root / "s.db", tokens=TOKENS, embedded_worker=False)
    app = create_app(EvaluatorConfig(), settings, store=store)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    yield base
    srv.should_exit = True
    thread.join(10)


def _get(base: str, path: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(base + path, headers=headers, timeout=10)


def test_queue_orders_manual_review_then_borderline_and_is_org_scoped(server):
    assert _get(server, "/v1/review/queue", None).status_code == 401
    data = _get(server, "/v1/review/queue", ALPHA[1]).json()
    refs = [i["client_ref"] for i in data["data"]]
    assert refs[:2] == ["alpha-1", "alpha-3"]  # manual_review, then the borderline vote
    assert refs[2:] == ["alpha-4", "alpha-2", "alpha-0"]  # the rest newest first
    assert "bravo-secret" not in json.dumps(data)
    assert data["counts"] == {"matching": 5, "labelled": 0, "approved": 0, "rejected": 0}
    shown = {i["client_ref"]: i["image_url"] for i in data["data"]}
    assert shown["alpha-0"].startswith("data:image/jpeg;base64,")  # the kept thumbnail
    assert shown["alpha-1"] == "https://example.com/a.png"  # none kept: the client's own https image
    assert data["options"]["judge"] == ["identity", "technical_signals"]
    only = _get(server, "/v1/review/queue?action=fix_identity", ALPHA[1]).json()
    assert [i["client_ref"] for i in only["data"]] == ["alpha-3"]
    assert _get(server, "/v1/review/queue?issue=nothing-like-this", ALPHA[1]).json()["counts"]["matching"] == 0
    bravo = _get(server, "/v1/review/queue", BRAVO[1]).json()
    assert [i["client_ref"] for i in bravo["data"]] == ["bravo-secret"]
    # bravo cannot label alpha's evaluation through the feedback API the page uses
    alpha_id = data["data"][0]["id"]
    r = httpx.patch(
        f"{server}/v1/evaluations/{alpha_id}/feedback",
        json={"is_positive": True},
        headers={"Authorization": f"Bearer {BRAVO[1]}"},
    )
    assert r.status_code == 404


def test_review_page_serves_everything_itself(server):
    html = httpx.get(server + "/review").text
    assert "<script>" in html and "<style>" in html
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="https?:', html)  # nothing from a CDN


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_sign_in_filter_label_with_keys_reload_and_other_org(server):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.goto(server + "/review")
        page.wait_for_selector("#signin:not([hidden])")
        page.fill("#token", ALPHA[1])
        page.click("#signin button")
        page.wait_for_selector("body[data-signed-in='1'] .item")
        ids = page.eval_on_selector_all(".item", "els => els.map(e => e.dataset.id)")
        assert len(ids) == 5 and "bravo" not in page.content()
        page.keyboard.press("j")
        page.keyboard.press("r")  # reject the manual_review one, then on to the next
        page.wait_for_selector("body[data-labelled='1']")
        page.keyboard.press("e")
        page.keyboard.type("face is fine")
        page.keyboard.press("Escape")
        page.keyboard.press("a")
        page.wait_for_selector("body[data-labelled='2']")
        assert page.inner_text("#progress") == "2 of 5 labelled (1 approved, 1 rejected)"
        page.reload()
        page.wait_for_selector("body[data-signed-in='1'] .item")  # the token stays in the tab
        items = page.locator(".item")
        assert items.nth(0).get_attribute("data-label") == "rejected"
        assert items.nth(1).get_attribute("data-label") == "approved"
        assert "face is fine" in items.nth(1).inner_text()
        page.select_option("select[data-filter='labelled']", "no")
        page.wait_for_selector("body[data-matching='3']")
        page.select_option("select[data-filter='labelled']", "any")
        page.select_option("select[data-filter='action']", "manual_review")
        page.wait_for_selector("body[data-matching='1']")
        page.click("#signout")
        page.wait_for_selector("#signin:not([hidden])")
        page.fill("#token", BRAVO[1])
        page.click("#signin button")
        page.wait_for_selector("body[data-signed-in='1']")
        page.select_option("select[data-filter='action']", "")
        page.wait_for_selector("body[data-matching='1']")
        text = page.inner_text("#queue")
        assert "bravo-secret" in text and "alpha-" not in text
        page.click("#signout")
        page.fill("#token", "not-a-token")
        page.click("#signin button")
        page.wait_for_selector("#signin-error:has-text('not accepted')")
        browser.close()
    summary = _get(server, "/v1/calibration", ALPHA[1]).json()
    assert summary["labels"] == 2 and summary["approved"] == 1 and summary["rejected"] == 1
    ident = summary["judges"]["identity"]
    assert ident["labelled"] == 2 and ident["enough_to_calibrate"] is False
    assert _get(server, "/v1/calibration", BRAVO[1]).json()["labels"] == 0
