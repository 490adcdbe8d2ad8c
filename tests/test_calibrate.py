"""rescore and calibrate: thresholds from an overlay, votes recomputed from stored measurements,
thresholds fitted to labels with cross-validation, and the overlay that carries them."""

from __future__ import annotations

import csv
import dataclasses
import json
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
import tomllib

from imagejury.calibrate.fit import JudgeSet, Objective, TooFewLabels, balanced_accuracy, calibrate_set
from imagejury.calibrate.labels import Labels, judge_sets, read_labels_csv, read_store
from imagejury.calibrate.overlay import Overlay
from imagejury.calibrate.rescore import Rescorer, rescore_file
from imagejury.cli import main
from imagejury.core.config import EvaluatorConfig
from imagejury.core.presets import PRESETS
from imagejury.core.schema import EvaluationRequest
from imagejury.core.verdict.action import decide_action
from imagejury.core.verdict.aggregate import aggregate
from imagejury.core.verdict.result import EvaluationMeta, build_evaluation
from imagejury.errors import InvalidRequestError
from imagejury.judges.base import Judge, JudgeConfig, threshold_lookup
from imagejury.judges.types import GateFailure, JudgeResult, Measurement, decide

DLIB = "dlib_face_recognition_resnet_model_v1"


def _judge(name: str, value: float, threshold: float, *, higher: bool = True, model: str = DLIB, **kw) -> JudgeResult:
    m = Measurement(
        name="similarity" if name == "identity" else "score",
        value=value,
        threshold=threshold,
        higher_is_better=higher,
        units="test units",
        model=model,
    )
    return JudgeResult(
        name=name,
        category=kw.pop("category", "identity"),
        passed=bool(m.passed),
        confidence=0.9,
        weight=kw.pop("weight", 2.0),
        reasoning=f"{name} measured {value}",
        measurements=[m],
        **kw,
    )


def make_record(
    identity: float, *, safety_p: float | None = None, task_type: str = "headshot", client_ref: str | None = None
) -> dict:
    """A record as the evaluator writes it, from judge results with measurements."""
    preset = PRESETS[task_type]
    results = [
        _judge("identity", identity, 0.6, critical="identity" in preset.critical),
        _judge("technical_signals", 0.9, 0.5, category="technical", weight=1.0),
    ]
    if safety_p is not None:
        safe = _judge("safety", safety_p, 0.35, higher=False, category="safety", weight=1.0, model="ViT-B-32:openai")
        if not safe.passed:
            safe.gate_failures = [GateFailure("image", "safety", f"possible nsfw content p={safety_p}")]
        results.append(safe)
    verdict = aggregate(results, pass_threshold=preset.pass_threshold)
    verdict.check_summary["preset"] = preset.name
    action = decide_action(verdict, results, "a portrait")
    req = EvaluationRequest(
        generated_image_url="https://example.com/a.png",
        task_type=task_type,
        generation_prompt="a portrait",
        client_ref=client_ref,
    )
    return build_evaluation(req, EvaluationMeta.new(), results, verdict, action, time.perf_counter()).to_api()


def overlay(text: str, tmp_path: Path) -> Overlay:
    p = tmp_path / "overlay.toml"
    p.write_text(text)
    return Overlay.from_file(p)


# -- the threshold table ------------------------------------------------------------------
def test_threshold_lookup_prefers_exact_name_and_model():
    table = {"similarity": {DLIB: 0.55, "*": 0.5}, "sub": 0.3, "sub:a red hat": 0.4, "p": 0.2}
    assert threshold_lookup(table, "similarity", DLIB, 0.6) == 0.55
    assert threshold_lookup(table, "similarity", "other", 0.6) == 0.5
    assert threshold_lookup(table, "sub:a blue car", "m", 0.9) == 0.3
    assert threshold_lookup(table, "sub:a red hat", "m", 0.9) == 0.4
    assert threshold_lookup(table, "p", "m", 0.9) == 0.2
    assert threshold_lookup(table, "other", "m", 0.9) == 0.9
    assert threshold_lookup({"similarity": {DLIB: 0.55}}, "similarity", "other", 0.6) == 0.6


def test_judge_threshold_for_reads_the_config_overlay():
    class Probe(Judge):
        name, category = "probe", "test"

        def judge(self, batch):
            return []

    assert Probe().threshold_for("score", 0.5) == 0.5
    assert Probe({"calibration": {"score": 0.7}}).threshold_for("score", 0.5) == 0.7
    assert Probe({"calibration": {"score": {"m1": 0.8}}}).threshold_for("score", 0.5, model="m1") == 0.8
    with pytest.raises(ValueError):
        JudgeConfig(calibration={"score": "high"})


