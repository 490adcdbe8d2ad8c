"""Signed webhooks in the Standard Webhooks scheme, sent from the store's outbox.

Scheme (https://www.standardwebhooks.com, "Signature scheme"): three headers,

- ``webhook-id``: the message id, the same on every retry (receivers dedupe by it);
- ``webhook-timestamp``: Unix seconds of this attempt;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``,
  space-separated when several signatures are sent; the key is the base64 part of the
  ``whsec_…`` secret, decoded.

Payload: ``{"type": "evaluation.completed" | "evaluation.failed", "timestamp": ISO,
"data": <the evaluation as GET returns it>}``.

Sending: the URL is checked by ``netguard`` on every attempt (a name may resolve
elsewhere by then) and the connection goes to the checked address; redirects are not
followed (a 3xx is a failed attempt that is not retried: the receiver must give its
final URL); non-2xx, timeouts and names that do not resolve (DNS is often briefly
down) are retried with exponential backoff and jitter up to ``webhook_max_attempts``;
a URL refused by policy (a private address) is not retried.

Without a signing secret nothing is sent and nothing is given up: messages stay queued
until a process with the secret sends them (``refuse_without_secret`` stops a worker
from starting secretless while the outbox holds messages).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import random
import threading
import time
from collections.abc import Mapping
from typing import Any

import httpx

from imagejury.core.intake.netguard import check_url
from imagejury.errors import ConfigError, FetchFailedError, InvalidRequestError, UnsafeURLError

log = logging.getLogger(__name__)

SIGNATURE_VERSION = "v1"
USER_AGENT = "imagejury-webhooks/0.1"


class WebhookVerificationError(InvalidRequestError):
    """A webhook failed verification: missing header, bad signature or stale timestamp."""


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        return secret
    if secret.startswith("whsec_"):
        secret = secret[len("whsec_") :]
    return base64.b64decode(secret)


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The ``webhook-signature`` value for one message: ``v1,<base64 digest>``."""
    if isinstance(body, str):
        body = body.encode()
    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), to_sign, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signed_headers(secret: str | bytes, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def verify(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str | bytes,
    *,
    tolerance_s: int = 300,
    now: float | None = None,
) -> Any:
    """Check a received webhook as the spec says and return its parsed JSON body.

    Header names are matched case-insensitively; the timestamp must be within
    ``tolerance_s`` of ``now`` (either side: replay and clock-skew protection); any
    ``v1`` signature in the space-separated list may match (secret rotation), compared
    in constant time. Raises WebhookVerificationError.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id = lower.get("webhook-id")
    ts_text = lower.get("webhook-timestamp")
    sig_text = lower.get("webhook-signature")
    if not msg_id or not ts_text or not sig_text:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        ts = int(ts_text)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from None
    now = time.time() if now is None else now
    if ts < now - tolerance_s:
        raise WebhookVerificationError("webhook-timestamp is too old")
    if ts > now + tolerance_s:
        raise WebhookVerificationError("webhook-timestamp is too new")
    if isinstance(body, str):
        body = body.encode()
    expected = sign(secret, msg_id, ts, body).split(",", 1)[1]
    for candidate in sig_text.split(" "):
        version, _, value = candidate.partition(",")
        if version == SIGNATURE_VERSION and hmac.compare_digest(value.encode(), expected.encode()):
            try:
                return json.loads(body)
            except json.JSONDecodeError:
                raise WebhookVerificationError("signature matches but the body is not JSON") from None
    raise WebhookVerificationError("no matching signature")


def backoff_s(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Delay before retry ``attempt`` (1-based): exponential, capped, "equal jitter"
    (half fixed, half random) so that many failed receivers do not retry in lockstep."""
    uniform = (rng or random).uniform
    d = min(cap, base * (2 ** (attempt - 1)))
    return d / 2 + uniform(0, d / 2)


#: how netguard words a name that did not resolve (transient: retried, unlike a refusal)
_NO_SECRET_LOG_EVERY_S = 60.0


class MissingWebhookSecret(ConfigError):
    """Webhooks wait in the outbox and this process has no secret to sign them with."""


def refuse_without_secret(store: Any, settings: Any) -> None:
    """Raise MissingWebhookSecret when the outbox holds messages and no secret is set: a
    process started so would leave them unsent (they stay queued, but nobody is told)."""
    if settings.webhook_key is not None:
        return
    waiting = store.outbox_pending()
    if waiting:
        raise MissingWebhookSecret(
            f"{waiting} webhook(s) wait in the outbox of {store.path.name} and no signing secret is set: "
            "set IMAGEJURY_WEBHOOK_SECRET (or [server].webhook_secret) to the secret they were accepted with"
        )


class WebhookSender:
    """Delivers due outbox messages; one thread per process, safe beside others (leases)."""

    def __init__(self, store: Any, settings: Any, metrics: Any | None = None) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._no_secret_logged = 0.0

    def start(self) -> None:
        if self.settings.webhook_key is not None:
            n = self.store.requeue_unsigned()
            if n:
                log.info("re-queued %d webhook(s) an earlier version dropped for want of a secret", n)
        self._thread = threading.Thread(target=self._loop, name="imagejury-webhooks", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.run_once()
            except Exception:  # noqa: BLE001 - the loop must survive a bad row or a db hiccup
                log.exception("webhook sender iteration failed")
                sent = 0
            if not sent:
                self._wake.wait(0.5)
                self._wake.clear()

    def run_once(self, limit: int = 16) -> int:
        """Send every due message once; returns how many were attempted."""
        key = self.settings.webhook_key
        if key is None:  # leave them queued: a process with the secret will send them
            self._warn_no_secret()
            return 0
        messages = self.store.claim_outbox(limit, lease_s=self.settings.webhook_timeout_s + 30)
        for msg in messages:
            self._deliver(msg, key)
        return len(messages)

    def _warn_no_secret(self) -> None:
        now = time.monotonic()
        if now - self._no_secret_logged < _NO_SECRET_LOG_EVERY_S:
            return
        self._no_secret_logged = now
        waiting = self.store.outbox_pending()
        if waiting:
            log.warning("%d webhook(s) wait unsent: no signing secret (IMAGEJURY_WEBHOOK_SECRET) is set", waiting)

    def _deliver(self, msg: Any, key: bytes) -> None:
        try:
            ip = check_url(msg.url, allow_loopback=self.settings.allow_loopback_callbacks)
        except FetchFailedError as exc:  # DNS down or the name not there (yet): retried like a 5xx
            self._retry_or_give_up(msg, f"callback host did not resolve: {exc.reason}")
            return
        except UnsafeURLError as exc:
            self._record(msg, False, True, 0, f"refused callback URL: {exc.reason}", "refused")
            return
        body = msg.payload.encode()
        status, error = _attempt(msg.url, ip, body, signed_headers(key, msg.id, body), self.settings.webhook_timeout_s)
        if status is not None and 200 <= status < 300:
            self._record(msg, True, False, 0, None, "delivered")
        elif status is not None and 300 <= status < 400:
            self._record(msg, False, True, 0, f"HTTP {status}: redirects are not followed", "redirect")
        else:
            self._retry_or_give_up(msg, error)

    def _retry_or_give_up(self, msg: Any, error: str | None) -> None:
        attempt = msg.attempts + 1
        max_attempts = self.settings.webhook_max_attempts
        give_up = attempt >= max_attempts
        delay = backoff_s(attempt, self.settings.webhook_backoff_base_s, self.settings.webhook_backoff_max_s)
        log.info(
            "webhook %s to evaluation %s failed (%s); attempt %d/%d%s",
            msg.id,
            msg.evaluation_id,
            error,
            attempt,
            max_attempts,
            "; giving up" if give_up else f"; retry in {delay:.1f} s",
        )
        self._record(msg, False, give_up, delay, error, "gave_up" if give_up else "retry")

    def _record(self, msg: Any, delivered: bool, give_up: bool, delay: float, error: str | None, outcome: str) -> None:
        self.store.outbox_result(msg.id, delivered=delivered, give_up=give_up, next_in_s=delay, error=error)
        if self.metrics is not None:
            self.metrics.webhook(outcome)
        if give_up and not delivered:
            log.warning("webhook %s for evaluation %s not delivered: %s", msg.id, msg.evaluation_id, error)


def _attempt(url: str, ip: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int | None, str | None]:
    """One POST: (HTTP status, None) or (None, why it failed) — never raises for the network."""
    try:
        status = _post_pinned(url, ip, body, headers, timeout)
    except httpx.TimeoutException:
        return None, f"timed out after {timeout:g} s"
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return status, None if 200 <= status < 300 else f"HTTP {status}"


def _post_pinned(url: str, ip: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST to the checked address (no second DNS lookup), never following redirects."""
    from imagejury.core.intake.media import pinned_request

    target, host_headers, extensions = pinned_request(httpx.URL(url), ip)
    send_headers = {"Host": host_headers["Host"], **headers}
    with httpx.Client(trust_env=False, follow_redirects=False, timeout=timeout) as client:
        resp = client.post(target, content=body, headers=send_headers, extensions=extensions)
        return resp.status_code


def event_payload(event_type: str, evaluation: dict[str, Any], timestamp_iso: str) -> str:
    return json.dumps({"type": event_type, "timestamp": timestamp_iso, "data": evaluation}, separators=(",", ":"))
