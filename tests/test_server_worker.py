"""The worker in-process on a real store and the real Evaluator, with judging slowed down or
broken on purpose: a job that runs past its deadline ends timed_out, a judge crash ends
processing_failed with the reason, and a result is written once with its outbox row."""

from __future__ import annotations

import gc
import logging
import time
import uuid
import weakref
from typing import Any

import pytest

from imagejury.core.config import EvaluatorConfig
from imagejury.core.pipeline import Evaluator
from imagejury.core.schema import EvaluationRequest
from imagejury.service.settings import ServerSettings
from imagejury.service.store import Store
from imagejury.service.views import pending_evaluation, row_to_api
from imagejury.service.worker import Worker
from tests.support.server import data_uri, example_request, png_bytes


class SlowEvaluator(Evaluator):
    """The real pipeline, with a pause (or a crash) before judging."""

    pause_s = 0.0
    crash: Exception | None = None

    def run_prepared(self, prepared):  # type: ignore[no-untyped-def]
        time.sleep(self.pause_s)
        if self.crash is not None:
            raise self.crash
        return super().run_prepared(prepared)


def _config() -> EvaluatorConfig:
    cfg = EvaluatorConfig()
    return cfg.model_copy(update={"evaluation": cfg.evaluation.model_copy(update={"allow_missing_models": True})})


def _submit(store: Store, settings: ServerSettings, **overrides: Any) -> str:
    req = EvaluationRequest.model_validate(
        example_request(data_uri(png_bytes()), **overrides), context={"allow_loopback_callbacks": True}
    )
    eid, now = str(uuid.uuid4()), time.time()
    pending = pending_evaluation(
        req,
        evaluation_id=eid,
        org_id="11111111-1111-1111-1111-111111111111",
        created_at=now,
        cost="0",
        attempt_number=1,
        parent_id=None,
    )
    store.admit(
        evaluation_id=eid,
        org_id="11111111-1111-1111-1111-111111111111",
        request_json=req.model_dump_json(),
        result_json=pending.model_dump_json(),
        job_class="standard",
        client_ref=None,
        run_id=None,
        cost="0",
        job_timeout_s=settings.job_timeout_s,
        max_queue_depth=100,
        now=now,
    )
    return eid


@pytest.fixture()
def parts(tmp_path):  # type: ignore[no-untyped-def]
    settings = ServerSettings(
        db_path=tmp_path / "w.db",
        job_timeout_s=0.5,
        batch_max_wait_s=0,
        lease_seconds=30,
        warmup_job_classes=[],
        webhook_secret="whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY",
        allow_loopback_callbacks=True,
    )
    store = Store(settings.db_path, synchronous="NORMAL")
    ev = SlowEvaluator(_config(), allow_local_paths=False)
    worker = Worker(store, settings, _config(), evaluator=ev)
    worker.warm_done = True
    yield store, settings, ev, worker
    store.close()


def test_a_job_that_runs_past_its_deadline_ends_timed_out(parts) -> None:  # type: ignore[no-untyped-def]
    store, settings, ev, worker = parts
    eid = _submit(store, settings, callback_url="http://127.0.0.1:9/hook")
    ev.pause_s = 0.8  # longer than the 0.5 s job timeout
    worker.process(worker.next_batch())
    row = store.get_any(eid)
    assert row["status"] == "failed" and row["failure_code"] == "timed_out" and row["completions"] == 1
    api = row_to_api(row, None)
    assert "not finished within the job timeout of 0.5 s" in api["failure_message"]
    (msg,) = store.outbox_rows(eid)
    assert msg["event_type"] == "evaluation.failed"


def test_a_crashing_batch_ends_processing_failed_with_the_reason(parts) -> None:  # type: ignore[no-untyped-def]
    store, settings, ev, worker = parts
    settings.job_timeout_s = 60
    a, b = _submit(store, settings), _submit(store, settings)
    ev.crash = RuntimeError("GPU fell off the bus")
    worker.process(worker.next_batch())
    for eid in (a, b):
        api = row_to_api(store.get_any(eid), None)
        assert api["status"] == "failed" and api["failure_code"] == "processing_failed"
        assert "GPU fell off the bus" in api["failure_message"]
        assert store.outbox_rows(eid) == []  # no callback_url, no webhook


def test_a_job_already_past_its_deadline_is_not_judged(parts) -> None:  # type: ignore[no-untyped-def]
    store, settings, ev, worker = parts
    eid = _submit(store, settings)
    time.sleep(0.6)
    ev.crash = AssertionError("must not be called")
    worker.process(worker.next_batch())
    api = row_to_api(store.get_any(eid), None)
    assert api["failure_code"] == "timed_out" and "not started within" in api["failure_message"]


class _Batch:
    """Stands for a batch's decoded images: alive as long as a frame of that batch is."""


class CachedErrorEvaluator(Evaluator):
    """Raises one cached exception instance for every batch, as a model registry that
    caches "model missing" does: each raise adds the batch's frames to its traceback."""

    cached = RuntimeError("model missing (one cached instance)")
    batches: list[Any] = []

    def run_prepared(self, prepared):  # type: ignore[no-untyped-def]
        batch = _Batch()
        self.batches.append(weakref.ref(batch))
        raise self.cached


def test_the_worker_keeps_no_batch_alive_through_a_cached_error(parts, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # before: the worker logged the error and let it go with its traceback, so the cached
    # instance carried every batch's frames (images, feature caches) for good.
    # (pytest keeps every log record, with its traceback: the worker's logger is muted here)
    monkeypatch.setattr(logging.getLogger("imagejury.service.worker"), "disabled", True)
    store, settings, _ev, _worker = parts
    settings.job_timeout_s = 60
    ev = CachedErrorEvaluator(_config(), allow_local_paths=False)
    worker = Worker(store, settings, _config(), evaluator=ev)
    worker.warm_done = True
    for _ in range(4):
        eid = _submit(store, settings)
        worker.process(worker.next_batch())
        assert row_to_api(store.get_any(eid), None)["failure_code"] == "processing_failed"
    gc.collect()
    assert len(ev.batches) == 4 and [r() for r in ev.batches] == [None] * 4


def test_a_thumbnail_is_kept_at_evaluation_time_for_the_org_only(parts) -> None:  # type: ignore[no-untyped-def]
    import io

    from PIL import Image

    store, settings, ev, worker = parts
    settings.job_timeout_s = 60
    eid = _submit(store, settings)
    worker.process(worker.next_batch())
    org = "11111111-1111-1111-1111-111111111111"
    kept = store.thumbnails(org, [eid])
    thumb = Image.open(io.BytesIO(kept[eid]))
    assert thumb.format == "JPEG" and max(thumb.size) <= settings.thumbnail_px
    assert store.thumbnails("22222222-2222-2222-2222-222222222222", [eid]) == {}


def test_no_thumbnail_when_the_operator_keeps_none(parts) -> None:  # type: ignore[no-untyped-def]
    store, settings, ev, worker = parts
    settings.job_timeout_s = 60
    settings.thumbnail_px = 0
    eid = _submit(store, settings)
    worker.process(worker.next_batch())
    assert store.thumbnails("11111111-1111-1111-1111-111111111111", [eid]) == {}
