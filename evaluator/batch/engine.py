"""The local batch engine: stream rows, decode ahead in threads, judge in batches, append results.

Flow::

    manifest rows ──► intake (validate; skip ids already done) ──► decode pool (N threads,
    Evaluator.prepare) ──► bounded window of decoded items ──► Evaluator.run_prepared on
    batches of B (one shared feature cache per batch) ──► one JSONL write per batch

Why it is built this way:

- **Memory flat**: rows are read lazily and at most ``prefetch`` decoded items wait ahead
  of the models, so a million-row manifest needs the memory of a few batches (plus one
  set of row ids for resuming).
- **Models never wait on decoding**: while the judges run on batch *k*, the pool decodes
  batch *k+1* (Pillow and torch both release the GIL). ``draft_size`` in the config lets
  JPEGs decode at reduced scale when judges need only ~224 px.
- **Never lose work**: each batch's lines go to the output in ONE ``write()`` on an
  ``O_APPEND`` descriptor, then ``fsync``. A kill can at worst leave one torn last line;
  ``ResultsFile.scan`` finds it and truncates it before a resumed run appends.
- **Resume**: re-running the same command skips every row whose evaluation id is in the
  output already. The id is ``uuid5(NAMESPACE, row_id)``, so it is the same in every
  run and in the Ray engine; the judge, issue, gate and action ids are derived from it
  too, so two runs over the same manifest write the same ids. Each record keeps a
  fingerprint of its request and of the verdict-changing configuration
  (``links.batch_fingerprint``); a resume whose rows would now be evaluated differently
  is refused (``SettingsChangedError``) unless ``overwrite`` redoes them.
- **A bad row never stops the batch**: unreadable or invalid rows (bad JSON, a lone
  surrogate, nesting past ``manifest.MAX_NESTING``, a number JSON cannot hold) become
  ``rejected`` records; missing or corrupt images become ``failed`` evaluations with
  ``failure_code: invalid_media``; a judge that breaks on one item fails that item
  (``processing_failed``, by ``Evaluator.run_prepared``'s one isolation policy — the
  engine never re-runs items itself) and the rest go on. Lines are written by
  ``encode_record``, which cannot fail.

Output records: a completed or failed evaluation is the API's evaluation JSON
(``Evaluation.to_api()``), with ``links.batch_row`` = the row id. A row that is not a
valid request cannot be an evaluation (it may lack ``task_type`` or the image), so it
is written as ``{"id", "status": "rejected", "failure_code": "invalid_request",
"failure_message", "errors", "batch_row", ...}`` with whichever request fields it had.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagejury.batch.manifest import Manifest, ManifestRow, apply_defaults, canonical_json
from imagejury.batch.progress import BatchProgress, BatchStats
from imagejury.core.intake.media import Decoder
from imagejury.core.pipeline import Evaluator, PreparedItem
from imagejury.core.schema import EvaluationRequest, parse_request
from imagejury.core.verdict.result import EvaluationMeta
from imagejury.errors import ImagejuryError, InvalidRequestError, ProcessingError

log = logging.getLogger(__name__)

#: fixed namespace of batch evaluation ids: uuid5(NAMESPACE, row_id)
NAMESPACE = uuid.UUID("6f1c2b0e-5d7a-4f43-9a8e-2b7f0c9d1e35")
#: failure codes that belong to the row itself; ``--retry-failed`` re-runs the others
ROW_FAILURES = frozenset({"invalid_media", "invalid_request"})
#: request fields echoed in a rejected record when the row had them as strings
_ECHO = ("generated_image_url", "task_type", "generation_prompt", "client_ref")


def evaluation_id(row_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, row_id))


# ---------------------------------------------------------------- settings fingerprints
#: key under a record's ``links`` holding what the row was evaluated with
FINGERPRINT_KEY = "batch_fingerprint"
#: configuration that does not change a verdict: where and how fast the models run
_NOT_FINGERPRINTED = {"models": {"device", "torch_threads"}, "evaluation": {"batch_size"}, "media": {"fetch_timeout_s"}}


def config_fingerprint(config: Any) -> str:
    """12 hex digits over the configuration that can change a verdict: models and their
    weights, judge settings, missing-model policy, draft decoding, media limits."""
    dump = config.model_dump(mode="json", exclude={"server"})
    for section, keys in _NOT_FINGERPRINTED.items():
        for key in keys:
            dump.get(section, {}).pop(key, None)
    return hashlib.sha256(canonical_json(dump).encode("utf-8")).hexdigest()[:12]


def row_fingerprint(row: ManifestRow, defaults: dict[str, Any] | None, config_fp: str) -> str:
    """``REQUEST-CONFIG``: 12 hex digits of the request as evaluated (the row plus the
    command line's defaults), a dash, the config's. A rejected record keeps only the
    request half (its verdict does not depend on the models)."""
    request = apply_defaults(row.data, defaults or {}) if row.data is not None else {"unreadable": row.error}
    return hashlib.sha256(canonical_json(request).encode("utf-8")).hexdigest()[:12] + "-" + config_fp


def settings_changed(old: str | None, new: str) -> str | None:
    """What differs between a stored fingerprint and this run's: None (same, or an old
    record without one), "request" or "configuration"."""
    if not old:
        return None
    old_req, _, old_cfg = old.partition("-")
    new_req, _, new_cfg = new.partition("-")
    if old_req != new_req:
        return "request"
    if old_cfg and old_cfg != new_cfg:
        return "configuration"
    return None


# ---------------------------------------------------------------- records
def stabilise_ids(record: dict[str, Any]) -> dict[str, Any]:
    """Derive every nested id from the evaluation id, so reruns and engines agree."""
    eid = record["id"]
    ns = uuid.UUID(eid)
    for i, judge in enumerate(record.get("judges") or []):
        jid = str(uuid.uuid5(ns, f"judge/{i}/{judge.get('name')}"))
        judge["id"] = jid
        for k, issue in enumerate(judge.get("issues") or []):
            issue["id"] = str(uuid.uuid5(ns, f"issue/{i}/{k}"))
            issue["evaluation_judge_id"] = jid
    for i, gate in enumerate(record.get("gate_failures") or []):
        gate["id"] = str(uuid.uuid5(ns, f"gate/{i}"))
    if isinstance(record.get("action"), dict):
        record["action"]["id"] = str(uuid.uuid5(ns, "action"))
    return record


def evaluation_record(evaluation: Any, row_id: str, fingerprint: str | None = None) -> dict[str, Any]:
    record = stabilise_ids(evaluation.to_api())
    links = dict(record.get("links") or {})
    links["batch_row"] = row_id
    if fingerprint:
        links[FINGERPRINT_KEY] = fingerprint
    record["links"] = links
    return record


def rejected_record(
    row: ManifestRow, detail: str, errors: list[dict[str, Any]] | None = None, fingerprint: str | None = None
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": evaluation_id(row.row_id),
        "status": "rejected",
        "failure_code": "invalid_request",
        "failure_message": detail,
        "errors": errors or [],
        "batch_row": row.row_id,
        "links": {"batch_row": row.row_id, **({FINGERPRINT_KEY: fingerprint} if fingerprint else {})},
    }
    if row.line is not None:  # where to look; the Ray engine cannot know lines, so it is not in `comparable`
        record["batch_line"] = row.line
    for key in _ECHO:
        value = (row.data or {}).get(key)
        if isinstance(value, str):
            record[key] = value[:2000]
    return record


def encode_record(record: dict[str, Any]) -> str:
    """One results line (no newline). Cannot fail: a record that ``json.dumps`` refuses
    (it should not happen — ``manifest.unwritable_reason`` refuses such rows as they are
    read) is replaced by a rejected record that says why, so one row never stops a batch."""
    try:
        text = json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        text.encode("utf-8")  # a lone surrogate passes dumps but not the file's encoding
        return text
    except (ValueError, TypeError, RecursionError, UnicodeEncodeError) as exc:
        log.error("the record of row %r could not be written as JSON: %s", _plain(record.get("batch_row")), exc)
        raw_links = record.get("links")
        links: dict[str, Any] = raw_links if isinstance(raw_links, dict) else {}
        substitute: dict[str, Any] = {
            "id": _plain(record.get("id")),
            "status": "rejected",
            "failure_code": "invalid_request",
            "failure_message": "the result of this row could not be written as JSON "
            f"({type(exc).__name__}: {str(_plain(str(exc)))[:300]}); check the row's text for "
            "invalid Unicode, non-finite numbers or deep nesting",
            "errors": [],
            "batch_row": _plain(record.get("batch_row") or links.get("batch_row")),
            "links": {k: _plain(v) for k, v in links.items() if k in ("batch_row", FINGERPRINT_KEY)},
        }
        return json.dumps(substitute, ensure_ascii=False, separators=(",", ":"))


def _plain(value: Any) -> str | None:
    """A value as text that always encodes (lone surrogates replaced)."""
    if value is None:
        return None
    return str(value).encode("utf-8", "replace").decode("utf-8")


#: keys that change from run to run (clock, durations); everything else is deterministic
VOLATILE_KEYS = frozenset(
    {"created_at", "updated_at", "submitted_at", "completed_at", "eval_duration_ms", "batch_line"}
)


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    """A record without its timestamps and durations: equal for equal results."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in VOLATILE_KEYS}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(record)


