"""The local batch engine with small test judges: records, failures, atomic appends, resume."""

from __future__ import annotations

import json
import os
import threading
import uuid
from pathlib import Path

import pytest
from PIL import Image

from imagejury.batch.engine import (
    NAMESPACE,
    BatchOptions,
    LocalBatch,
    ResultsFile,
    comparable,
    jsonl_to_parquet,
)
from imagejury.batch.manifest import open_manifest
from imagejury.core.pipeline import Evaluator
from tests.support import pipeline_judges as pj
from tests.test_batch_support import records, verdicts, write_jsonl

RED, BLUE = (220, 10, 10), (10, 10, 220)


def _evaluator(enabled=("t_redness", "t_exploding", "t_gate"), batch_size: int = 4) -> Evaluator:
    return Evaluator(pj.make_config(list(enabled), batch_size=batch_size), judges=pj.make_registry())


def _manifest(tmp_path: Path, n: int = 10, extra: list[str] = ()) -> Path:
    img = tmp_path / "img"
    img.mkdir(exist_ok=True)
    rows = []
    for i in range(n):
        Image.new("RGB", (32, 32), RED if i % 2 == 0 else BLUE).save(img / f"{i}.png")
        rows.append({"generated_image_url": f"img/{i}.png", "task_type": "image_generation", "client_ref": f"r{i}"})
    return write_jsonl(tmp_path / "m.jsonl", rows, list(extra))


def _run(tmp_path: Path, out: str, ev: Evaluator | None = None, **opts) -> tuple[LocalBatch, list[dict]]:
    batch = LocalBatch(
        ev or _evaluator(),
        open_manifest(tmp_path / "m.jsonl"),
        tmp_path / out,
        BatchOptions(batch_size=4, workers=2, progress=False, **opts),
    )
    batch.run()
    return batch, records(tmp_path / out)


def test_every_kind_of_row_becomes_one_record(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    extra = [
        json.dumps({"generated_image_url": "img/corrupt.png", "task_type": "x", "client_ref": "corrupt"}),
        json.dumps({"generated_image_url": "img/missing.png", "task_type": "x", "client_ref": "missing"}),
        json.dumps(
            {"generated_image_url": "img/0.png", "task_type": "x", "client_ref": "boom", "generation_prompt": "explode"}
        ),
        json.dumps({"generated_image_url": "img/0.png", "client_ref": "no-task"}),
        json.dumps({"generated_image_url": "img/0.png", "task_type": "x", "generation_promt": "typo"}),
        "{not json",
    ]
    _manifest(tmp_path, 6, extra)
    batch, recs = _run(tmp_path, "out.jsonl")
    by_ref = {r.get("client_ref") or r["batch_row"]: r for r in recs}
    assert len(recs) == 12
    assert [by_ref[f"r{i}"]["overall_passed"] for i in range(6)] == [True, False] * 3
    assert by_ref["corrupt"]["status"] == "failed" and by_ref["corrupt"]["failure_code"] == "invalid_media"
    assert "does not exist" in by_ref["missing"]["failure_message"]
    # a judge that raises on one item fails that item only
    assert by_ref["boom"]["failure_code"] == "processing_failed" and "t_exploding" in by_ref["boom"]["failure_message"]
    assert by_ref["no-task"]["status"] == "rejected" and "task_type" in by_ref["no-task"]["failure_message"]
    typo = next(r for r in recs if r.get("status") == "rejected" and "generation_promt" in r["failure_message"])
    assert typo["errors"][0]["loc"] == ["generation_promt"]
    bad_json = next(r for r in recs if "not valid JSON" in (r.get("failure_message") or ""))
    assert bad_json["batch_line"] == 12
    # ids: uuid5 of the row id, nested ids derived from it
    assert by_ref["r0"]["id"] == str(uuid.uuid5(NAMESPACE, "r0"))
    assert by_ref["r0"]["links"]["batch_row"] == "r0"
    judge = by_ref["r0"]["judges"][0]
    assert judge["evaluation_id"] == by_ref["r0"]["id"] and uuid.UUID(judge["id"]).version == 5
    assert batch.stats.completed == 6 and batch.stats.rejected == 3
    assert dict(batch.stats.failed_rows) == {"invalid_media": 2, "processing_failed": 1}


def test_two_runs_write_identical_records(tmp_path: Path) -> None:
    _manifest(tmp_path, 9)
    _, a = _run(tmp_path, "a.jsonl")
    _, b = _run(tmp_path, "b.jsonl", ev=_evaluator(batch_size=3))
    assert [comparable(r) for r in a] == [comparable(r) for r in b]


def test_one_write_and_fsync_per_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _manifest(tmp_path, 10)
    writes, syncs = [], []
    real_write, real_fsync = os.write, os.fsync
    out = tmp_path / "out.jsonl"

    def write(fd, data):
        if os.path.realpath(f"/proc/self/fd/{fd}") == str(out.resolve()):
            writes.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "fsync", lambda fd: syncs.append(fd) or real_fsync(fd))
    _run(tmp_path, "out.jsonl")
    assert [w.count(b"\n") for w in writes] == [4, 4, 2]
    assert all(w.endswith(b"\n") for w in writes)
    assert len(syncs) >= 3


