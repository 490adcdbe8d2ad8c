"""The job worker: claims pending evaluations in batches, judges them, writes results.

One ``Evaluator`` (one model set) per process, loaded once by ``warmup`` before the
first claim. A batch is filled up to ``batch_size`` jobs or ``batch_max_wait_s`` after
its first job, whichever comes first, so the GPU sees full batches under load and a
lone request waits at most that long.

Crash safety: every claimed job carries a lease (``lease_seconds``) that a heartbeat
thread renews while the job is held. If the process dies (``kill -9`` included) the
leases lapse and the next claim — by any worker, this one restarted or another —
puts those jobs back in the queue. A result is written only by the current lease
holder, in one transaction with its webhook outbox row, so each evaluation ends
exactly once. A job whose deadline (submission + ``job_timeout_s``) has passed ends
``failed`` / ``timed_out``: at claim, or after its batch if it ran past it.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PIL import Image

from imagejury.core.config import EvaluatorConfig
from imagejury.core.pipeline import summarize_problems
from imagejury.core.schema import Evaluation, EvaluationRequest
from imagejury.core.verdict.result import failed_evaluation
from imagejury.errors import ImagejuryError, ProcessingError, TimedOutError
from imagejury.service.metrics import Metrics
from imagejury.service.settings import ServerSettings
from imagejury.service.store import Claimed, Store, new_message_id
from imagejury.service.views import meta_for, stored_request
from imagejury.service.webhooks import event_payload

log = logging.getLogger(__name__)


class Worker:
    """Claims and runs jobs in a background thread (``start``) or the caller's (``run``)."""

    def __init__(
        self,
        store: Store,
        settings: ServerSettings,
        config: EvaluatorConfig,
        *,
        metrics: Metrics | None = None,
        evaluator: Any | None = None,
        on_result: Any | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.config = config
        self.metrics = metrics
        self.on_result = on_result  # called after results are written (e.g. wake the webhook sender)
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.started_at = time.time()
        self.ready = False
        self.warm_done = False
        self.problems: dict[str, str] = {}
        self._evaluator = evaluator
        self._held: dict[str, float] = {}  # job id -> deadline
        self._held_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pool = ThreadPoolExecutor(max_workers=settings.decode_threads, thread_name_prefix="imagejury-decode")

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def evaluator(self) -> Any:
        if self._evaluator is None:
            from imagejury.core.pipeline import Evaluator

            # never local paths in the service: an image is a URL, a data: URI or an asset
            self._evaluator = Evaluator(self.config, allow_local_paths=False)
        return self._evaluator

    def start(self) -> None:
        for target, name in ((self.run, "imagejury-worker"), (self._heartbeat_loop, "imagejury-heartbeat")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout)
        with self._held_lock:
            held = list(self._held)
        if held:  # a clean stop gives unfinished jobs straight back instead of waiting out the lease
            self.store.release(self.id, held)
        try:
            self.store.forget_worker(self.id)
        except Exception:  # noqa: BLE001 - best effort at shutdown
            log.debug("could not remove worker heartbeat row", exc_info=True)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def warmup(self) -> None:
        """Load the models of the configured job classes; record what is missing."""
        classes = [getattr(j, "value", j) for j in self.settings.warmup_job_classes]
        try:
            self.problems = dict(self.evaluator.warmup(classes))
        except Exception as exc:  # noqa: BLE001 - reported on /readyz, jobs then fail with the reason
            log.exception("worker warmup failed")
            self.problems = {"warmup": f"{type(exc).__name__}: {exc}"}
        allow_missing = self.config.evaluation.allow_missing_models
        only_missing = all(k != "warmup" for k in self.problems)
        self.ready = not self.problems or (allow_missing and only_missing)
        self.warm_done = True
        if self.problems:
            log.warning(
                "worker warmup problems (%s): %s",
                "serving anyway: --allow-missing-models" if self.ready else "not ready",
                "; ".join(summarize_problems(self.problems)),  # each missing model's how-to once
            )
        self._beat()

    def _beat(self) -> None:
        try:
            self.store.heartbeat(self.id, ready=self.ready, problems=self.problems, started_at=self.started_at)
        except Exception:  # noqa: BLE001
            log.exception("worker heartbeat failed")

    def _heartbeat_loop(self) -> None:
        interval = min(self.settings.lease_seconds / 3, 5.0)
        while not self._stop.wait(interval):
            now = time.time()
            with self._held_lock:
                # a job stuck past its deadline (a hung model) stops being renewed: its lease
                # lapses, and the next claim by any worker ends it timed_out
                held = [i for i, deadline in self._held.items() if now < deadline + self.settings.lease_seconds]
            if held:
                try:
                    self.store.renew(self.id, held, self.settings.lease_seconds)
                except Exception:  # noqa: BLE001 - the next beat retries; the lease has slack
                    log.exception("lease renewal failed")
            self._beat()

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> None:
        if not self.warm_done:
            self.warmup()
        while not self._stop.is_set():
            try:
                batch = self.next_batch()
                if batch:
                    self.process(batch)
            except Exception:  # noqa: BLE001 - a db hiccup must not kill the worker
                log.exception("worker iteration failed; retrying")
                self._stop.wait(1.0)

    def _wait(self, seconds: float) -> None:
        self._wake.wait(max(0.0, seconds))
        self._wake.clear()

    def next_batch(self) -> list[Claimed]:
        """Claim up to ``batch_size`` jobs, waiting at most ``batch_max_wait_s`` to fill."""
        s = self.settings
        jobs = self._claim(s.batch_size)
        if not jobs:
            self._wait(s.poll_interval_s)
            return []
        until = time.monotonic() + s.batch_max_wait_s
        while len(jobs) < s.batch_size and not self._stop.is_set():
            left = until - time.monotonic()
            if left <= 0:
                break
            self._wait(min(left, s.poll_interval_s))
            jobs += self._claim(s.batch_size - len(jobs))
        return jobs

    def _claim(self, n: int) -> list[Claimed]:
        jobs = self.store.claim(self.id, n, self.settings.lease_seconds)
        if jobs:
            with self._held_lock:
                self._held.update({j.id: j.deadline for j in jobs})
        return jobs

    def process(self, jobs: list[Claimed]) -> None:
        """Judge one batch and write each result (or timed_out / processing_failed)."""
        try:
            self._process(jobs)
        finally:  # written or not, these leases are no longer renewed (unwritten ones lapse and re-queue)
            with self._held_lock:
                for j in jobs:
                    self._held.pop(j.id, None)

    def _process(self, jobs: list[Claimed]) -> None:
        t0 = time.perf_counter()
        if self.metrics:
            self.metrics.batch_size.observe(len(jobs))
        now = time.time()
        live: list[tuple[Claimed, EvaluationRequest]] = []
        results: dict[str, Evaluation] = {}
        requests: dict[str, EvaluationRequest] = {}
        for job in jobs:
            try:
                req = requests[job.id] = stored_request(job.request_json)
            except Exception as exc:  # noqa: BLE001 - a row we cannot read back ends failed, not stuck
                log.exception("stored request of %s is unreadable", job.id)
                results[job.id] = _failed_bare(job, "processing_failed", f"stored request unreadable: {exc}")
                continue
            if now > job.deadline:
                results[job.id] = self._timed_out(job, req)
            else:
                live.append((job, req))
        if live:
            results.update(self._judge(live))
        for job in jobs:
            ev = results.get(job.id)
            if ev is None:  # the pipeline answered fewer items than it was given: a bug, reported per job
                error = ProcessingError("the pipeline returned no result for this evaluation")
                ev = failed_evaluation(requests[job.id], meta_for(job, job.org_id), error, time.perf_counter())
            if time.time() > job.deadline and ev.failure_code != "timed_out" and job.id in requests:
                ev = self._timed_out(job, requests[job.id], ran=True)
            self._finish(job, ev)
        if self.metrics:
            self.metrics.batch_seconds.observe(time.perf_counter() - t0)
        if self.on_result is not None:
            self.on_result()

    def _judge(self, live: list[tuple[Claimed, EvaluationRequest]]) -> dict[str, Evaluation]:
        ev = self.evaluator

        def prep(pair: tuple[Claimed, EvaluationRequest]) -> Any:
            job, req = pair
            resolver = _asset_resolver(self.store, job.org_id)
            return ev.prepare(req, meta_for(job, job.org_id), asset_resolver=resolver, allow_local_paths=False)

        out: dict[str, Evaluation] = {}
        prepared: list[Any] = []
        futures = [(job, req, self._pool.submit(prep, (job, req))) for job, req in live]
        for job, req, fut in futures:
            try:
                prepared.append(fut.result())
            except ImagejuryError as exc:
                out[job.id] = failed_evaluation(req, meta_for(job, job.org_id), exc, time.perf_counter())
                _drop_traceback(exc)
            except Exception as exc:  # noqa: BLE001 - never a traceback in the API
                log.exception("preparing %s failed", job.id)
                error = ProcessingError(f"{type(exc).__name__}: {exc}")
                out[job.id] = failed_evaluation(req, meta_for(job, job.org_id), error, time.perf_counter())
                _drop_traceback(exc)
        if prepared:
            # run_prepared fails a broken item alone (the pipeline's isolation policy); what
            # still escapes it broke the whole batch (a device lost), so every job says why
            try:
                evaluations = ev.run_prepared(prepared)
            except Exception as exc:  # noqa: BLE001 - never a traceback in the API
                log.exception("judging a batch of %d failed", len(prepared))
                error = ProcessingError(f"{type(exc).__name__}: {exc}")
                evaluations = [failed_evaluation(p.request, p.meta, error, p.started) for p in prepared]
                _drop_traceback(exc)
            for p, e in zip(prepared, evaluations):
                out[p.meta.id] = e
            self._keep_thumbnails(prepared)
        return out

    def _keep_thumbnails(self, prepared: list[Any]) -> None:
        """A small JPEG per decoded image, for the review page: the service keeps no full images."""
        side = self.settings.thumbnail_px
        if not side:
            return
        try:
            rows = [
                (p.meta.org_id, p.meta.id, thumbnail_jpeg(p.item.image, side))
                for p in prepared
                if p.item is not None and p.meta.org_id is not None
            ]
            self.store.put_thumbnails(rows)
        except Exception:  # noqa: BLE001 - a thumbnail must never fail the evaluations
            log.exception("keeping the thumbnails of a batch of %d failed", len(prepared))

    def _timed_out(self, job: Claimed, req: EvaluationRequest, ran: bool = False) -> Evaluation:
        what = "finished" if ran else "started"
        detail = (
            f"the evaluation was not {what} within the job timeout of {self.settings.job_timeout_s:g} s "
            "after submission"
        )
        return failed_evaluation(req, meta_for(job, job.org_id), TimedOutError(detail), time.perf_counter())

    def _finish(self, job: Claimed, ev: Evaluation) -> None:
        status = getattr(ev.status, "value", ev.status)
        code = getattr(ev.failure_code, "value", ev.failure_code)
        outbox = None
        if ev.callback_url:
            event = "evaluation.completed" if status == "completed" else "evaluation.failed"
            ts = ev.completed_at or ev.updated_at
            payload = event_payload(event, ev.to_api(), ts.isoformat().replace("+00:00", "Z"))
            outbox = (new_message_id(), event, ev.callback_url, payload)
        kept = self.store.finish(
            self.id, job.id, status=status, failure_code=code, result_json=ev.model_dump_json(), outbox=outbox
        )
        if not kept:
            log.warning("result of %s discarded: its lease expired and another worker took it", job.id)
            if self.metrics:
                self.metrics.lost_leases.inc()
            return
        if self.metrics:
            self.metrics.outcome(status, code, job.job_class, time.time() - job.created_at)


def _drop_traceback(exc: BaseException) -> None:
    """Forget where a caught error was raised, once it is logged and turned into results.

    An exception instance that outlives the batch (a cached "model missing" error raised
    again for every batch) would otherwise keep the frames of every batch it passed
    through — their decoded images and feature caches — alive for good."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__


def _asset_resolver(store: Store, org_id: str) -> Any:
    """Asset ids resolve only within the org that uploaded them."""

    def resolve(asset_id: str) -> Any:
        return store.asset_path(org_id, asset_id)

    return resolve


def _failed_bare(job: Claimed, code: str, detail: str) -> Evaluation:
    now_meta = meta_for(job, job.org_id)
    return Evaluation(
        id=job.id,
        org_id=job.org_id,
        status="failed",
        failure_code=code,
        failure_message=detail,
        task_type="unknown",
        generated_image_url="",
        cost=job.cost,
        attempt_number=job.attempt_number,
        created_at=now_meta.created_at,
        submitted_at=now_meta.submitted_at,
        links=now_meta.links,
    )


def thumbnail_jpeg(image: Image.Image, side: int) -> bytes:
    """``image`` shrunk to ``side`` pixels on its longest side, as a JPEG (quality 80)."""
    small = image.convert("RGB")
    small.thumbnail((side, side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=80)
    return buf.getvalue()