def test_a_real_judge_config_and_the_evaluator_config_accept_the_overlay(tmp_path):
    from imagejury.judges.identity import IdentityJudge

    p = tmp_path / "c.toml"
    p.write_text(f'[judges.identity.calibration.similarity]\n"{DLIB}" = 0.55\n')
    config = EvaluatorConfig.from_file(p)
    judge = IdentityJudge(config.judges["identity"])
    assert judge.threshold_for("similarity", 0.6, model=DLIB) == 0.55


# -- rescore --------------------------------------------------------------------------------
def test_rescore_flips_identity_and_the_verdict_follows(tmp_path):
    record = make_record(0.65)
    assert record["overall_passed"] and record["primary_action_code"] == "accept"
    r = Rescorer(overlay("[judges.identity.calibration]\nsimilarity = 0.7\n", tmp_path))
    out = r.rescore(record)
    judge = next(j for j in out["judges"] if j["name"] == "identity")
    assert judge["passed"] is False and judge["measurements"][0]["threshold"] == 0.7
    assert judge["measurements"][0]["passed"] is False and "rescored" in judge["reasoning"]
    assert out["overall_passed"] is False
    assert out["primary_action_code"] == "fix_identity" == out["action"]["primary_action"]
    assert "critical check failed: identity" in out["override_reason"]
    assert r.stats.flips[("identity", "pass->fail")] == 1 and r.stats.verdict_flips["pass->fail"] == 1


def test_rescore_keeps_a_record_whose_votes_do_not_change(tmp_path):
    record = make_record(0.65)
    before = json.dumps(record, sort_keys=True)
    r = Rescorer(overlay("[judges.identity.calibration]\nsimilarity = 0.64\n", tmp_path))
    out = r.rescore(record)
    assert out["overall_passed"] is True and not r.stats.flips
    assert out["judges"][0]["measurements"][0]["threshold"] == 0.64  # the record says what it was judged by
    assert json.loads(before)["overall_passed"] == out["overall_passed"]


def test_rescore_lower_threshold_passes_a_failed_identity(tmp_path):
    record = make_record(0.55)
    assert record["primary_action_code"] == "fix_identity"
    out = Rescorer(overlay("[judges.identity.calibration]\nsimilarity = 0.5\n", tmp_path)).rescore(record)
    assert out["overall_passed"] is True and out["primary_action_code"] == "accept"


def test_rescore_adds_and_drops_the_safety_gate(tmp_path):
    flagged = make_record(0.8, safety_p=0.4)
    assert flagged["gate_failures"] and flagged["primary_action_code"] == "reject"
    out = Rescorer(overlay("[judges.safety.calibration]\nscore = 0.5\n", tmp_path)).rescore(flagged)
    assert not out["gate_failures"] and out["overall_passed"] is True

    clean = make_record(0.8, safety_p=0.3)
    out = Rescorer(overlay("[judges.safety.calibration]\nscore = 0.25\n", tmp_path)).rescore(clean)
    assert [g["module"] for g in out["gate_failures"]] == ["safety"]
    assert out["primary_action_code"] == "reject" and out["overall_passed"] is False


def test_rescore_applies_weights(tmp_path):
    record = make_record(0.65, task_type="image_generation")
    # technical_signals fails under a stricter threshold; its weight decides the rate
    text = "[judges.technical_signals]\nweight = 0.1\n[judges.technical_signals.calibration]\nscore = 0.95\n"
    out = Rescorer(overlay(text, tmp_path)).rescore(record)
    assert out["weighted_pass_rate"] == pytest.approx(2.0 / 2.1, abs=1e-3) and out["overall_passed"] is True
    heavy = "[judges.technical_signals]\nweight = 5.0\n[judges.technical_signals.calibration]\nscore = 0.95\n"
    out = Rescorer(overlay(heavy, tmp_path)).rescore(make_record(0.65, task_type="image_generation"))
    assert out["overall_passed"] is False


def test_rescore_file_streams_and_passes_failed_rows_through(tmp_path):
    src = tmp_path / "r.jsonl"
    rows = [make_record(0.65), {"id": "x", "status": "rejected", "failure_code": "invalid_request"}, make_record(0.8)]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    stats = rescore_file(
        src, overlay("[judges.identity.calibration]\nsimilarity = 0.7\n", tmp_path), tmp_path / "o.jsonl"
    )
    out = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [r.get("overall_passed") for r in out] == [False, None, True]
    assert stats.rows == 3 and stats.completed == 2 and stats.rescored_judges["identity"] == 2
    with pytest.raises(InvalidRequestError):
        rescore_file(src, Overlay(), src)