# ---------------------------------------------------------------- intake
@dataclass
class Intake:
    """A row after validation: a request to decode, or a rejected record to write."""

    row: ManifestRow
    request: EvaluationRequest | None = None
    meta: EvaluationMeta | None = None
    record: dict[str, Any] | None = None
    fingerprint: str = ""  # row_fingerprint(): written with the result, checked on resume


def intake(row: ManifestRow, defaults: dict[str, Any] | None = None, config_fp: str = "") -> Intake:
    """Validate a manifest row into a request (or a rejected record). Never raises."""
    fingerprint = row_fingerprint(row, defaults, config_fp)
    request_fp = fingerprint.partition("-")[0] + "-"
    if row.error is not None or row.data is None:
        return Intake(row, record=rejected_record(row, row.error or "empty row", fingerprint=request_fp))
    data = apply_defaults(row.data, defaults or {})
    try:
        request = parse_request(data)
    except InvalidRequestError as exc:
        return Intake(row, record=rejected_record(row, exc.detail, exc.errors, fingerprint=request_fp))
    except Exception as exc:  # noqa: BLE001 - a validator's crash is this row's problem alone
        log.exception("validating row %s failed", row.row_id)
        detail = f"the row could not be validated ({type(exc).__name__}: {exc})"
        return Intake(row, record=rejected_record(row, detail, fingerprint=request_fp))
    meta = EvaluationMeta(id=evaluation_id(row.row_id), source="api")
    return Intake(row, request=request, meta=meta, fingerprint=fingerprint)


