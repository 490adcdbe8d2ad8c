"""Admission: turning a submission (or a re-evaluation) into a pending job, exactly once.

The routes call ``Admission.submit`` / ``Admission.reevaluate`` in a worker thread; this
module owns the order of the steps — parse, validate, reserve the Idempotency-Key,
insert the job with the key marked done in the same transaction — and frees the key
when admission fails, so a corrected retry may use it.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from imagejury.core.pipeline import check_known_values
from imagejury.core.schema import Evaluation, EvaluationRequest, parse_request
from imagejury.errors import InvalidRequestError
from imagejury.service.api_errors import ApiError
from imagejury.service.bodies import body_hash, parse_json_body
from imagejury.service.metrics import Metrics
from imagejury.service.settings import ServerSettings
from imagejury.service.store import Conflict, IdempotencyConflict, IdempotencyInProgress, QueueFull, Store
from imagejury.service.views import pending_evaluation, row_to_api, stored_request

IDEMPOTENCY_KEY_MAX = 255
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces

#: (status, body, headers) of an admission answer
Answer = tuple[int, dict[str, Any], dict[str, str]]


def check_idempotency_key(key: str | None) -> str | None:
    """The Idempotency-Key header's value, or a 422 when it is not one we accept."""
    if key is not None and not _KEY_RE.match(key):
        raise ApiError(
            422, f"Idempotency-Key: must be 1-{IDEMPOTENCY_KEY_MAX} printable ASCII characters without spaces"
        )
    return key


def _in_progress() -> ApiError:
    return ApiError(
        409,
        "Idempotency-Key: a request with this key is still being admitted; retry shortly",
        headers={"Retry-After": "1"},
    )


