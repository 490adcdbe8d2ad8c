"""Crash safety and the redirect guard against a real server with a short lease.

kill -9 while a batch is claimed and leased, restart on the same store: every
evaluation completes exactly once (one result write, one outbox message, one
webhook id). The server here allows loopback image URLs and callbacks (local test
setting) so that a loopback redirector can test that the redirect's private target is
refused before any connection.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from imagejury.service.store import Store
from imagejury.service.webhooks import verify
from tests.support.server import (
    WEBHOOK_SECRET,
    HookReceiver,
    Redirector,
    ServerProcess,
    data_uri,
    example_request,
    png_bytes,
)

SERVER = {
    "lease_seconds": 2.0,
    "batch_size": 4,
    "batch_max_wait_s": 2.0,  # the worker holds its first claim while it waits to fill the batch
    "allow_loopback_callbacks": True,
    "webhook_backoff_base_s": 0.2,
    "webhook_backoff_max_s": 1.0,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    srv = ServerProcess(
        tmp_path_factory.mktemp("recovery"), server=SERVER, extra_args=["--allow-loopback-urls"]
    ).start()
    yield srv
    srv.stop()


def _rows(server: ServerProcess) -> dict[str, dict]:
    store = Store(server.db)
    try:
        with store.read() as db:
            rows = db.execute("SELECT id, status, claims, completions, lease_owner FROM evaluations").fetchall()
        return {r["id"]: dict(r) for r in rows}
    finally:
        store.close()


def test_kill_9_mid_batch_then_restart_completes_each_exactly_once(server: ServerProcess) -> None:
    rx = HookReceiver()
    try:
        with server.client() as c:
            ids = [
                c.post(
                    "/v1/evaluations",
                    json=example_request(data_uri(png_bytes(color, "circle", size=512, seed=i)), callback_url=rx.url()),
                ).json()["id"]
                for i, color in enumerate(["red", "green", "blue", "yellow", "purple", "orange"])
            ]
        # wait for a full batch (4 leased jobs): the worker then starts decoding and judging at once
        deadline = time.monotonic() + 60
        running: list[str] = []
        while time.monotonic() < deadline:
            running = [i for i, r in _rows(server).items() if r["status"] == "running"]
            if len(running) >= SERVER["batch_size"]:
                break
            time.sleep(0.02)
        assert running, "the worker never claimed a job"
        time.sleep(0.1)  # inside the batch: decoding / judging (512 px images take a while on CPU)
        server.kill()  # SIGKILL: no cleanup, leases stay in the store
        at_kill = _rows(server)
        held = [i for i, r in at_kill.items() if r["status"] == "running"]
        assert held and all(at_kill[i]["lease_owner"] for i in held)

        server.start()  # same store; the dead worker's leases expire and go back to the queue
        with server.client() as c:
            for eid in ids:
                done = server.wait_terminal(c, eid)
                assert done["status"] == "completed", done.get("failure_message")
        after = _rows(server)
        for eid in ids:
            assert after[eid]["completions"] == 1  # one result write
        for eid in held:
            assert after[eid]["claims"] >= 2  # claimed by the dead worker, then again after restart
        store = Store(server.db)
        try:
            for eid in ids:
                assert len(store.outbox_rows(eid)) == 1  # one webhook message per evaluation
        finally:
            store.close()
        for eid in ids:
            hooks = rx.wait_for(eid)
            assert len({h.headers["webhook-id"] for h in hooks}) == 1
            assert verify(hooks[0].body, hooks[0].headers, WEBHOOK_SECRET)["data"]["status"] == "completed"
    finally:
        rx.close()


def test_redirect_to_a_private_address_is_refused_before_connecting(server: ServerProcess) -> None:
    redirector = Redirector("http://10.0.0.1/image.png")
    try:
        with server.client() as c:
            eid = c.post("/v1/evaluations", json=example_request(redirector.url())).json()["id"]
            done = server.wait_terminal(c, eid)
        assert done["failure_code"] == "invalid_media"
        assert "10.0.0.1" in done["failure_message"] and "not a public address" in done["failure_message"]
        assert redirector.hits == 1  # the first (loopback, allowed here) hop was fetched; the target never was
    finally:
        redirector.close()


def test_loopback_image_url_works_when_the_operator_allows_it(server: ServerProcess, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    (tmp_path / "img.png").write_bytes(png_bytes("orange", "square"))

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):  # type: ignore[no-untyped-def]
            super().__init__(*a, directory=str(tmp_path), **kw)

        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with server.client() as c:
            url = f"http://127.0.0.1:{httpd.server_address[1]}/img.png"
            eid = c.post("/v1/evaluations", json=example_request(url)).json()["id"]
            assert server.wait_terminal(c, eid)["status"] == "completed"
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert json.loads(httpx.get(server.base_url + "/healthz").text) == {"status": "ok"}