def decode(evaluator: Evaluator, item: Intake, decoder: Decoder | None = None) -> PreparedItem:
    """Decode one request's images (worker thread). Any failure becomes a failed item.

    ``decoder`` replaces the Pillow decode (``image_decoder``: JPEGs on the GPU on CUDA)."""
    assert item.request is not None and item.meta is not None
    try:
        return evaluator.prepare(
            item.request, item.meta, base_dir=item.row.base_dir, allow_local_paths=True, decoder=decoder
        )
    except ImagejuryError as exc:
        return PreparedItem(request=item.request, meta=item.meta, error=exc)
    except Exception as exc:  # noqa: BLE001 - one row must not stop the batch
        log.exception("decoding row %s failed", item.row.row_id)
        error = ProcessingError(f"could not prepare the image: {type(exc).__name__}: {exc}")
        return PreparedItem(request=item.request, meta=item.meta, error=error)


def image_decoder(evaluator: Evaluator) -> Decoder | None:
    """GPU JPEG decode (nvJPEG) when the evaluator's models run on CUDA, else None (Pillow).
    Same limits and EXIF orientation as the CPU path; any image it cannot take decodes on
    the CPU (``core/intake/gpu_decode.py``)."""
    device = evaluator.config.models.device
    if device == "cpu":
        return None  # no torch import for CPU runs
    from imagejury.core.intake.gpu_decode import device_jpeg_decoder

    try:
        return device_jpeg_decoder(evaluator.config.models.settings().resolved_device)
    except Exception as exc:  # noqa: BLE001 - a decode speed-up must never stop a run
        log.warning("GPU JPEG decode unavailable (%s); decoding on the CPU", exc)
        return None