def test_rescore_refuses_a_bad_overlay(tmp_path):
    with pytest.raises(InvalidRequestError):
        overlay('[judges.identity.calibration]\nsimilarity = "high"\n', tmp_path)
    with pytest.raises(InvalidRequestError):
        Overlay.from_file(tmp_path / "missing.toml")


# -- fitting ----------------------------------------------------------------------------------
def _set(values, labels, threshold=0.5, rule_need=None) -> JudgeSet:
    values, labels = np.asarray(values, float), np.asarray(labels, bool)
    n = len(values)
    return JudgeSet(
        judge="j",
        model="m",
        keys=["score"],
        item=np.arange(n),
        key=np.zeros(n, int),
        value=values,
        sign=np.ones(n),
        stored_threshold=np.full(n, threshold),
        need=np.ones(n, int),
        label=labels,
        stored_vote=values >= threshold,
    )


def test_calibrate_set_finds_a_shifted_threshold_and_cv_improves():
    rng = np.random.default_rng(1)
    values = rng.uniform(0, 1, 200)
    labels = values + rng.normal(0, 0.03, 200) >= 0.7
    report = calibrate_set(_set(values, labels), Objective(), bootstrap=200)
    assert report.before == [0.5] and abs(report.after[0] - 0.7) < 0.05
    assert report.cv_after.mean > report.cv_before.mean + 0.1
    assert report.cv_after.low <= report.cv_after.mean <= report.cv_after.high


def test_max_false_accept_pushes_the_threshold_up():
    rng = np.random.default_rng(2)
    values = np.concatenate([rng.normal(0.8, 0.1, 150), rng.normal(0.5, 0.1, 150)])
    labels = np.arange(300) < 150
    plain = calibrate_set(_set(values, labels), Objective(), bootstrap=0)
    strict = calibrate_set(_set(values, labels), Objective(max_false_accept=0.0), bootstrap=0)
    assert strict.after[0] > plain.after[0]
    assert np.mean(values[~labels] >= strict.after[0]) == 0.0


def test_lower_is_better_measurements_fit_the_other_way():
    values = np.linspace(0, 1, 100)
    labels = values <= 0.3
    js = _set(values, labels)
    js.sign = -np.ones(100)
    js.stored_vote = values <= 0.5
    report = calibrate_set(js, Objective(), bootstrap=0)
    assert abs(report.after[0] - 0.3) < 0.02
    assert balanced_accuracy(js.votes(np.array(report.after)), labels) == 1.0


def test_too_few_labels_of_one_class_is_refused():
    with pytest.raises(TooFewLabels, match="at least 8 of each"):
        calibrate_set(_set(np.linspace(0, 1, 40), np.arange(40) < 3), Objective())


def test_decision_rule_any_is_respected_by_the_flattened_votes():
    js = JudgeSet(
        judge="j",
        model="m",
        keys=["a", "b"],
        item=np.array([0, 0, 1, 1]),
        key=np.array([0, 1, 0, 1]),
        value=np.array([0.9, 0.1, 0.1, 0.1]),
        sign=np.ones(4),
        stored_threshold=np.full(4, 0.5),
        need=np.array([1, 1]),
        label=np.array([True, False]),
        stored_vote=np.array([True, False]),
    )
    ms = [Measurement("a", 0.9, 0.5, True, "u"), Measurement("b", 0.1, 0.5, True, "u")]
    assert js.votes(np.array([0.5, 0.5])).tolist() == [decide(ms, "any"), False]
    js.need = np.array([2, 2])
    assert js.votes(np.array([0.5, 0.5])).tolist() == [decide(ms, "all"), False]


# -- labels -------------------------------------------------------------------------------------
def test_labels_csv_per_judge_wins_over_the_evaluation_label(tmp_path):
    p = tmp_path / "l.csv"
    p.write_text("id,passed,judge\nref-1,1,\nref-1,0,identity\nref-2,pass,\n")
    labels = read_labels_csv(p)
    assert labels.for_judge(["ref-1"], "identity") is False
    assert labels.for_judge(["ref-1"], "safety") is True
    assert labels.for_judge(["ref-2"], "identity") is True
    bad = tmp_path / "b.csv"
    bad.write_text("id,passed\nref-1,maybe\n")
    with pytest.raises(InvalidRequestError, match="must be 1 or 0"):
        read_labels_csv(bad)
    bad.write_text("ident,ok\nref-1,1\n")
    with pytest.raises(InvalidRequestError, match="columns id and passed"):
        read_labels_csv(bad)


