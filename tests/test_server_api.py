"""End to end against a real ``imagejury serve`` on 127.0.0.1: submit, poll, webhook, assets,
re-evaluation, feedback, service endpoints and the OpenAPI document."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx
import pytest

from imagejury.service.webhooks import WebhookVerificationError, verify
from tests.support.server import (
    WEBHOOK_SECRET,
    HookReceiver,
    ServerProcess,
    data_uri,
    example_request,
    png_bytes,
)

SHARED_API = Path(__file__).resolve().parents[1] / "docs" / "api"
ALPHA_ORG = str(uuid.uuid5(uuid.NAMESPACE_URL, "imagejury:org:alpha"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    srv = ServerProcess(
        tmp_path_factory.mktemp("api"),
        server={
            "allow_loopback_callbacks": True,
            "prices": {"standard": "0.012", "quick": "0.004"},
            "batch_max_wait_s": 0.05,
            "webhook_backoff_base_s": 0.2,
            "webhook_backoff_max_s": 1.0,
            "webhook_timeout_s": 5.0,
        },
    ).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def receiver():  # type: ignore[no-untyped-def]
    rx = HookReceiver(fail_first=1)  # the first delivery gets a 500: the retry must carry the same webhook-id
    yield rx
    rx.close()


@pytest.fixture()
def alpha(server: ServerProcess):  # type: ignore[no-untyped-def]
    with server.client("tok-alpha-0001") as c:
        yield c


@pytest.fixture()
def bravo(server: ServerProcess):  # type: ignore[no-untyped-def]
    with server.client("tok-bravo-0002") as c:
        yield c


def test_submit_poll_and_signed_webhook(server: ServerProcess, receiver: HookReceiver, alpha: httpx.Client) -> None:
    req = example_request(data_uri(png_bytes("red", "circle")), callback_url=receiver.url())
    assert set(req) == set(json.loads((SHARED_API / "request.example.json").read_text()))  # every request field
    r = alpha.post("/v1/evaluations", json=req)
    assert r.status_code == 202, r.text
    ev = r.json()
    assert ev["status"] == "pending" and ev["org_id"] == ALPHA_ORG
    assert ev["cost"] == "0.012" and ev["job_class"] == "standard"
    assert ev["client_ref"] == "test-client-ref" and ev["run_id"] == req["run_id"]
    assert r.headers["location"] == f"/v1/evaluations/{ev['id']}"
    assert "elided" in ev["generated_image_url"]  # a data URI is not echoed whole

    done = server.wait_terminal(alpha, ev["id"])
    assert done["status"] == "completed", done.get("failure_message")
    assert done["cost"] == "0.012"  # frozen at submission
    assert isinstance(done["overall_passed"], bool) and 0.0 <= done["weighted_pass_rate"] <= 1.0
    assert done["analysis_modules_executed"] >= 1 and done["judges"]
    assert done["action"]["primary_action"] == done["primary_action_code"]
    assert done["completed_at"] and done["eval_duration_ms"] is not None
    assert set(json.loads((SHARED_API / "response.example.json").read_text())) <= set(done)

    only = alpha.get(f"/v1/evaluations/{ev['id']}", params={"embed": "judges"}).json()
    assert only["judges"] and only["action"] is None and only["gate_failures"] is None
    assert alpha.get(f"/v1/evaluations/{ev['id']}", params={"embed": "nope"}).status_code == 422

    hooks = receiver.wait_for(ev["id"], count=2)  # 500, then delivered on retry
    assert len({h.headers["webhook-id"] for h in hooks}) == 1
    for h in hooks:
        payload = verify(h.body, h.headers, WEBHOOK_SECRET)
        assert payload["type"] == "evaluation.completed"
        assert payload["data"]["id"] == ev["id"] and payload["data"]["status"] == "completed"
    h = hooks[-1]
    with pytest.raises(WebhookVerificationError):
        verify(h.body.replace(b'"completed"', b'"failed"', 1), h.headers, WEBHOOK_SECRET)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify(h.body, h.headers, WEBHOOK_SECRET, now=int(h.headers["webhook-timestamp"]) + 3600)
    time.sleep(0.5)
    assert len(receiver.for_evaluation(ev["id"])) == 2  # delivered once: no more retries


def test_invalid_requests_get_422_naming_the_field(alpha: httpx.Client) -> None:
    img = data_uri(png_bytes())
    cases = {
        "task_type": {"generated_image_url": img},
        "reference_images": {**example_request(img), "reference_images": [{"url": img}] * 5},
        "generation_promt": {**example_request(img), "generation_promt": "typo"},
        "job_class": {**example_request(img), "job_class": "platinum"},
        "run_id": {**example_request(img), "run_id": "not-a-uuid"},
        "callback_url": {**example_request(img), "callback_url": "https://169.254.169.254/hook"},
    }
    for field, body in cases.items():
        r = alpha.post("/v1/evaluations", json=body)
        assert r.status_code == 422, (field, r.text)
        assert field in r.json()["detail"], (field, r.json())
    r = alpha.post("/v1/evaluations", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["detail"]
    r = alpha.post("/v1/evaluations", json={**example_request(img), "callback_url": "https://10.0.0.1/hook"})
    assert r.status_code == 422 and "not a public address" in r.json()["detail"]


def test_corrupt_data_uri_ends_invalid_media(server: ServerProcess, alpha: httpx.Client) -> None:
    good = png_bytes()
    corrupt = good[:40] + b"\x00" * 64  # a PNG header, then garbage
    ids = [
        alpha.post("/v1/evaluations", json=example_request(url)).json()["id"]
        for url in (data_uri(corrupt), "data:image/png;base64,@@@@", "/etc/passwd")
    ]
    for eid in ids:
        done = server.wait_terminal(alpha, eid)
        assert done["status"] == "failed" and done["failure_code"] == "invalid_media", done
        assert done["failure_message"].startswith("generated_image_url:")
    assert "local file paths are not accepted" in alpha.get(f"/v1/evaluations/{ids[2]}").json()["failure_message"]


@pytest.mark.parametrize(
    "url, bad_ip",
    [
        ("http://127.0.0.1:9/image.png", "127.0.0.1"),  # loopback is NOT allowed on this server
        ("https://169.254.169.254/latest/meta-data/", "169.254.169.254"),  # cloud metadata
        ("https://10.11.12.13/image.png", "10.11.12.13"),  # private
        ("https://[::ffff:192.168.1.1]/image.png", "192.168.1.1"),  # private, IPv4-mapped
    ],
)
def test_ssrf_targets_are_refused_before_connecting(
    server: ServerProcess, alpha: httpx.Client, url: str, bad_ip: str
) -> None:
    eid = alpha.post("/v1/evaluations", json=example_request(url)).json()["id"]
    done = server.wait_terminal(alpha, eid)
    assert done["failure_code"] == "invalid_media"
    assert "not a public address" in done["failure_message"] and bad_ip.split(".")[0] in done["failure_message"]


def test_asset_upload_is_an_image_url_scoped_to_the_org(
    server: ServerProcess, alpha: httpx.Client, bravo: httpx.Client
) -> None:
    png = png_bytes("blue", "square")
    r = alpha.post("/v1/asset-uploads", files={"file": ("sq.png", png, "image/png")})
    assert r.status_code == 201, r.text
    asset = r.json()
    assert asset["url"] == f"runflow://assets/{asset['id']}" and asset["size_bytes"] == len(png)
    raw = alpha.post("/v1/asset-uploads", content=png, headers={"content-type": "image/png"})
    assert raw.status_code == 201
    assert (
        alpha.post("/v1/asset-uploads", content=b"not an image", headers={"content-type": "image/png"}).status_code
        == 422
    )
    assert alpha.post("/v1/asset-uploads", content=b"x", headers={"content-type": "text/plain"}).status_code == 415

    mine = alpha.post("/v1/evaluations", json=example_request(asset["url"], generation_prompt="a blue square")).json()
    ref = f"asset://{raw.json()['id']}"
    with_ref = alpha.post(
        "/v1/evaluations",
        json=example_request(ref, task_type="product", reference_images=[{"url": asset["url"], "kind": "product"}]),
    ).json()
    theirs = bravo.post("/v1/evaluations", json=example_request(asset["url"])).json()
    assert server.wait_terminal(alpha, mine["id"])["status"] == "completed"
    assert server.wait_terminal(alpha, with_ref["id"])["status"] == "completed"
    other = server.wait_terminal(bravo, theirs["id"])
    assert other["failure_code"] == "invalid_media" and "unknown asset" in other["failure_message"]


def test_reevaluate_feedback_and_org_isolation(server: ServerProcess, alpha: httpx.Client, bravo: httpx.Client) -> None:
    first = alpha.post("/v1/evaluations", json=example_request(data_uri(png_bytes("green", "triangle")))).json()
    server.wait_terminal(alpha, first["id"])
    # another org sees nothing of it
    for r in (
        bravo.get(f"/v1/evaluations/{first['id']}"),
        bravo.post(f"/v1/evaluations/{first['id']}/reevaluate"),
        bravo.patch(f"/v1/evaluations/{first['id']}/feedback", json={"is_positive": True, "reason": "x"}),
    ):
        assert r.status_code == 404
    assert first["id"] not in [e["id"] for e in bravo.get("/v1/evaluations", params={"limit": 100}).json()["data"]]

    r = alpha.post(f"/v1/evaluations/{first['id']}/reevaluate")
    assert r.status_code == 202, r.text
    child = r.json()
    assert child["attempt_number"] == 2 and child["parent_evaluation_id"] == first["id"]
    assert alpha.get(f"/v1/evaluations/{first['id']}").json()["superseded_at"] is not None
    assert alpha.post(f"/v1/evaluations/{first['id']}/reevaluate").status_code == 409  # already superseded
    done = server.wait_terminal(alpha, child["id"])
    assert done["status"] == "completed" and done["parent_evaluation"]["id"] == first["id"]

    r = alpha.patch(f"/v1/evaluations/{child['id']}/feedback", json={"is_positive": False, "reason": "wrong colour"})
    assert r.status_code == 200
    assert (r.json()["feedback_is_positive"], r.json()["feedback_reason"]) == (False, "wrong colour")
    assert alpha.patch(f"/v1/evaluations/{child['id']}/feedback", json={"is_positive": "maybe"}).status_code == 422


def test_service_endpoints(server: ServerProcess, alpha: httpx.Client) -> None:
    assert httpx.get(server.base_url + "/healthz").json() == {"status": "ok"}
    deadline = time.monotonic() + 60
    while (ready := alpha.get("/readyz")).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ready.status_code == 200 and ready.json()["worker"] == "embedded"
    assert httpx.get(server.base_url + "/readyz").json() == {"status": "ready"}  # details need a token
    docs = httpx.get(server.base_url + "/docs")
    assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text
    assert httpx.get(server.base_url + "/docs-assets/swagger-ui-bundle.js").status_code == 200
    text = httpx.get(server.base_url + "/metrics").text
    for name in (
        "imagejury_queue_depth",
        "imagejury_batch_size_bucket",
        "imagejury_job_seconds_bucket",
        "imagejury_evaluations_finished_total",
        "imagejury_http_request_seconds_bucket",
        "imagejury_webhook_attempts_total",
    ):
        assert name in text, name
    assert 'imagejury_evaluations_finished_total{failure_code="",status="completed"}' in text
    classes = {c["code"]: c["price"] for c in alpha.get("/v1/evaluations/job-classes").json()["data"]}
    assert classes == {"standard": "0.012", "quick": "0.004"}
    assert [s["code"] for s in alpha.get("/v1/evaluations/statuses").json()["data"]] == [
        "pending",
        "running",
        "completed",
        "failed",
    ]
    assert httpx.get(server.base_url + "/v1/evaluations/statuses").status_code == 401


def test_openapi_matches_spec(server: ServerProcess) -> None:
    doc = httpx.get(server.base_url + "/openapi.json").json()
    spec = (SHARED_API / "SPEC.md").read_text()
    table = [line for line in spec.splitlines() if line.startswith("| `")]
    pairs = [tuple(line.split("`")[1].split(" ", 1)) for line in table]
    pairs = [p for p in pairs if p[0] in ("GET", "POST", "PATCH", "PUT", "DELETE")]
    assert len(pairs) == 7, pairs
    for method, path in pairs:
        templated = path.replace("{id}", "{evaluation_id}")
        assert method.lower() in doc["paths"][templated], (method, path)
    comps = doc["components"]["schemas"]
    request_fields = set(json.loads((SHARED_API / "request.example.json").read_text()))
    assert set(comps["EvaluationRequest"]["properties"]) == request_fields
    assert set(json.loads((SHARED_API / "response.example.json").read_text())) <= set(comps["Evaluation"]["properties"])
    post = doc["paths"]["/v1/evaluations"]["post"]
    assert post["responses"]["202"]["content"]["application/json"]["schema"]["$ref"].endswith("/Evaluation")
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/EvaluationRequest")
    got = doc["paths"]["/v1/evaluations/{evaluation_id}"]["get"]
    assert got["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Evaluation")