class Admission:
    """Admits jobs into the store's queue on behalf of the API routes."""

    def __init__(
        self,
        store: Store,
        settings: ServerSettings,
        metrics: Metrics,
        wake_worker: Callable[[], None] | None,
        strict: bool = False,
    ) -> None:
        self.strict = strict  # [evaluation] strict: an unknown task type or kind is a 422 here
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.wake_worker = wake_worker

    # -- the two ways in ---------------------------------------------------------------
    def submit(self, org_id: str, body: bytes, key: str | None) -> Answer:
        """POST /v1/evaluations: 202 with the pending evaluation, or 200 for a key replay."""
        data, req = self._parse(body)
        if key is None:
            return self._insert(org_id, req)
        replay = self._reserve(org_id, key, body_hash(data), "request body")
        if replay is not None:
            return replay
        return self._with_key(org_id, key, lambda: self._insert(org_id, req, key=key))

    def reevaluate(self, org_id: str, parent: Any, key: str | None) -> Answer:
        """POST /v1/evaluations/{id}/reevaluate: attempt n+1 of a finished evaluation."""
        if key is not None:
            replay = self._reserve(org_id, key, body_hash({"reevaluate": parent["id"]}), "request", parent)
            if replay is not None:
                return replay
        if parent["status"] not in ("completed", "failed"):
            self._release(org_id, key)
            raise ApiError(409, f"evaluation {parent['id']} is {parent['status']}; re-evaluate it once it has finished")
        status, data, headers = self._with_key(org_id, key, lambda: self._reinsert(org_id, parent, key))
        data["parent_evaluation"] = row_to_api(self.store.get(org_id, parent["id"]) or parent, ())
        return status, data, headers

    # -- steps ---------------------------------------------------------------------------
    def _parse(self, body: bytes) -> tuple[Any, EvaluationRequest]:
        data = parse_json_body(body)
        try:
            req = parse_request(data, allow_loopback_callbacks=self.settings.allow_loopback_callbacks)
            check_known_values(req, strict=self.strict)
        except InvalidRequestError as exc:
            raise ApiError(422, exc.detail, exc.errors) from None
        if req.callback_url and self.settings.webhook_key is None:
            raise ApiError(
                422,
                "callback_url: this server has no webhook signing secret configured "
                "(IMAGEJURY_WEBHOOK_SECRET or [server].webhook_secret), so it cannot send signed callbacks",
            )
        return data, req

    def _reserve(self, org_id: str, key: str, fingerprint: str, what: str, parent: Any = None) -> Answer | None:
        """Reserve the key (None: go on and admit), or the replayed answer of its first use."""
        s = self.settings
        try:
            res = self.store.reserve_key(
                org_id, key, fingerprint, ttl_s=s.idempotency_ttl_s, stale_s=s.admission_stale_s
            )
        except IdempotencyConflict:
            raise ApiError(422, f"Idempotency-Key: already used with a different {what}") from None
        except IdempotencyInProgress:
            raise _in_progress() from None
        if res.new:
            return None
        row = self.store.get(org_id, res.evaluation_id or "")
        if row is None:
            raise ApiError(409, "Idempotency-Key: the evaluation of this key is gone")
        return 200, row_to_api(row, None, parent), {"Idempotent-Replayed": "true"}

    def _with_key(self, org_id: str, key: str | None, admit: Callable[[], Answer]) -> Answer:
        try:
            return admit()
        except BaseException:
            self._release(org_id, key)
            raise

    def _release(self, org_id: str, key: str | None) -> None:
        if key is not None:
            self.store.release_key(org_id, key)

    def _reinsert(self, org_id: str, parent: Any, key: str | None) -> Answer:
        try:
            return self._insert(org_id, stored_request(parent["request_json"]), key=key, parent=parent)
        except Conflict:
            raise ApiError(
                409, f"evaluation {parent['id']} is already superseded; re-evaluate its latest attempt"
            ) from None

    def _insert(self, org_id: str, req: EvaluationRequest, *, key: str | None = None, parent: Any = None) -> Answer:
        job_class = req.job_class.value
        cost = self.settings.prices.get(job_class, "0")
        evaluation_id, now = str(uuid.uuid4()), time.time()
        attempt = (parent["attempt_number"] + 1) if parent is not None else 1
        parent_id = parent["id"] if parent is not None else None
        pending = pending_evaluation(
            req,
            evaluation_id=evaluation_id,
            org_id=org_id,
            created_at=now,
            cost=cost,
            attempt_number=attempt,
            parent_id=parent_id,
        )
        request_json, result_json = req.model_dump_json(), pending.model_dump_json()
        answer = _answer_if_storable(request_json, result_json)  # before admission: no job without its id
        try:
            self.store.admit(
                evaluation_id=evaluation_id,
                org_id=org_id,
                request_json=request_json,
                result_json=result_json,
                job_class=job_class,
                client_ref=req.client_ref,
                run_id=str(req.run_id) if req.run_id else None,
                cost=cost,
                job_timeout_s=self.settings.job_timeout_s,
                max_queue_depth=self.settings.max_queue_depth,
                max_org_depth=self.settings.org_queue_limit(),
                idempotency_key=key,
                parent_id=parent_id,
                attempt_number=attempt,
                now=now,
            )
        except QueueFull as exc:
            self.metrics.submissions.labels("org_share_full" if exc.org else "queue_full").inc()
            detail = (
                f"your org has {exc.depth} evaluations pending, its share of the queue ({exc.limit} of "
                f"{self.settings.max_queue_depth}); retry later"
                if exc.org
                else f"the queue is full ({exc.depth} evaluations pending); retry later"
            )
            raise ApiError(429, detail, headers={"Retry-After": str(self.settings.retry_after_s)}) from None
        except IdempotencyInProgress:
            raise _in_progress() from None
        self.metrics.submissions.labels("accepted").inc()
        if self.wake_worker is not None:
            self.wake_worker()
        return 202, answer, {"Location": f"/v1/evaluations/{evaluation_id}"}


def _answer_if_storable(request_json: str, result_json: str) -> dict[str, Any]:
    """The 202 body, read back the way every later reader (GET, list, the worker) reads the
    row — so a request that could be stored but not served back is a 422, never admitted."""
    try:
        stored_request(request_json)
        answer = Evaluation.model_validate_json(result_json).to_api(None)
        json.dumps(answer, allow_nan=False).encode("utf-8")
    except (ValueError, TypeError, RecursionError, UnicodeError) as exc:
        raise ApiError(422, f"body: this request cannot be stored and served back ({type(exc).__name__})") from None
    answer["parent_evaluation"] = None
    return answer
