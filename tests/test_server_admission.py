"""Admission against a real API-only server (no worker, so the queue stays put): auth,
org isolation, Idempotency-Key, backpressure (429), listing; then a standalone worker
on the same store turns the jobs past their deadline into ``timed_out``."""

from __future__ import annotations

import concurrent.futures as cf
import time
import uuid

import httpx
import pytest

from imagejury.service.store import Store
from tests.support.server import ServerProcess, data_uri, example_request, png_bytes, start_worker

QUEUE_DEPTH = 12
JOB_TIMEOUT_S = 1.0
SERVER = {
    "max_queue_depth": QUEUE_DEPTH,
    "job_timeout_s": JOB_TIMEOUT_S,
    "retry_after_s": 7,
    "max_body_bytes": 100_000,
    "request_header_timeout_s": 1.0,
    "request_body_timeout_s": 1.0,
    "org_queue_share": 1.0,  # the global cap is tested here; the per-org share in test_server_hardening
}
BRAVO_ORG = str(uuid.uuid5(uuid.NAMESPACE_URL, "imagejury:org:bravo"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    srv = ServerProcess(tmp_path_factory.mktemp("admission"), server=SERVER, extra_args=["--no-worker"]).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def img() -> str:
    return data_uri(png_bytes("yellow", "cross"))


@pytest.fixture()
def alpha(server: ServerProcess):  # type: ignore[no-untyped-def]
    with server.client("tok-alpha-0001") as c:
        yield c


@pytest.fixture()
def bravo(server: ServerProcess):  # type: ignore[no-untyped-def]
    with server.client("tok-bravo-0002") as c:
        yield c


def test_no_or_unknown_token_is_401(server: ServerProcess, img: str) -> None:
    for token in (None, "tok-unknown-999"):
        with server.client(token) as c:
            for r in (
                c.post("/v1/evaluations", json=example_request(img)),
                c.get("/v1/evaluations"),
                c.get(f"/v1/evaluations/{uuid.uuid4()}"),
                c.get("/v1/evaluations/job-classes"),
            ):
                assert r.status_code == 401, r.text
                assert r.headers["www-authenticate"] == "Bearer"
    with server.client(None, headers={"Authorization": "Basic dG9rLWFscGhhLTAwMDE6"}) as c:
        assert c.get("/v1/evaluations").status_code == 401


def test_org_isolation_is_404(server: ServerProcess, alpha: httpx.Client, bravo: httpx.Client, img: str) -> None:
    mine = bravo.post("/v1/evaluations", json=example_request(img, client_ref="bravo-only")).json()
    assert mine["org_id"] == BRAVO_ORG
    assert alpha.get(f"/v1/evaluations/{mine['id']}").status_code == 404
    assert alpha.get(f"/v1/evaluations/{uuid.uuid4()}").status_code == 404  # same answer as "never existed"
    assert alpha.get("/v1/evaluations", params={"client_ref": "bravo-only"}).json()["data"] == []
    assert bravo.get(f"/v1/evaluations/{mine['id']}").status_code == 200
    assert bravo.post(f"/v1/evaluations/{mine['id']}/reevaluate").status_code == 409  # not finished yet


def test_idempotency_key(server: ServerProcess, alpha: httpx.Client, bravo: httpx.Client, img: str) -> None:
    body = example_request(img, client_ref="idem-1")
    first = alpha.post("/v1/evaluations", json=body, headers={"Idempotency-Key": "key-1"})
    assert first.status_code == 202
    # same key, same body (keys in another order, other whitespace): the same evaluation
    reordered = dict(reversed(list(body.items())))
    again = alpha.post("/v1/evaluations", json=reordered, headers={"Idempotency-Key": "key-1"})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    # same key, different body: refused
    changed = alpha.post("/v1/evaluations", json={**body, "client_ref": "idem-2"}, headers={"Idempotency-Key": "key-1"})
    assert changed.status_code == 422 and "Idempotency-Key" in changed.json()["detail"]
    # keys are per org
    other = bravo.post("/v1/evaluations", json=body, headers={"Idempotency-Key": "key-1"})
    assert other.status_code == 202 and other.json()["id"] != first.json()["id"]
    # an invalid body does not burn the key
    bad = alpha.post("/v1/evaluations", json={"task_type": "x"}, headers={"Idempotency-Key": "key-2"})
    assert bad.status_code == 422
    ok = alpha.post(
        "/v1/evaluations", json=example_request(img, client_ref="idem-3"), headers={"Idempotency-Key": "key-2"}
    )
    assert ok.status_code == 202
    assert alpha.post("/v1/evaluations", json=body, headers={"Idempotency-Key": "has space"}).status_code == 422
    assert [e["id"] for e in alpha.get("/v1/evaluations", params={"client_ref": "idem-1"}).json()["data"]] == [
        first.json()["id"]
    ]


def test_idempotency_key_still_being_admitted_is_409(server: ServerProcess, alpha: httpx.Client, img: str) -> None:
    # a first request that has reserved its key but not finished admission (as a slow
    # 12 MB upload would have): reserve it in the store the server uses
    alpha_org = str(uuid.uuid5(uuid.NAMESPACE_URL, "imagejury:org:alpha"))
    body = example_request(img, client_ref="idem-409")
    from imagejury.service.bodies import body_hash as _body_hash

    store = Store(server.db)
    try:
        assert store.reserve_key(alpha_org, "key-409", _body_hash(body), ttl_s=86400, stale_s=60).new
    finally:
        store.close()
    r = alpha.post("/v1/evaluations", json=body, headers={"Idempotency-Key": "key-409"})
    assert r.status_code == 409 and r.headers["retry-after"] == "1"


def test_list_filters_and_cursor_pagination(alpha: httpx.Client, img: str) -> None:
    run_id = str(uuid.uuid4())
    ids = [
        alpha.post("/v1/evaluations", json=example_request(img, client_ref="page", run_id=run_id)).json()["id"]
        for _ in range(3)
    ]
    page1 = alpha.get("/v1/evaluations", params={"client_ref": "page", "limit": 2}).json()
    assert [e["id"] for e in page1["data"]] == ids[::-1][:2] and page1["has_more"]
    page2 = alpha.get(
        "/v1/evaluations", params={"client_ref": "page", "limit": 2, "cursor": page1["next_cursor"]}
    ).json()
    assert [e["id"] for e in page2["data"]] == [ids[0]] and not page2["has_more"] and page2["next_cursor"] is None
    by_run = alpha.get("/v1/evaluations", params={"run_id": run_id, "status": "pending", "embed": "action"}).json()
    assert sorted(e["id"] for e in by_run["data"]) == sorted(ids) and by_run["data"][0]["judges"] is None
    assert alpha.get("/v1/evaluations", params={"status": "completed", "run_id": run_id}).json()["data"] == []
    for params in ({"cursor": "garbage!"}, {"status": "done"}, {"limit": 0}, {"limit": 101}, {"run_id": "x"}):
        assert alpha.get("/v1/evaluations", params=params).status_code == 422, params


def test_oversized_body_is_413_and_never_admitted(alpha: httpx.Client) -> None:
    big = example_request("data:image/png;base64," + "A" * 120_000, client_ref="too-big")
    r = alpha.post("/v1/evaluations", json=big)
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    assert alpha.get("/v1/evaluations", params={"client_ref": "too-big"}).json()["data"] == []


def test_loopback_callback_refused_when_not_allowed(alpha: httpx.Client, img: str) -> None:
    for url in ("http://127.0.0.1:9/hook", "https://localhost/hook", "http://example.com/hook"):
        r = alpha.post("/v1/evaluations", json=example_request(img, callback_url=url))
        assert r.status_code == 422 and "callback_url" in r.json()["detail"], (url, r.text)


def test_burst_past_queue_depth_gets_429_with_retry_after(server: ServerProcess, alpha: httpx.Client, img: str) -> None:
    before = alpha.get("/v1/evaluations", params={"status": "pending", "limit": 100}).json()["data"]
    before += (
        httpx.Client(base_url=server.base_url, headers={"Authorization": "Bearer tok-bravo-0002"})
        .get("/v1/evaluations", params={"status": "pending", "limit": 100})
        .json()["data"]
    )
    room = QUEUE_DEPTH - len(before)
    assert room > 0

    def submit(i: int) -> httpx.Response:
        with server.client("tok-alpha-0001") as c:
            return c.post("/v1/evaluations", json=example_request(img, client_ref=f"burst-{i}"))

    with cf.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(submit, range(room + 10)))
    codes = [r.status_code for r in responses]
    assert codes.count(202) == room and codes.count(429) == 10, codes
    for r in responses:
        if r.status_code == 429:
            assert r.headers["retry-after"] == "7" and "queue is full" in r.json()["detail"]
    assert "imagejury_queue_depth " + f"{float(QUEUE_DEPTH)}" in httpx.get(server.base_url + "/metrics").text


def test_standalone_worker_times_out_jobs_past_their_deadline(server: ServerProcess, alpha: httpx.Client) -> None:
    assert httpx.get(server.base_url + "/readyz").status_code == 503  # API only, no worker yet
    pending = alpha.get("/v1/evaluations", params={"status": "pending", "limit": 100}).json()["data"]
    assert pending
    time.sleep(JOB_TIMEOUT_S + 0.2)  # every job is now past its deadline
    worker = start_worker(server.workdir, server.db, SERVER)
    try:
        for ev in pending:
            done = server.wait_terminal(alpha, ev["id"], timeout=120)
            assert done["status"] == "failed" and done["failure_code"] == "timed_out", done
            assert "job timeout of 1 s" in done["failure_message"]
        deadline = time.monotonic() + 30
        while (r := alpha.get("/readyz")).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert r.status_code == 200 and r.json()["worker"] == "external", r.text
        assert httpx.get(server.base_url + "/readyz").json() == {"status": "ready"}  # no token: no details
    finally:
        worker.terminate()
        worker.wait(20)


def _raw(server: ServerProcess, chunks: list[bytes], pause_s: float) -> bytes:
    """Send ``chunks`` with ``pause_s`` before the last one; what the server answered."""
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        for chunk in chunks[:-1]:
            sock.sendall(chunk)
        time.sleep(pause_s)
        try:
            sock.sendall(chunks[-1])
        except OSError:
            pass  # already closed by the server: what we want
        out = b""
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            out += data
        return out


def test_a_trickled_request_head_is_cut_off_with_408(server: ServerProcess) -> None:
    # before: a client could hold a connection for ever by never finishing its headers
    t0 = time.monotonic()
    got = _raw(server, [b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"X-Slow: 1\r\n\r\n"], pause_s=2.5)
    assert got.startswith(b"HTTP/1.1 408"), got[:200]
    assert time.monotonic() - t0 < 8
    ok = _raw(server, [b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b""], pause_s=0)
    assert ok.startswith(b"HTTP/1.1 200"), ok[:200]


def test_a_trickled_request_body_is_408_and_never_admitted(server: ServerProcess, alpha: httpx.Client) -> None:
    head = (
        b"POST /v1/evaluations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-alpha-0001\r\n"
        b"Content-Type: application/json\r\nContent-Length: 400\r\nConnection: close\r\n\r\n"
    )
    got = _raw(server, [head, b'{"generated_image_url": ', b'"x"}'], pause_s=2.5)
    assert got.startswith(b"HTTP/1.1 408") and b"not received within 1 s" in got, got[:300]
