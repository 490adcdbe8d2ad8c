"""Issue 15's batch findings, each as the regression test that would have caught it:
poisoned manifest rows, CSV quotes, settings changed on resume, missing models and
devices, exit codes, Ctrl-C, Parquet's last-record rule, a redirect to ``data:``, and
one error-isolation policy in both engines."""

from __future__ import annotations

import argparse
import http.server
import json
import pickle
import threading
from pathlib import Path

import pytest
from PIL import Image

from imagejury.batch import cli as batch_cli
from imagejury.batch.engine import (
    BatchOptions,
    LocalBatch,
    ResultsFile,
    SettingsChangedError,
    encode_record,
    evaluation_id,
    jsonl_to_parquet,
)
from imagejury.batch.manifest import jsonl_row, open_manifest, parse_scalar, read_csv
from imagejury.batch.progress import BatchStats
from imagejury.cli import main
from imagejury.core.pipeline import Evaluator
from tests.support import pipeline_judges as pj
from tests.test_batch_support import records

RED, BLUE = (220, 10, 10), (10, 10, 220)
ROW = '{"generated_image_url": "img/%d.png", "task_type": "image_generation", "client_ref": "r%d"%s}'

#: one poisoned row each; before, every one of them stopped the whole batch (rc 1)
POISONS = {
    "lone surrogate in an attribute": ', "input_attributes": {"style": "\\udfff"}',
    "lone surrogate in client_ref": ', "generation_prompt": "a \\ud800 cat"',
    "5,000-digit integer": ', "input_attributes": {"n": %s}' % ("9" * 5000),
    "JSON nested 100,000 deep": ', "input_attributes": {"k": %s}' % ("[" * 100_000 + "]" * 100_000),
    "object nested 300 deep": ', "input_attributes": {"k": %s}' % ('{"a":' * 300 + "1" + "}" * 300),
    "NaN": ', "input_attributes": {"x": NaN}',
}


def _evaluator(enabled=("t_redness",), **kw) -> Evaluator:
    return Evaluator(pj.make_config(list(enabled), **kw), judges=pj.make_registry())


def _images(root: Path, n: int) -> None:
    (root / "img").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (24, 24), RED if i % 2 == 0 else BLUE).save(root / "img" / f"{i}.png")


def _manifest(root: Path, n: int, poison_at: int | None = None, poison: str = "") -> Path:
    _images(root, n)
    lines = [ROW % (i, i, poison if i == poison_at else "") for i in range(n)]
    path = root / "m.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _run(root: Path, ev: Evaluator | None = None, out: str = "out.jsonl", **opts) -> LocalBatch:
    batch = LocalBatch(
        ev or _evaluator(),
        open_manifest(root / "m.jsonl"),
        root / out,
        BatchOptions(batch_size=8, workers=2, progress=False, **opts),
    )
    batch.run()
    return batch


# ---------------------------------------------------------------- poisoned rows
@pytest.mark.parametrize("poison", list(POISONS.values()), ids=list(POISONS))
def test_a_poisoned_row_51_of_100_fails_alone_in_one_run(tmp_path: Path, poison: str) -> None:
    _manifest(tmp_path, 100, poison_at=50, poison=poison)
    batch = _run(tmp_path)
    recs = records(tmp_path / "out.jsonl")  # every line is strict JSON again
    assert len(recs) == 100 and len({r["id"] for r in recs}) == 100
    statuses = [r["status"] for r in recs]
    assert statuses.count("completed") == 99
    bad = [r for r in recs if r["status"] != "completed"]
    assert len(bad) == 1 and bad[0]["failure_code"] == "invalid_request" and bad[0]["batch_line"] == 51
    assert bad[0]["failure_message"]
    assert batch.stats.completed == 99 and batch.stats.rejected == 1