def test_judge_sets_group_by_judge_and_model():
    records = [make_record(0.65, client_ref="a"), make_record(0.5, client_ref="b"), make_record(0.7)]
    sets, matched = judge_sets(records, Labels(overall={"a": True, "b": False}))
    assert matched == 2
    identity = next(s for s in sets if s.judge == "identity")
    assert identity.model == DLIB and identity.label.tolist() == [True, False]
    assert identity.value.tolist() == [0.65, 0.5] and identity.stored_vote.tolist() == [True, False]


def test_read_store_reads_feedback_read_only(tmp_path):
    from imagejury.service.store import Store

    db = tmp_path / "s.db"
    Store(db).close()
    rec = make_record(0.65)
    conn = sqlite3.connect(db)
    for org, eid, positive in (("org1", rec["id"], 0), ("org2", "other", 1)):
        conn.execute(
            "INSERT INTO evaluations (id, org_id, status, job_class, request_json, cost, created_at, updated_at, "
            "deadline, feedback_is_positive, result_json) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (eid, org, "completed", "standard", "{}", "0", 0, 0, 0, positive, json.dumps({**rec, "id": eid})),
        )
    conn.commit()
    conn.close()
    records, labels = read_store(db, "org1")
    assert [r["id"] for r in records] == [rec["id"]] and labels.overall == {rec["id"]: False}
    with pytest.raises(InvalidRequestError):
        read_store(tmp_path / "none.db")


# -- the commands end to end ------------------------------------------------------------------------
def test_calibrate_then_rescore_end_to_end(tmp_path, capsys):
    rng = np.random.default_rng(3)
    sims = rng.uniform(0.4, 0.95, 120)
    truth = sims >= 0.75  # the people's line is stricter than the stored 0.6
    results, labels = tmp_path / "r.jsonl", tmp_path / "l.csv"
    with results.open("w") as fh:
        for i, s in enumerate(sims):
            fh.write(json.dumps(make_record(float(s), client_ref=f"img-{i}")) + "\n")
    with labels.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "passed"])
        w.writerows([f"img-{i}", int(t)] for i, t in enumerate(truth))
    out = tmp_path / "c.toml"
    assert main(["calibrate", str(results), "--labels", str(labels), "-o", str(out), "--bootstrap", "200"]) == 0
    printed = capsys.readouterr().out
    assert "identity" in printed and "->" in printed
    text = out.read_text()
    assert "# fitted" in text and "120 labels" in text and "balanced_accuracy" in text
    fitted = tomllib.loads(text)["judges"]["identity"]["calibration"]["similarity"][DLIB]
    assert 0.72 < fitted < 0.78
    assert main(["rescore", str(results), "--config", str(out), "-o", str(tmp_path / "r2.jsonl")]) == 0
    assert "pass->fail" in capsys.readouterr().out
    rescored = [json.loads(line)["overall_passed"] for line in (tmp_path / "r2.jsonl").read_text().splitlines()]
    before = [json.loads(line)["overall_passed"] for line in results.read_text().splitlines()]
    agree = lambda votes: np.mean(np.array(votes) == truth)  # noqa: E731
    assert agree(rescored) > agree(before) + 0.1


def test_calibrate_refuses_clearly_with_too_few_labels(tmp_path, capsys):
    results, labels = tmp_path / "r.jsonl", tmp_path / "l.csv"
    results.write_text("".join(json.dumps(make_record(0.5 + i / 100, client_ref=f"i{i}")) + "\n" for i in range(10)))
    labels.write_text("id,passed\n" + "".join(f"i{i},{int(i > 7)}\n" for i in range(10)))
    assert main(["calibrate", str(results), "--labels", str(labels), "-o", str(tmp_path / "c.toml")]) == 2
    err = capsys.readouterr().err
    assert "too few labels" in err and "2 labelled pass and 8 labelled fail" in err
    assert not (tmp_path / "c.toml").exists()


