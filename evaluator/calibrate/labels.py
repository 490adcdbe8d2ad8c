"""People's labels, from a CSV file or the service's store, matched to stored results.

A labels CSV has columns ``id`` (an evaluation id, a ``client_ref`` or a batch row id) and
``passed`` (1/0; also true/false, pass/fail, yes/no), and optionally ``judge``: a row with a
judge labels that judge's vote, a row without one labels the whole evaluation (and so every
judge in it that has no label of its own). The batch report's labelling exports this file.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imagejury.calibrate.fit import JudgeSet
from imagejury.errors import InvalidRequestError

TRUE_WORDS = frozenset({"1", "true", "pass", "passed", "yes", "y", "accept", "approve", "approved"})
FALSE_WORDS = frozenset({"0", "false", "fail", "failed", "no", "n", "reject", "rejected"})


@dataclass
class Labels:
    """Labels by evaluation key: the whole evaluation, and per judge."""

    overall: dict[str, bool] = field(default_factory=dict)
    by_judge: dict[tuple[str, str], bool] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.overall) + len(self.by_judge)

    def for_judge(self, keys: Iterable[str], judge: str) -> bool | None:
        keys = list(keys)
        for key in keys:
            if (key, judge) in self.by_judge:
                return self.by_judge[(key, judge)]
        for key in keys:
            if key in self.overall:
                return self.overall[key]
        return None

    def known(self, keys: Iterable[str]) -> bool:
        ks = set(keys)
        return bool(ks & self.overall.keys()) or any(k in ks for k, _ in self.by_judge)


def parse_passed(text: str, where: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise InvalidRequestError(f"{where}: 'passed' must be 1 or 0 (or true/false, pass/fail), got {text!r}")


def read_labels_csv(path: str | Path) -> Labels:
    p = Path(path)
    if not p.is_file():
        raise InvalidRequestError(f"labels file not found: {p}")
    labels = Labels()
    with p.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = {"id", "passed"} - set(reader.fieldnames or [])
        if missing:
            raise InvalidRequestError(
                f"{p}: the labels CSV needs the columns id and passed (optionally judge); missing {sorted(missing)}"
            )
        for n, row in enumerate(reader, 2):
            key = (row.get("id") or "").strip()
            if not key:
                raise InvalidRequestError(f"{p}:{n}: empty id")
            passed = parse_passed(row.get("passed") or "", f"{p}:{n}")
            judge = (row.get("judge") or "").strip()
            if judge:
                labels.by_judge[(key, judge)] = passed
            else:
                labels.overall[key] = passed
    if not len(labels):
        raise InvalidRequestError(f"{p}: no labels in the file")
    return labels


def read_store(db: str | Path, org_id: str | None = None) -> tuple[list[dict[str, Any]], Labels]:
    """Completed evaluations with feedback (``PATCH /v1/evaluations/{id}/feedback``) from the
    service's SQLite store, opened read-only: their results and the feedback as labels."""
    p = Path(db)
    if not p.is_file():
        raise InvalidRequestError(f"database not found: {p}")
    try:
        conn = sqlite3.connect(f"file:{p.resolve()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise InvalidRequestError(f"{p}: cannot open the store read-only: {exc}") from exc
    sql = (
        "SELECT id, result_json, feedback_is_positive FROM evaluations "
        "WHERE status='completed' AND feedback_is_positive IS NOT NULL AND superseded_at IS NULL"
    )
    params: tuple[Any, ...] = ()
    if org_id:
        sql += " AND org_id=?"
        params = (org_id,)
    try:
        rows = conn.execute(sql + " ORDER BY seq", params).fetchall()
    except sqlite3.Error as exc:
        raise InvalidRequestError(f"{p}: not an imagejury store ({exc})") from exc
    finally:
        conn.close()
    records, labels = [], Labels()
    for eid, result_json, positive in rows:
        if result_json:
            records.append(json.loads(result_json))
            labels.overall[str(eid)] = bool(positive)
    return records, labels


def record_keys(record: dict[str, Any]) -> list[str]:
    """The names a label may use for a record: its id, client_ref, batch row."""
    links = record.get("links") or {}
    keys = [record.get("id"), record.get("client_ref"), links.get("batch_row"), record.get("batch_row")]
    return [str(k) for k in keys if k]


def calibration_key(measurement_name: str) -> str:
    """Per-item measurement names ("sub:a red hat") share one threshold: their prefix."""
    return measurement_name.split(":", 1)[0]


def _need(rule: str, count: int) -> int:
    if rule == "any":
        return 1
    if rule.startswith("at_least:"):
        return int(rule.split(":", 1)[1])
    return count


def judge_sets(records: Iterable[dict[str, Any]], labels: Labels) -> tuple[list[JudgeSet], int]:
    """One ``JudgeSet`` per (judge, model) over the labelled records; and how many records a
    label matched."""
    rows: dict[tuple[str, str], list[tuple[dict[str, Any], bool]]] = defaultdict(list)
    matched = 0
    for rec in records:
        if rec.get("status") != "completed":
            continue
        keys = record_keys(rec)
        if not labels.known(keys):
            continue
        matched += 1
        for j in rec.get("judges") or []:
            ms = [m for m in j.get("measurements") or [] if m.get("decisive", True) and m.get("value") is not None]
            label = labels.for_judge(keys, str(j["name"]))
            if not ms or label is None:
                continue
            rows[(str(j["name"]), str(ms[0].get("model") or ""))].append((j, label))
    return [_flatten(judge, model, group) for (judge, model), group in sorted(rows.items())], matched


def _flatten(judge: str, model: str, group: list[tuple[dict[str, Any], bool]]) -> JudgeSet:
    keys: list[str] = []
    item, key, value, sign, thr, need, label, vote = [], [], [], [], [], [], [], []
    for i, (j, passed) in enumerate(group):
        ms = [m for m in j.get("measurements") or [] if m.get("decisive", True) and m.get("value") is not None]
        for m in ms:
            k = calibration_key(str(m["name"]))
            if k not in keys:
                keys.append(k)
            item.append(i)
            key.append(keys.index(k))
            value.append(float(m["value"]))
            sign.append(1.0 if m.get("higher_is_better") else -1.0)
            thr.append(float(m["threshold"]))
        need.append(_need(str(j.get("decision_rule") or "all"), len(ms)))
        label.append(passed)
        vote.append(bool(j["passed"]))
    return JudgeSet(
        judge=judge,
        model=model,
        keys=keys,
        item=np.array(item, dtype=int),
        key=np.array(key, dtype=int),
        value=np.array(value, dtype=float),
        sign=np.array(sign, dtype=float),
        stored_threshold=np.array(thr, dtype=float),
        need=np.array(need, dtype=int),
        label=np.array(label, dtype=bool),
        stored_vote=np.array(vote, dtype=bool),
    )