@pytest.mark.parametrize(
    "poison, says",
    [
        (POISONS["lone surrogate in an attribute"], "lone surrogate"),
        (POISONS["5,000-digit integer"], "4300 digits"),
        (POISONS["JSON nested 100,000 deep"], "nested too deeply"),
        (POISONS["object nested 300 deep"], "nested more than 64 levels"),
        (POISONS["NaN"], "NaN"),
    ],
)
def test_the_refusal_says_what_is_wrong(poison: str, says: str) -> None:
    row = jsonl_row(ROW % (0, 0, poison), 0, 7, None)
    assert row.data is None and says in row.error


def test_a_poisoned_row_through_the_cli_is_rc_0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _manifest(tmp_path, 12, poison_at=5, poison=POISONS["lone surrogate in client_ref"])
    monkeypatch.setattr(batch_cli, "check_models", lambda config: None)
    code = main(
        ["batch", str(tmp_path / "m.jsonl"), "-o", str(tmp_path / "out.jsonl"), "--no-progress", "--workers", "1"]
        + ["--allow-missing-models", "--threads", "1", "--job-class", "quick"]
    )
    assert code == 0
    recs = records(tmp_path / "out.jsonl")
    assert len(recs) == 12 and sum(r["status"] == "rejected" for r in recs) == 1


def test_the_results_encoder_cannot_fail() -> None:
    # what the reader refuses can still not stop a write: it becomes a rejected record
    rec = {"id": "e", "status": "completed", "client_ref": "\udfff", "links": {"batch_row": "r\udfff"}}
    line = encode_record(rec)
    out = json.loads(line)
    assert out["status"] == "rejected" and out["failure_code"] == "invalid_request"
    assert "could not be written" in out["failure_message"] and out["batch_row"] == "r?"
    line.encode("utf-8")
    assert json.loads(encode_record({"id": "n", "x": float("nan")}))["status"] == "rejected"
    assert json.loads(encode_record({"id": "ok", "t": "café"})) == {"id": "ok", "t": "café"}


def test_csv_cells_with_huge_integers_or_deep_json_do_not_raise(tmp_path: Path) -> None:
    assert parse_scalar("9" * 5000) == "9" * 5000  # kept as text, not a ValueError
    path = tmp_path / "m.csv"
    deep = '"' + ("[" * 5000 + "]" * 5000) + '"'
    path.write_text(f"generated_image_url,task_type,input_attributes\na.png,x,{deep}\nb.png,x,\n")
    rows = list(read_csv(path))
    assert len(rows) == 2 and "nested" in rows[0].error and rows[1].data["generated_image_url"] == "b.png"