def test_torn_last_line_is_cut_and_its_row_redone(tmp_path: Path) -> None:
    _manifest(tmp_path, 6)
    _, full = _run(tmp_path, "full.jsonl")
    out = tmp_path / "out.jsonl"
    lines = (tmp_path / "full.jsonl").read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:3]) + lines[3][: len(lines[3]) // 2])  # a kill mid-write
    assert ResultsFile(out).done_ids() == {r["id"] for r in full[:3]}
    assert out.read_bytes().endswith(b"\n")
    batch, _ = _run(tmp_path, "out.jsonl")
    assert batch.stats.already_done == 3 and batch.stats.done == 3
    assert verdicts(out) == verdicts(tmp_path / "full.jsonl")


def test_resume_after_an_interrupted_run(tmp_path: Path) -> None:
    _manifest(tmp_path, 11)
    _, full = _run(tmp_path, "full.jsonl")

    class Stop(Exception):
        pass

    def stop_after_first(records):
        raise Stop

    batch = LocalBatch(
        _evaluator(),
        open_manifest(tmp_path / "m.jsonl"),
        tmp_path / "out.jsonl",
        BatchOptions(batch_size=4, workers=2, progress=False),
    )
    with pytest.raises(Stop):
        batch.run(on_batch=stop_after_first)
    assert len(records(tmp_path / "out.jsonl")) == 4
    again, _ = _run(tmp_path, "out.jsonl")
    assert again.stats.already_done == 4 and again.stats.done == 7
    assert verdicts(tmp_path / "out.jsonl") == verdicts(tmp_path / "full.jsonl")
    # a third run has nothing left to do
    third, _ = _run(tmp_path, "out.jsonl")
    assert third.stats.done == 0 and third.stats.already_done == 11


def test_retry_failed_reruns_processing_failures_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = [
        json.dumps(
            {"generated_image_url": "img/0.png", "task_type": "x", "client_ref": "boom", "generation_prompt": "explode"}
        ),
        json.dumps({"generated_image_url": "img/nope.png", "task_type": "x", "client_ref": "missing"}),
    ]
    _manifest(tmp_path, 3, extra)
    _run(tmp_path, "out.jsonl")
    before = {r["client_ref"]: r["failure_code"] for r in records(tmp_path / "out.jsonl")}
    assert before["boom"] == "processing_failed" and before["missing"] == "invalid_media"
    # the cause outside the row is gone (the judge is fixed); the same settings otherwise
    monkeypatch.setattr(
        pj.ExplodingJudge,
        "judge",
        lambda self, batch: [self.result(passed=True, confidence=0.7, reasoning="fixed") for _ in batch],
    )
    batch, recs = _run(tmp_path, "out.jsonl", retry_failed=True)
    assert batch.stats.done == 1  # only the processing failure ran again; invalid media is the row's own
    assert len(recs) == 5 and len({r["id"] for r in recs}) == 5
    assert {r["client_ref"]: r["status"] for r in recs}["boom"] == "completed"


def test_duplicate_row_ids_are_skipped(tmp_path: Path) -> None:
    extra = [json.dumps({"generated_image_url": "img/1.png", "task_type": "x", "client_ref": "r0"})]
    _manifest(tmp_path, 2, extra)
    batch, recs = _run(tmp_path, "out.jsonl")
    assert len(recs) == 2 and batch.stats.duplicates == 1


def test_decoding_runs_in_worker_threads_within_a_bounded_window(tmp_path: Path) -> None:
    _manifest(tmp_path, 40)
    ev = _evaluator(enabled=("t_redness",))
    decoded, judged, threads, ahead = [0], [0], set(), []
    lock = threading.Lock()
    real_prepare, real_run = ev.prepare, ev.run_prepared

    def prepare(*a, **kw):
        threads.add(threading.current_thread().name)
        out = real_prepare(*a, **kw)
        with lock:
            decoded[0] += 1
        return out

    def run_prepared(items):
        with lock:
            ahead.append(decoded[0] - judged[0])
        judged[0] += len(items)
        return real_run(items)

    ev.prepare, ev.run_prepared = prepare, run_prepared  # type: ignore[method-assign]
    batch = LocalBatch(
        ev,
        open_manifest(tmp_path / "m.jsonl"),
        tmp_path / "out.jsonl",
        BatchOptions(batch_size=4, workers=3, prefetch=6, progress=False),
    )
    batch.run()
    assert all(t.startswith("imagejury-decode") for t in threads)
    assert len(records(tmp_path / "out.jsonl")) == 40
    # never more decoded-but-unjudged items than the window plus the batch being formed
    assert max(ahead) <= 6 + 4


def test_parquet_output(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    _manifest(tmp_path, 5, ["{bad"])
    _run(tmp_path, "out.jsonl")
    n = jsonl_to_parquet(tmp_path / "out.jsonl", tmp_path / "out.parquet", chunk_rows=2)
    table = pq.read_table(tmp_path / "out.parquet")
    assert n == 6 == table.num_rows
    rows = table.to_pylist()
    assert [r["overall_passed"] for r in rows[:5]] == [True, False, True, False, True]
    assert rows[5]["status"] == "rejected" and rows[5]["failure_code"] == "invalid_request"
    assert dict(rows[0]["judges_passed"])["t_redness"] is True
    assert json.loads(rows[0]["record_json"])["id"] == rows[0]["id"]


def test_a_second_writer_on_the_same_output_is_refused(tmp_path: Path) -> None:
    from imagejury.batch.engine import OutputBusyError

    _manifest(tmp_path, 2)
    with ResultsFile(tmp_path / "out.jsonl"), pytest.raises(OutputBusyError, match="another imagejury batch"):
        _run(tmp_path, "out.jsonl")
    _run(tmp_path, "out.jsonl")  # free again once the first writer is gone
    assert len(records(tmp_path / "out.jsonl")) == 2
