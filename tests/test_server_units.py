"""Server parts without a server: webhook signing/verification, settings, store invariants."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid

import pytest

from imagejury.service.settings import ServerSettings, SettingsError, org_uuid, parse_tokens
from imagejury.service.store import (
    IdempotencyConflict,
    IdempotencyInProgress,
    QueueFull,
    Store,
    decode_cursor,
    encode_cursor,
)
from imagejury.service.webhooks import WebhookVerificationError, backoff_s, sign, signed_headers, verify

# The published Standard Webhooks test vector (also in Svix's docs and libraries).
VEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VEC_TS = 1614265330
VEC_BODY = b'{"test": 2432232314}'
VEC_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_sign_reproduces_the_standard_webhooks_vector() -> None:
    assert sign(VEC_SECRET, VEC_ID, VEC_TS, VEC_BODY) == VEC_SIG


def test_verify_accepts_the_vector_and_any_of_several_signatures() -> None:
    headers = {"Webhook-Id": VEC_ID, "Webhook-Timestamp": str(VEC_TS), "Webhook-Signature": "v1,bm9wZQ== " + VEC_SIG}
    assert verify(VEC_BODY, headers, VEC_SECRET, now=VEC_TS + 10) == {"test": 2432232314}


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b, h: (b.replace(b"2432232314", b"2432232315"), h), "no matching signature"),
        (lambda b, h: (b, {**h, "webhook-id": "msg_other"}), "no matching signature"),
        (lambda b, h: (b, {**h, "webhook-signature": "v2," + h["webhook-signature"][3:]}), "no matching signature"),
        (lambda b, h: (b, {k: v for k, v in h.items() if k != "webhook-timestamp"}), "missing"),
        (lambda b, h: (b, {**h, "webhook-timestamp": "soon"}), "not an integer"),
    ],
)
def test_verify_rejects_tampering(mutate, message) -> None:  # type: ignore[no-untyped-def]
    headers = {"webhook-id": VEC_ID, "webhook-timestamp": str(VEC_TS), "webhook-signature": VEC_SIG}
    body, headers = mutate(VEC_BODY, headers)
    with pytest.raises(WebhookVerificationError, match=message):
        verify(body, headers, VEC_SECRET, now=VEC_TS)


def test_verify_rejects_stale_and_future_timestamps_and_wrong_secret() -> None:
    body = b'{"a":1}'
    h = signed_headers(VEC_SECRET, "msg_1", body, timestamp=1_000_000)
    assert verify(body, h, VEC_SECRET, now=1_000_000 + 299) == {"a": 1}
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify(body, h, VEC_SECRET, now=1_000_000 + 301)
    with pytest.raises(WebhookVerificationError, match="too new"):
        verify(body, h, VEC_SECRET, now=1_000_000 - 301)
    other = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    with pytest.raises(WebhookVerificationError):
        verify(body, h, other, now=1_000_000)


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    rng = random.Random(0)
    for attempt in range(1, 12):
        full = min(60.0, 1.0 * 2 ** (attempt - 1))
        for _ in range(20):
            d = backoff_s(attempt, 1.0, 60.0, rng)
            assert full / 2 <= d <= full


def test_settings_validate_prices_secret_tokens() -> None:
    s = ServerSettings.load(
        {"prices": {"standard": "0.012"}}, env={"IMAGEJURY_TOKENS": "tok-one-1111=acme , tok-two-2222=beta"}
    )
    assert s.prices == {"standard": "0.012", "quick": "0"}
    assert s.org_for_token()["tok-one-1111"] == str(uuid.uuid5(uuid.NAMESPACE_URL, "imagejury:org:acme"))
    for bad in (
        {"prices": {"standard": "-1"}},
        {"prices": {"standard": "1.2.3"}},
        {"prices": {"gold": "1"}},
        {"webhook_secret": "nope"},
        {"webhook_secret": "whsec_!!"},
        {"tokens": {"short": "x"}},
        {"batch_size": 0},
        {"unknown_key": 1},
    ):
        with pytest.raises(SettingsError):
            ServerSettings.load(bad, env={})
    with pytest.raises(ValueError, match="TOKEN=ORG"):
        parse_tokens("justatoken")
    assert org_uuid("3c90c3cc-0d44-4b50-8888-8dd25736052a") == "3c90c3cc-0d44-4b50-8888-8dd25736052a"


def test_cursor_round_trip_and_garbage() -> None:
    assert decode_cursor(encode_cursor(12345)) == 12345
    for bad in ("", "!!!", "czEyYQ", encode_cursor(1) + "x" * 30):
        with pytest.raises(ValueError):
            decode_cursor(bad)


def _admit(store: Store, n: int = 1, depth: int = 100, **kw) -> list[str]:  # type: ignore[no-untyped-def]
    ids = []
    for _ in range(n):
        eid = str(uuid.uuid4())
        store.admit(
            evaluation_id=eid,
            org_id="o",
            request_json="{}",
            result_json="{}",
            job_class="standard",
            client_ref=None,
            run_id=None,
            cost="0",
            job_timeout_s=60,
            max_queue_depth=depth,
            **kw,
        )
        ids.append(eid)
    return ids


def test_concurrent_claims_never_hand_one_job_to_two_workers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "s.db", synchronous="NORMAL")
    ids = _admit(store, 60)
    got: dict[str, list[str]] = {}

    def claimer(name: str) -> None:
        mine: list[str] = []
        while True:
            batch = store.claim(name, 4, lease_s=30)
            if not batch:
                break
            mine += [c.id for c in batch]
        got[name] = mine

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [i for ids_ in got.values() for i in ids_]
    assert sorted(claimed) == sorted(ids)  # each exactly once
    assert store.status_counts() == {"running": 60}


def test_expired_lease_goes_back_and_only_the_holder_may_finish(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "s.db", synchronous="NORMAL")
    (eid,) = _admit(store)
    store.claim("dead", 1, lease_s=0.05)
    time.sleep(0.1)
    (again,) = store.claim("alive", 1, lease_s=30)
    assert again.id == eid and again.claims == 2
    assert not store.finish("dead", eid, status="completed", failure_code=None, result_json="{}", outbox=None)
    assert store.finish(
        "alive",
        eid,
        status="completed",
        failure_code=None,
        result_json="{}",
        outbox=("msg_1", "evaluation.completed", "https://example.com/h", "{}"),
    )
    assert not store.finish("alive", eid, status="completed", failure_code=None, result_json="{}", outbox=None)
    row = store.get_any(eid)
    assert row["completions"] == 1 and row["status"] == "completed"
    assert [r["id"] for r in store.outbox_rows(eid)] == ["msg_1"]


def test_queue_depth_and_idempotency_states(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "s.db", synchronous="NORMAL")
    _admit(store, 3, depth=3)
    with pytest.raises(QueueFull):
        _admit(store, 1, depth=3)
    assert store.reserve_key("o", "k", "h1", ttl_s=100, stale_s=100).new
    with pytest.raises(IdempotencyInProgress):
        store.reserve_key("o", "k", "h1", ttl_s=100, stale_s=100)
    with pytest.raises(IdempotencyConflict):
        store.reserve_key("o", "k", "h2", ttl_s=100, stale_s=100)
    assert store.reserve_key("other-org", "k", "h2", ttl_s=100, stale_s=100).new  # keys are per org
    (eid,) = _admit(store, 1, depth=100, idempotency_key="k")
    replay = store.reserve_key("o", "k", "h1", ttl_s=100, stale_s=100)
    assert not replay.new and replay.evaluation_id == eid
    time.sleep(0.02)
    assert store.reserve_key("o", "k", "h2", ttl_s=0.01, stale_s=100).new  # expired keys are forgotten


def test_webhook_payload_is_json_with_type_and_data() -> None:
    from imagejury.service.webhooks import event_payload

    body = json.loads(event_payload("evaluation.completed", {"id": "x"}, "2026-01-01T00:00:00Z"))
    assert body == {"type": "evaluation.completed", "timestamp": "2026-01-01T00:00:00Z", "data": {"id": "x"}}


class _Settings:
    """The webhook fields of ServerSettings (the real class, trimmed to what the sender reads)."""

    def __init__(self, allow_loopback: bool) -> None:
        s = ServerSettings(
            webhook_secret=VEC_SECRET,
            allow_loopback_callbacks=allow_loopback,
            webhook_max_attempts=2,
            webhook_backoff_base_s=0.01,
            webhook_backoff_max_s=0.02,
            webhook_timeout_s=2,
        )
        self.__dict__.update(s.model_dump())
        self.webhook_key = s.webhook_key


def _outbox_row(store: Store, url: str) -> str:
    (eid,) = _admit(store)
    store.claim("w", 1, lease_s=30)
    assert store.finish(
        "w",
        eid,
        status="completed",
        failure_code=None,
        result_json="{}",
        outbox=("msg_" + eid[:8], "evaluation.completed", url, '{"data":{}}'),
    )
    return eid


def test_sender_refuses_private_callbacks_and_does_not_follow_redirects(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from imagejury.service.webhooks import WebhookSender

    hits: list[str] = []

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            hits.append(self.path)
            self.send_response(307)
            self.send_header("Location", "http://10.0.0.1/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a) -> None:  # type: ignore[no-untyped-def]
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        store = Store(tmp_path / "s.db", synchronous="NORMAL")
        private = _outbox_row(store, "https://10.0.0.1/hook")
        loop = _outbox_row(store, f"http://127.0.0.1:{httpd.server_address[1]}/hook")
        WebhookSender(store, _Settings(allow_loopback=False)).run_once()
        for eid in (private, loop):  # both refused before connecting: loopback is not allowed here
            (row,) = store.outbox_rows(eid)
            assert row["status"] == "failed" and "refused callback URL" in row["last_error"]
        assert hits == []
        again = _outbox_row(store, f"http://127.0.0.1:{httpd.server_address[1]}/hook")
        WebhookSender(store, _Settings(allow_loopback=True)).run_once()
        (row,) = store.outbox_rows(again)
        assert row["status"] == "failed" and "redirects are not followed" in row["last_error"]
        assert hits == ["/hook"]  # one attempt, the redirect target never contacted
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_serve_with_a_bad_server_section_is_a_clear_error(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from imagejury.cli import main

    cfg = tmp_path / "bad.toml"
    cfg.write_text('[server]\nprices = {standard = "cheap"}\n')
    assert main(["serve", "--config", str(cfg), "--db", str(tmp_path / "x.db")]) == 2
    assert "prices.standard" in capsys.readouterr().err
    cfg.write_text("[server]\nmax_queue_dept = 5\n")
    assert main(["worker", "--config", str(cfg), "--db", str(tmp_path / "x.db")]) == 2
    assert "max_queue_dept" in capsys.readouterr().err


GOOD_TOKEN = "tok-visible-if-leaked-0001"
SECRET = "whsec_" + "c2VjcmV0LXRoYXQtbXVzdC1uZXZlci1wcmludA=="


@pytest.mark.parametrize(
    "env, names",
    [
        ({"IMAGEJURY_TOKENS": f"{GOOD_TOKEN}=alpha,shorty7=bravo"}, "IMAGEJURY_TOKENS"),
        ({"IMAGEJURY_TOKENS": f"{GOOD_TOKEN}=alpha,tok-without-equals-sign"}, "IMAGEJURY_TOKENS"),
        (
            {"IMAGEJURY_TOKENS": f"{GOOD_TOKEN}=alpha", "IMAGEJURY_WEBHOOK_SECRET": SECRET[:-9]},
            "IMAGEJURY_WEBHOOK_SECRET",
        ),
        (
            {"IMAGEJURY_TOKENS": f"{GOOD_TOKEN}=alpha", "IMAGEJURY_WEBHOOK_SECRET": "whsec_c2hvcnQ="},
            "IMAGEJURY_WEBHOOK_SECRET",
        ),
    ],
)
def test_a_bad_token_or_secret_is_one_sentence_that_never_echoes_it(tmp_path, capsys, monkeypatch, env, names) -> None:  # type: ignore[no-untyped-def]
    # before: pydantic's dump printed the whole token table (valid tokens too) or the secret
    from imagejury.cli import main

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for cmd in ("serve", "worker"):
        assert main([cmd, "--db", str(tmp_path / "x.db")]) == 2
        err = capsys.readouterr().err
        assert names in err and len(err.strip().splitlines()) == 1, err
        for secret in (GOOD_TOKEN, "shorty7", "tok-without-equals-sign", SECRET[6:-8], "c2hvcnQ", "input_value"):
            assert secret not in err, err


def test_a_misspelt_server_key_says_did_you_mean_and_names_the_file(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from imagejury.cli import main

    cfg = tmp_path / "serve.toml"
    cfg.write_text('[server]\nmax_queue_dept = 5\ntokens = {"tok-in-the-file-0001" = "alpha", "short" = "b"}\n')
    assert main(["serve", "--config", str(cfg), "--db", str(tmp_path / "x.db")]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'max_queue_depth'" in err and str(cfg) in err and "[server].tokens" in err, err
    assert "tok-in-the-file-0001" not in err and "short'" not in err and len(err.strip().splitlines()) == 1
    assert "validation error" not in err  # no pydantic dump


def test_settings_repr_hides_tokens_and_secret() -> None:
    s = ServerSettings(tokens={GOOD_TOKEN: "alpha"}, webhook_secret=SECRET)
    assert GOOD_TOKEN not in repr(s) and SECRET not in repr(s) and SECRET not in str(s)


def _open_fds() -> int:
    import os

    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self/fd"), reason="counts fds in /proc")
def test_short_lived_threads_do_not_leak_store_connections(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # before: every thread that touched the store opened a connection (db + WAL + shm fds)
    # that was never closed; 200 short-lived threads left ~600 fds open
    store = Store(tmp_path / "s.db", synchronous="NORMAL", pool_size=4)
    (eid,) = _admit(store)
    start = _open_fds()
    for _round in range(10):
        threads = [threading.Thread(target=lambda: store.get("o", eid)) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert store.pool.opened <= 4
    assert _open_fds() - start <= 4 * 3, "fds grew with the number of threads"
    store.close()
    assert store.pool.opened == 0


def test_pool_is_reentrant_and_bounded_under_concurrency(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "s.db", synchronous="NORMAL", pool_size=2)
    ids = _admit(store, 5)
    with store.write() as db:  # a read inside a transaction reuses its connection (no self-deadlock)
        db.execute("UPDATE evaluations SET client_ref='x'")
        assert store.get("o", ids[0])["client_ref"] == "x"
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            for _ in range(20):
                store.list("o", limit=5)
                store.set_feedback("o", ids[0], True, None)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and store.pool.opened <= 2


class _Hook:
    """A loopback receiver answering 204 to every POST."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        hits = self.hits = []  # type: ignore[var-annotated]

        class Ok(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("content-length") or 0))
                hits.append(self.path)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a) -> None:  # type: ignore[no-untyped-def]
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_webhooks_wait_for_the_secret_instead_of_being_dropped(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # before: a message met by a process without the secret was marked failed for good
    from imagejury.service.webhooks import MissingWebhookSecret, WebhookSender, refuse_without_secret

    hook = _Hook()
    try:
        store = Store(tmp_path / "s.db", synchronous="NORMAL")
        eid = _outbox_row(store, hook.url)
        secretless = ServerSettings(allow_loopback_callbacks=True)
        assert WebhookSender(store, secretless).run_once() == 0
        (row,) = store.outbox_rows(eid)
        assert row["status"] == "pending" and row["attempts"] == 0
        with pytest.raises(MissingWebhookSecret, match="1 webhook"):
            refuse_without_secret(store, secretless)
        WebhookSender(store, _Settings(allow_loopback=True)).run_once()
        (row,) = store.outbox_rows(eid)
        assert row["status"] == "delivered" and hook.hits == ["/hook"]
        refuse_without_secret(store, secretless)  # nothing waits now: a secretless worker may start
    finally:
        hook.close()


def test_a_worker_without_the_secret_refuses_to_start_while_webhooks_wait(tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from imagejury.cli import main

    monkeypatch.delenv("IMAGEJURY_WEBHOOK_SECRET", raising=False)
    store = Store(tmp_path / "x.db", synchronous="NORMAL")
    _outbox_row(store, "https://example.com/hook")
    store.close()
    assert main(["worker", "--db", str(tmp_path / "x.db")]) == 2
    assert "IMAGEJURY_WEBHOOK_SECRET" in capsys.readouterr().err


def test_a_callback_host_that_does_not_resolve_is_retried_until_attempts_run_out(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # before: a DNS failure was a policy refusal: one attempt, then dropped
    from imagejury.service.webhooks import WebhookSender

    store = Store(tmp_path / "s.db", synchronous="NORMAL")
    eid = _outbox_row(store, "https://no-such-host.invalid/hook")
    sender = WebhookSender(store, _Settings(allow_loopback=False))  # 2 attempts, backoff 10-20 ms
    sender.run_once()
    (row,) = store.outbox_rows(eid)
    assert row["status"] == "pending" and row["attempts"] == 1 and "did not resolve" in row["last_error"]
    time.sleep(0.05)
    sender.run_once()
    (row,) = store.outbox_rows(eid)
    assert row["status"] == "failed" and row["attempts"] == 2