# ---------------------------------------------------------------- CSV quotes
def test_an_unclosed_quote_in_a_csv_is_a_rejected_row_naming_its_lines(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(
        "generated_image_url,task_type,generation_prompt\n"
        'a.png,x,"a cat\n'  # the quote is never closed: it runs to the end of the file
        "b.png,x,a dog\n"
        "c.png,x,a bird\n"
    )
    rows = list(read_csv(path))
    assert len(rows) == 1 and rows[0].data is None
    assert "lines 2-4" in rows[0].error and "quote" in rows[0].error


def test_a_stray_quote_before_a_quoted_cell_is_refused_and_the_rest_read(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(
        'generated_image_url,task_type,generation_prompt\na.png,x,"a cat\nb.png,x,"a dog, quoted"\nc.png,x,a bird\n'
    )
    rows = list(read_csv(path))
    assert [r.error is not None for r in rows] == [True, False]
    assert rows[1].data["generated_image_url"] == "c.png"


def test_quoted_line_breaks_are_still_one_cell(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text('generated_image_url,task_type,generation_prompt\na.png,x,"two\nlines, ok"\nb.png,x,b\n')
    rows = list(read_csv(path))
    assert [r.data["generation_prompt"] for r in rows] == ["two\nlines, ok", "b"]
    assert [r.line for r in rows] == [2, 4]


# ---------------------------------------------------------------- settings changed on resume
def test_resuming_with_another_prompt_is_refused_and_overwrite_redoes_those_rows(tmp_path: Path) -> None:
    _manifest(tmp_path, 6)
    _run(tmp_path)
    lines = (tmp_path / "m.jsonl").read_text().splitlines()
    lines[2] = ROW % (2, 2, ', "generation_prompt": "a blue square"')  # same client_ref, new prompt
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(SettingsChangedError, match="1 rows .* other settings .*another request.*--overwrite"):
        _run(tmp_path)
    again = _run(tmp_path, overwrite=True)
    assert again.stats.done == 1 and again.stats.already_done == 5
    recs = records(tmp_path / "out.jsonl")
    assert len(recs) == 6
    assert next(r for r in recs if r["client_ref"] == "r2")["generation_prompt"] == "a blue square"


def test_resuming_with_another_model_config_is_refused(tmp_path: Path) -> None:
    _manifest(tmp_path, 4)
    _run(tmp_path)
    with pytest.raises(SettingsChangedError, match="4 with another configuration"):
        _run(tmp_path, ev=_evaluator(enabled=("t_redness", "t_gate")))
    with pytest.raises(SettingsChangedError):
        _run(tmp_path, ev=_evaluator(allow_missing=True))


def test_resuming_with_the_same_settings_skips_done_rows(tmp_path: Path) -> None:
    _manifest(tmp_path, 4)
    _run(tmp_path)
    # batch size, workers and device do not change a verdict: not part of the fingerprint
    again = _run(tmp_path, ev=_evaluator(batch_size=2))
    assert again.stats.done == 0 and again.stats.already_done == 4


def test_records_written_before_fingerprints_still_resume(tmp_path: Path) -> None:
    _manifest(tmp_path, 3)
    _run(tmp_path)
    out = tmp_path / "out.jsonl"
    recs = records(out)
    for r in recs:
        del r["links"]["batch_fingerprint"]
    out.write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert _run(tmp_path).stats.already_done == 3


# ---------------------------------------------------------------- refusals, exit codes, hints
def test_batch_refuses_a_missing_model_naming_it_and_its_judges(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _manifest(tmp_path, 2)
    code = main(
        ["batch", str(tmp_path / "m.jsonl"), "-o", str(tmp_path / "out.jsonl"), "--no-progress"]
        + ["--clip", f"local-dir:{tmp_path / 'no-such-clip'}", "--threads", "1"]
    )
    err = capsys.readouterr().err
    assert code == 3, err
    assert "no-such-clip" in err and "prompt_adherence" in err and "--allow-missing-models" in err
    assert not (tmp_path / "out.jsonl").exists() or not records(tmp_path / "out.jsonl")


def test_local_engine_refuses_a_cuda_device_that_is_not_here(tmp_path: Path, capsys) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    _manifest(tmp_path, 2)
    code = main(["batch", str(tmp_path / "m.jsonl"), "-o", str(tmp_path / "o.jsonl"), "--device", "cuda"])
    assert code == 3 and "no CUDA device" in capsys.readouterr().err


def _args(tmp_path: Path) -> argparse.Namespace:
    return argparse.Namespace(output=str(tmp_path / "o.jsonl"), parquet_out=None, report=None, report_limit=10)


def test_exit_4_when_rows_were_written_but_none_evaluated(tmp_path: Path, capsys) -> None:
    stats = BatchStats()
    stats.add_many([{"status": "failed", "failure_code": "invalid_media"}, {"status": "rejected"}])
    assert batch_cli._finish(_args(tmp_path), None, stats, {}) == batch_cli.EXIT_NOTHING_EVALUATED
    assert "none of the 2 rows" in capsys.readouterr().err
    stats.add({"status": "completed", "overall_passed": False})
    assert batch_cli._finish(_args(tmp_path), None, stats, {}) == 0
    assert batch_cli._finish(_args(tmp_path), None, BatchStats(), {}) == 0  # all done before: fine


def test_failures_outside_the_row_point_to_retry_failed(tmp_path: Path, capsys) -> None:
    stats = BatchStats()
    stats.add_many([{"status": "failed", "failure_code": "processing_failed"}, {"status": "completed"}])
    batch_cli._finish(_args(tmp_path), None, stats, {})
    err = capsys.readouterr().err
    assert "--retry-failed" in err and "processing_failed: 1" in err
    stats = BatchStats()
    stats.add_many([{"status": "failed", "failure_code": "invalid_media"}, {"status": "completed"}])
    batch_cli._finish(_args(tmp_path), None, stats, {})
    assert "--retry-failed" not in capsys.readouterr().err  # the row's own fault: a retry cannot help


def test_ctrl_c_is_one_line_not_a_traceback(tmp_path: Path, monkeypatch, capsys) -> None:
    _manifest(tmp_path, 3)
    monkeypatch.setattr(batch_cli, "check_models", lambda config: None)

    def interrupted(self, on_batch=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(LocalBatch, "run", interrupted)
    code = main(["batch", str(tmp_path / "m.jsonl"), "-o", str(tmp_path / "o.jsonl"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 130
    assert "Traceback" not in err and err.strip().splitlines() == [
        f"interrupted: the rows finished so far are in {tmp_path / 'o.jsonl'}; run the same command again to resume"
    ]


# ---------------------------------------------------------------- Parquet: the last record per id
def test_jsonl_to_parquet_keeps_the_last_record_per_id(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    recs = [
        {"id": "a", "status": "failed", "failure_code": "processing_failed"},
        {"id": "b", "status": "completed", "overall_passed": True},
        {"id": "a", "status": "completed", "overall_passed": False},
    ]
    (tmp_path / "o.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert jsonl_to_parquet(tmp_path / "o.jsonl", tmp_path / "o.parquet", chunk_rows=1) == 2
    rows = {r["id"]: r["status"] for r in pq.read_table(tmp_path / "o.parquet").to_pylist()}
    assert rows == {"a": "completed", "b": "completed"}


# ---------------------------------------------------------------- a redirect to data:
def test_an_image_url_redirecting_to_a_data_uri_is_invalid_media() -> None:
    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(302)
            self.send_header("Location", "data:image/png;base64,iVBORw0KGgo=")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        ev = Evaluator(pj.make_config(["t_redness"]).model_copy(), judges=pj.make_registry())
        ev.config.media.allow_loopback_urls = True
        url = f"http://127.0.0.1:{server.server_port}/x.png"
        result = ev.evaluate({"generated_image_url": url, "task_type": "image_generation"})
    finally:
        server.shutdown()
    assert result.failure_code.value == "invalid_media"
    assert "redirected" in result.failure_message


# ---------------------------------------------------------------- one error-isolation policy
def test_local_engine_fails_only_the_row_that_breaks_a_judge_with_one_run_per_batch(tmp_path: Path) -> None:
    _images(tmp_path, 10)
    lines = [ROW % (i, i, ', "generation_prompt": "explode"' if i == 3 else "") for i in range(10)]
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n")
    ev = _evaluator(enabled=("t_redness", "t_exploding"))
    calls = []
    real = ev.run_prepared
    ev.run_prepared = lambda prepared: calls.append(len(prepared)) or real(prepared)  # type: ignore[method-assign]
    _run(tmp_path, ev)
    by_ref = {r["client_ref"]: r for r in records(tmp_path / "out.jsonl")}
    assert by_ref["r3"]["failure_code"] == "processing_failed" and "t_exploding" in by_ref["r3"]["failure_message"]
    assert all(by_ref[f"r{i}"]["status"] == "completed" for i in range(10) if i != 3)
    assert calls == [8, 2], "the engine re-ran items itself instead of relying on run_prepared"


def test_ray_judge_actor_fails_only_the_row_that_breaks_a_judge(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    from imagejury.batch.engine import decode, intake
    from imagejury.batch.ray_engine import JudgeActor

    _images(tmp_path, 4)
    ev = _evaluator(enabled=("t_redness", "t_exploding"))
    actor = JudgeActor(ev.config.model_dump_json())
    actor.evaluator = ev  # the test judges are not entry points; the actor's code path is the same
    calls = []
    real = ev.run_prepared
    ev.run_prepared = lambda prepared: calls.append(len(prepared)) or real(prepared)  # type: ignore[method-assign]
    eids, payloads = [], []
    for i in range(4):
        row = jsonl_row(ROW % (i, i, ', "generation_prompt": "explode"' if i == 1 else ""), i, None, tmp_path)
        it = intake(row, {}, "cfg")
        prepared = decode(ev, it)
        prepared.item.features = None
        eids.append(evaluation_id(row.row_id))
        payloads.append(pickle.dumps((row.row_id, prepared, it.fingerprint)))
    table = pa.table({"eid": eids, "payload": pa.array(payloads, pa.large_binary())})
    out = [json.loads(t) for t in actor(table).column("record").to_pylist()]
    assert [r["status"] for r in out] == ["completed", "failed", "completed", "completed"]
    assert out[1]["failure_code"] == "processing_failed" and calls == [4]
    assert all(r["links"]["batch_fingerprint"].endswith("-cfg") for r in out)


def test_results_file_done_reads_fingerprints(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    out.write_text(
        json.dumps({"id": "a", "links": {"batch_fingerprint": "x-y"}}) + "\n" + json.dumps({"id": "b"}) + "\n"
    )
    assert ResultsFile(out).done() == {"a": "x-y", "b": None}


def test_a_rejected_row_that_was_fixed_is_evaluated_again_without_overwrite(tmp_path: Path) -> None:
    _manifest(tmp_path, 3)
    lines = (tmp_path / "m.jsonl").read_text().splitlines()
    lines[1] = lines[1].replace('"task_type": "image_generation"', '"task_type": 7')
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n")
    _run(tmp_path)
    assert sorted(r["status"] for r in records(tmp_path / "out.jsonl")) == ["completed", "completed", "rejected"]
    lines[1] = lines[1].replace('"task_type": 7', '"task_type": "image_generation"')
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n")
    again = _run(tmp_path)
    assert again.stats.done == 1 and again.stats.already_done == 2
    assert sorted(r["status"] for r in records(tmp_path / "out.jsonl")) == ["completed"] * 3


def test_a_file_name_that_is_not_utf8_is_a_rejected_row_not_a_crash(tmp_path: Path) -> None:
    import os

    folder = tmp_path / "shots"
    folder.mkdir()
    Image.new("RGB", (24, 24), RED).save(folder / "good.png")
    try:
        (folder / os.fsdecode(b"bad-\xff.png")).write_bytes((folder / "good.png").read_bytes())
    except (OSError, UnicodeError):
        pytest.skip("this filesystem refuses non-UTF-8 names")
    manifest = open_manifest(folder, shared={"task_type": "image_generation"})
    batch = LocalBatch(_evaluator(), manifest, tmp_path / "out.jsonl", BatchOptions(batch_size=4, progress=False))
    batch.run()
    recs = {r["status"]: r for r in records(tmp_path / "out.jsonl")}
    assert sorted(recs) == ["completed", "rejected"]
    assert "not valid UTF-8" in recs["rejected"]["failure_message"]


def test_a_resume_that_skips_earlier_processing_failures_says_retry_failed(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    out.write_text(
        json.dumps({"id": "a", "status": "failed", "failure_code": "processing_failed"})
        + "\n"
        + json.dumps({"id": "b", "status": "failed", "failure_code": "invalid_media"})
        + "\n"
    )
    stats = BatchStats()
    stats.already_done = 2  # this run wrote nothing new: both rows were skipped
    hint = batch_cli.retry_hint(stats, out)
    assert hint and "1 rows" in hint and "processing_failed: 1" in hint and "--retry-failed" in hint


def test_a_judge_that_does_not_set_up_is_exit_3_not_a_traceback(tmp_path: Path, monkeypatch, capsys) -> None:
    from imagejury.judges.registry import JudgeRegistryError

    _manifest(tmp_path, 2)

    def broken(self, job_class):
        raise JudgeRegistryError("entry point 'imagejury.judges: broken' does not load")

    monkeypatch.setattr(Evaluator, "pool", broken)
    code = main(["batch", str(tmp_path / "m.jsonl"), "-o", str(tmp_path / "o.jsonl"), "--no-progress"])
    assert code == 3 and "the judges could not be set up" in capsys.readouterr().err