def test_rescore_in_worker_processes_gives_the_same_file_and_counts(tmp_path):
    src = tmp_path / "r.jsonl"
    src.write_text("".join(json.dumps(make_record(0.5 + i / 100)) + "\n" for i in range(40)))
    ov = overlay("[judges.identity.calibration]\nsimilarity = 0.7\n", tmp_path)
    from imagejury.calibrate import rescore as R

    one = rescore_file(src, ov, tmp_path / "one.jsonl")
    old = R.CHUNK_LINES
    R.CHUNK_LINES = 7  # several chunks, so order across processes is exercised
    try:
        two = rescore_file(src, ov, tmp_path / "two.jsonl", workers=2)
    finally:
        R.CHUNK_LINES = old
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()
    assert one.flips == two.flips and one.rows == two.rows == 40 and one.flips[("identity", "pass->fail")] == 10


def test_a_broken_line_is_a_clear_error_and_leaves_no_output(tmp_path):
    src = tmp_path / "r.jsonl"
    src.write_text(json.dumps(make_record(0.7)) + "\n{not json\n")
    with pytest.raises(InvalidRequestError, match=r"r.jsonl:2: not a JSON line"):
        rescore_file(src, Overlay(), tmp_path / "o.jsonl")
    assert not (tmp_path / "o.jsonl").exists() and not (tmp_path / "o.jsonl.part").exists()


@pytest.mark.skipif(
    not (Path(__file__).resolve().parents[1] / "tests/assets/tiny_shapes_clip").is_dir(), reason="no tiny CLIP"
)
def test_calibration_benchmark_runs_small(tmp_path):
    """benchmarks/calibration.py end to end on a small shapes set and a small rescore file."""
    import torch

    from benchmarks import calibration as bench

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ds = bench.shapes_set(0.9, 20)
        row = bench.evaluate_set(ds, tmp_path)
    finally:
        torch.set_num_threads(before)
    assert row["n"] == "30 / 30" and ds.synthesized in (0, len(ds.results))
    assert row["calibrate"].startswith("prompt_adherence")
    (tmp_path / "s").mkdir()
    speed = bench.speed(64, tmp_path / "s")
    assert speed["rows"] == 64 and speed["flips"] > 0


def test_an_overlay_naming_other_measurements_changes_no_vote(tmp_path):
    record = make_record(0.65)
    record["judges"][0]["passed"] = False  # a vote the measurements alone would not give
    out = Rescorer(overlay("[judges.identity.calibration]\ndistance = 0.1\n", tmp_path)).rescore(record)
    assert out["judges"][0]["passed"] is False


def test_calibrate_from_the_service_store(tmp_path, capsys):
    from imagejury.service.store import Store

    db = tmp_path / "s.db"
    Store(db).close()
    conn = sqlite3.connect(db)
    for i, sim in enumerate(np.linspace(0.45, 0.95, 30)):
        rec = make_record(float(sim))
        conn.execute(
            "INSERT INTO evaluations (id, org_id, status, job_class, request_json, cost, created_at, updated_at, "
            "deadline, feedback_is_positive, result_json) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (rec["id"], "org1", "completed", "standard", "{}", "0", i, i, i, int(sim >= 0.7), json.dumps(rec)),
        )
    conn.commit()
    conn.close()
    before = db.read_bytes()
    out = tmp_path / "c.toml"
    assert main(["calibrate", "--db", str(db), "--org", "org1", "-o", str(out), "--bootstrap", "100"]) == 0
    fitted = tomllib.loads(out.read_text())["judges"]["identity"]["calibration"]["similarity"][DLIB]
    assert 0.68 < fitted < 0.72
    assert db.read_bytes() == before  # read-only
    assert main(["calibrate", "--db", str(db), "--org", "other", "-o", str(out)]) == 2
    assert "no labelled judge vote" in capsys.readouterr().err


def test_a_fit_that_does_not_beat_the_judge_out_of_fold_is_not_written(tmp_path):
    rng = np.random.default_rng(7)
    values = rng.uniform(0, 1, 80)
    labels = rng.uniform(0, 1, 80) < 0.5  # labels unrelated to the score: nothing to learn
    report = calibrate_set(_set(values, labels), Objective(), bootstrap=0)
    assert report.improves == (report.cv_after.mean >= report.cv_before.mean)
    from imagejury.calibrate.cli import overlay_text

    good = calibrate_set(_set(np.linspace(0, 1, 80), np.linspace(0, 1, 80) >= 0.7), Objective(), bootstrap=0)
    assert good.improves
    bad = dataclasses.replace(good, judge="k", improves=False)
    text = overlay_text([good, bad], Objective(), "r.jsonl")
    assert '[judges."j".calibration."score"]' in text and '"k"' not in text.split("\n[", 1)[1]
    assert "kept k" in text