def judge_prepared(evaluator: Evaluator, prepared: list[PreparedItem]) -> list[Any]:
    """Judge one batch. ``run_prepared`` isolates a failing item itself (imagejury's one
    error-isolation policy), so a row that breaks a judge fails alone."""
    return evaluator.run_prepared(prepared)


# ---------------------------------------------------------------- results file
class OutputBusyError(InvalidRequestError):
    """Another batch is writing to the same output file right now."""


class SettingsChangedError(InvalidRequestError):
    """Rows in the output were evaluated with another request or configuration than
    this run's; resuming would silently keep the old results."""


def retryable(record: dict[str, Any]) -> bool:
    """A failed record whose cause lay outside the row (``--retry-failed`` re-runs it)."""
    return record.get("status") == "failed" and record.get("failure_code") not in ROW_FAILURES


def _changed_message(path: Path, changed: dict[str, list[str]]) -> str:
    what = {
        "request": "another request (prompt or fields, or --task-type/--job-class defaults)",
        "configuration": "another configuration (models, judge settings or --allow-missing-models)",
    }
    parts = [f"{len(ids)} with {what[kind]}" for kind, ids in changed.items() if ids]
    total = sum(len(ids) for ids in changed.values())
    return (
        f"{total} rows already in {path} were evaluated with other settings than this run's: "
        + "; ".join(parts)
        + ". Resuming would keep their old results: pass --overwrite to evaluate them again with "
        "this run's settings, or write to another output"
    )


def reconcile_settings(
    results: ResultsFile,
    manifest: Manifest,
    done: dict[str, str | None],
    *,
    defaults: dict[str, Any],
    config_fp: str,
    overwrite: bool,
) -> set[str]:
    """The ids to skip on resume. Every row already in the output is checked against
    the fingerprint of what this run would evaluate; when any differs, raise
    ``SettingsChangedError`` — or, with ``overwrite``, drop those records to redo them.
    A row that was rejected and has been edited since (the fix of a bad row) is always
    evaluated again: its old record holds no result to keep.

    Reads the manifest once more before the run (only when the output has records)."""
    if not done:
        return set()
    changed: dict[str, list[str]] = {"request": [], "configuration": []}
    fixed: set[str] = set()
    for row in manifest.rows():
        eid = evaluation_id(row.row_id)
        if eid in done:
            old = done[eid]
            what = settings_changed(old, row_fingerprint(row, defaults, config_fp))
            if what and old is not None and old.endswith("-"):  # a rejected record (no config half)
                fixed.add(eid)
            elif what:
                changed[what].append(eid)
    ids = {i for v in changed.values() for i in v}
    if ids and not overwrite:
        raise SettingsChangedError(_changed_message(results.path, changed))
    if fixed:
        log.warning("%d rejected rows were edited since; they are evaluated again", len(fixed))
    if ids:
        log.warning("--overwrite: %d rows evaluated with other settings are evaluated again", len(ids))
    if ids or fixed:
        results.drop_ids(ids | fixed)
    return set(done) - ids - fixed


def _lock(path: Path) -> int:
    """An exclusive, non-blocking advisory lock (POSIX flock); held until the fd closes.

    Two runs appending to one output would interleave and duplicate rows; the second
    is refused instead. Where flock does not exist (Windows) there is no lock.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise OutputBusyError(
            f"another imagejury batch is writing to {path.with_suffix('')} (lock {path}); "
            "wait for it to finish or choose another output"
        ) from None
    return fd


class ResultsFile:
    """The JSONL output: scanned for finished ids, appended one batch per write."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._lock_fd: int | None = None

    def repair_tail(self) -> int:
        """Cut a torn last line (a kill during a write); returns the bytes removed."""
        if not self.path.exists():
            return 0
        size = self.path.stat().st_size
        if size == 0:
            return 0
        with self.path.open("rb+") as fh:
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return 0
            # walk back to the last newline
            pos, chunk = size, 1 << 16
            keep = 0
            while pos > 0:
                start = max(0, pos - chunk)
                fh.seek(start)
                block = fh.read(pos - start)
                idx = block.rfind(b"\n")
                if idx >= 0:
                    keep = start + idx + 1
                    break
                pos = start
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
        removed = size - keep
        log.warning("%s ended in a partial line (%d bytes, from an interrupted run); removed it", self.path, removed)
        return removed

    def records(self) -> Iterator[dict[str, Any]]:
        """Every parseable record, in file order (a corrupt line is logged and skipped)."""
        if not self.path.exists():
            return
        with self.path.open("r", encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    log.warning("%s line %d is not valid JSON; ignored (its row will be evaluated again)", self.path, n)
                    continue
                if isinstance(rec, dict) and "id" in rec:
                    yield rec

    def done_ids(self, *, retry_failed: bool = False) -> set[str]:
        """Ids already in the output (see ``done``)."""
        return set(self.done(retry_failed=retry_failed))

    def done(self, *, retry_failed: bool = False) -> dict[str, str | None]:
        """Id → settings fingerprint (None in records written before fingerprints) of
        every record in the output. With ``retry_failed``, rows that failed for a reason
        outside the row (``processing_failed``, ``timed_out``) are first removed from the
        file so they run again and every row still appears once."""
        self.repair_tail()
        if retry_failed:
            self._drop(retryable)
        out: dict[str, str | None] = {}
        for r in self.records():
            links = r.get("links")
            fp = links.get(FINGERPRINT_KEY) if isinstance(links, dict) else None
            out[str(r["id"])] = fp if isinstance(fp, str) else None
        return out

    def drop_ids(self, ids: set[str]) -> int:
        """Remove the records of ``ids`` (to evaluate them again); returns how many."""
        return self._drop(lambda r: str(r.get("id")) in ids)

    def _drop(self, predicate: Callable[[dict[str, Any]], bool]) -> int:
        if not self.path.exists():
            return 0
        tmp = self.path.with_name(self.path.name + ".compact")
        dropped = 0
        with self.path.open("r", encoding="utf-8", errors="replace") as src, tmp.open("w", encoding="utf-8") as dst:
            for line in src:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(rec, dict) and predicate(rec):
                    dropped += 1
                    continue
                dst.write(line if line.endswith("\n") else line + "\n")
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, self.path)
        if self._fd is not None:  # appends must go to the new file, not the replaced one
            os.close(self._fd)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if dropped:
            log.warning("removed %d failed records from %s to retry them", dropped, self.path)
        return dropped

    def open(self) -> ResultsFile:
        """Take the output's lock (one writer at a time) and open it for appending."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._lock_fd is None:
            self._lock_fd = _lock(self.path.with_name(self.path.name + ".lock"))
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return self

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """All records in one write() of whole lines, then fsync: a kill loses at most this batch."""
        data = "".join(encode_record(r) + "\n" for r in records).encode("utf-8")
        if not data:
            return
        assert self._fd is not None, "ResultsFile.open() first"
        view = memoryview(data)
        while view:  # a regular file takes it in one go; loop only for pathological short writes
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def __enter__(self) -> ResultsFile:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------- options and engine
@dataclass
class BatchOptions:
    batch_size: int = 16  # items per run_prepared call (and per judge call)
    workers: int = 4  # decode threads
    prefetch: int | None = None  # decoded items waiting ahead of the models; None: 2 batches
    defaults: dict[str, Any] = field(default_factory=dict)  # fields a row lacks: task_type, job_class
    retry_failed: bool = False
    overwrite: bool = False  # redo rows already in the output whose settings changed (else refuse)
    progress: bool = True

    def window(self) -> int:
        return self.prefetch if self.prefetch is not None else 2 * self.batch_size + self.workers


@dataclass
class _Entry:
    row: ManifestRow
    future: Future | None = None
    record: dict[str, Any] | None = None
    fingerprint: str = ""


class LocalBatch:
    """Run a manifest through an ``Evaluator`` into a JSONL file (see the module docstring)."""

    def __init__(
        self, evaluator: Evaluator, manifest: Manifest, output: str | Path, options: BatchOptions | None = None
    ) -> None:
        self.options = options or BatchOptions()
        if self.options.batch_size < 1 or self.options.workers < 1 or self.options.window() < 1:
            raise ValueError("batch_size, workers and prefetch must be at least 1")
        self.evaluator = evaluator
        self.manifest = manifest
        self.results = ResultsFile(output)
        self.stats = BatchStats()
        self.config_fp = config_fingerprint(evaluator.config)
        self.decoder = image_decoder(evaluator)

    def run(self, on_batch: Callable[[list[dict[str, Any]]], None] | None = None) -> BatchStats:
        opts = self.options
        with self.results:  # the lock first: nobody else may repair or append meanwhile
            done = reconcile_settings(
                self.results,
                self.manifest,
                self.results.done(retry_failed=opts.retry_failed),
                defaults=opts.defaults,
                config_fp=self.config_fp,
                overwrite=opts.overwrite,
            )
            _count_in_background(self.manifest, self.stats)
            pool = ThreadPoolExecutor(max_workers=opts.workers, thread_name_prefix="imagejury-decode")
            try:
                with BatchProgress(self.stats, enabled=opts.progress) as progress:
                    self._loop(pool, done, progress, on_batch)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)  # on Ctrl-C: drop queued decodes
        return self.stats

    def _loop(
        self,
        pool: ThreadPoolExecutor,
        done: set[str],
        progress: BatchProgress,
        on_batch: Callable[[list[dict[str, Any]]], None] | None,
    ) -> None:
        opts = self.options
        window = opts.window()
        seen: set[str] = set()

        def fresh_rows() -> Iterator[ManifestRow]:
            for row in self.manifest.rows():
                eid = evaluation_id(row.row_id)
                if eid in seen:
                    self.stats.duplicates += 1
                    where = f"line {row.line}" if row.line else f"row {row.index + 1}"
                    log.warning("row id %r appears again (%s); the repeat is skipped", row.row_id, where)
                    continue
                seen.add(eid)
                if eid in done:
                    self.stats.already_done += 1
                    continue
                yield row

        rows = fresh_rows()
        pending: deque[_Entry] = deque()
        decoding = 0

        def fill() -> None:
            nonlocal decoding
            # bounded twice: decoded items, and (for runs of rejected rows) records waiting
            while decoding < window and len(pending) < 4 * window:
                row = next(rows, None)
                if row is None:
                    return
                it = intake(row, opts.defaults, self.config_fp)
                if it.record is not None:
                    pending.append(_Entry(row, record=it.record))
                else:
                    future = pool.submit(decode, self.evaluator, it, self.decoder)
                    pending.append(_Entry(row, future=future, fingerprint=it.fingerprint))
                    decoding += 1

        fill()
        while pending:
            batch: list[_Entry] = []
            n_items = 0
            while pending and n_items < opts.batch_size:
                entry = pending.popleft()
                batch.append(entry)
                if entry.future is not None:
                    n_items += 1
                    decoding -= 1
                fill()  # keep decoding ahead while this batch forms and runs
            prepared = [e.future.result() for e in batch if e.future is not None]
            evaluations = iter(judge_prepared(self.evaluator, prepared) if prepared else [])
            records = []
            for e in batch:
                if e.record is not None:
                    records.append(e.record)
                else:
                    records.append(evaluation_record(next(evaluations), e.row.row_id, e.fingerprint))
            self.results.append(records)
            self.stats.add_many(records)
            if on_batch is not None:
                on_batch(records)
            progress.update()
            fill()


def _count_in_background(manifest: Manifest, stats: BatchStats) -> None:
    """Count the input's rows for the ETA without delaying the first batch (a directory
    of a million files takes a while to walk)."""

    def work() -> None:
        stats.total = manifest.count_rows()

    threading.Thread(target=work, name="imagejury-count", daemon=True).start()


# ---------------------------------------------------------------- parquet
def jsonl_to_parquet(jsonl: str | Path, parquet: str | Path, *, chunk_rows: int = 2048) -> int:
    """Write the results as Parquet: flat columns for filtering plus the full record as JSON.

    Streams in chunks; the last record per id wins (there is one per id unless a file was
    edited by hand). Returns the number of rows written. Needs ``pyarrow``.
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover
        raise RuntimeError("Parquet output needs pyarrow: pip install 'imagejury[parquet]'") from exc
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("batch_row", pa.string()),
            ("status", pa.string()),
            ("failure_code", pa.string()),
            ("overall_passed", pa.bool_()),
            ("weighted_pass_rate", pa.float64()),
            ("task_type", pa.string()),
            ("job_class", pa.string()),
            ("client_ref", pa.string()),
            ("generated_image_url", pa.string()),
            ("primary_action_code", pa.string()),
            ("top_issues", pa.list_(pa.string())),
            ("judges_passed", pa.map_(pa.string(), pa.bool_())),
            ("record_json", pa.string()),
        ]
    )
    source = ResultsFile(jsonl)
    # first pass: where each id's last record is (the file is read twice, never held)
    last = {str(rec["id"]): n for n, rec in enumerate(source.records())}
    tmp = Path(str(parquet) + ".tmp")
    n = 0
    with pq.ParquetWriter(tmp, schema) as writer:
        chunk: list[dict[str, Any]] = []
        for position, rec in enumerate(source.records()):
            if last.get(str(rec["id"])) != position:
                continue  # an earlier record of an id written again later
            url = rec.get("generated_image_url")
            chunk.append(
                {
                    "id": rec.get("id"),
                    "batch_row": (rec.get("links") or {}).get("batch_row"),
                    "status": rec.get("status"),
                    "failure_code": rec.get("failure_code"),
                    "overall_passed": rec.get("overall_passed"),
                    "weighted_pass_rate": rec.get("weighted_pass_rate"),
                    "task_type": rec.get("task_type") if isinstance(rec.get("task_type"), str) else None,
                    "job_class": rec.get("job_class"),
                    "client_ref": rec.get("client_ref"),
                    "generated_image_url": url if isinstance(url, str) else None,
                    "primary_action_code": rec.get("primary_action_code"),
                    "top_issues": [str(x) for x in rec.get("top_issues") or []],
                    "judges_passed": [(j.get("name"), bool(j.get("passed"))) for j in rec.get("judges") or []],
                    "record_json": encode_record(rec),
                }
            )
            if len(chunk) >= chunk_rows:
                writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
                n += len(chunk)
                chunk = []
        if chunk:
            writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
            n += len(chunk)
    os.replace(tmp, parquet)
    return n


__all__ = [
    "BatchOptions",
    "Intake",
    "LocalBatch",
    "NAMESPACE",
    "FINGERPRINT_KEY",
    "OutputBusyError",
    "ResultsFile",
    "SettingsChangedError",
    "config_fingerprint",
    "encode_record",
    "reconcile_settings",
    "retryable",
    "row_fingerprint",
    "settings_changed",
    "comparable",
    "decode",
    "evaluation_id",
    "evaluation_record",
    "intake",
    "judge_prepared",
    "jsonl_to_parquet",
    "rejected_record",
    "stabilise_ids",
]
