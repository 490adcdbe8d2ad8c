"""Recompute judge votes, the verdict and the action of stored results under an overlay.

A judge's vote is recomputed from its stored measurements (``decide`` over them with the
overlay's thresholds); the verdict and action come from the same ``aggregate`` and
``decide_action`` the evaluator uses, over judge results rebuilt from the record. What
cannot be recomputed is kept and said: a judge without measurements keeps its vote. A
judge's confidence is recomputed at the new margin when it has one decisive measurement
(``rescaled_confidence``: the judges' ``confidence_from_margin`` with the scale recovered from
the stored confidence and margin), else kept as the judge wrote it.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagejury.calibrate.overlay import Overlay
from imagejury.core.presets import PRESETS, preset_for
from imagejury.core.verdict.action import decide_action
from imagejury.core.verdict.aggregate import SkippedCheck, aggregate
from imagejury.errors import InvalidRequestError
from imagejury.judges.calibration import rescaled_confidence
from imagejury.judges.types import GateFailure, JudgeIssue, JudgeResult, Measurement, decide


def _optional_orjson() -> Any:
    """orjson when installed (extra "fast": ~5x faster reading and writing of large results
    files), else None and the json module is used. Typed Any so the check reads the same
    with or without it installed."""
    try:
        import orjson
    except ImportError:  # pragma: no cover - depends on the install
        return None
    return orjson


orjson = _optional_orjson()

log = logging.getLogger(__name__)

#: judges whose failed vote is itself a gate failure (safety writes a GateFailure exactly when
#: it votes no); a rescored flip adds or drops that gate. Identity's gate is "no face", which
#: has no measurement and is never rescored.
GATE_ON_FAILURE = frozenset({"safety"})
#: keys of a completed record that the verdict and action write
VERDICT_KEYS = ("overall_passed", "weighted_pass_rate", "override_reason", "top_issues", "top_strengths")


def judge_result_from_json(j: dict[str, Any], *, critical: bool) -> JudgeResult:
    """A ``JudgeResult`` back from the API's judge object, with what ``aggregate`` and
    ``decide_action`` read (measurements, evidence and sub-points are not needed for that).
    Issue severities are not in the API's JSON: they count as 1.0."""
    return JudgeResult(
        name=str(j["name"]),
        category=str(j.get("category") or ""),
        passed=bool(j["passed"]),
        confidence=float(j.get("confidence") or 0.0),
        weight=float(j.get("weight") or 0.0),
        reasoning=str(j.get("reasoning") or ""),
        issues=[JudgeIssue(str(i.get("subcategory") or ""), str(i.get("detail") or "")) for i in j.get("issues") or []],
        critical=critical,
        decision_rule=str(j.get("decision_rule") or "all"),
    )


@dataclass
class JudgeChange:
    name: str
    old: bool
    new: bool
    confidence_changed: bool = False


@dataclass
class RescoreStats:
    """What changed over a file: the printed summary of ``imagejury rescore``."""

    rows: int = 0
    completed: int = 0
    rescored_judges: Counter = field(default_factory=Counter)  # judge -> votes recomputed
    unmeasured_judges: Counter = field(default_factory=Counter)  # judge in the overlay without measurements
    flips: Counter = field(default_factory=Counter)  # (judge, "pass->fail" | "fail->pass") -> n
    verdict_flips: Counter = field(default_factory=Counter)  # "pass->fail" | "fail->pass" -> n
    action_changes: Counter = field(default_factory=Counter)  # (old, new) -> n

    def merge(self, other: RescoreStats) -> None:
        self.rows += other.rows
        self.completed += other.completed
        for mine, theirs in (
            (self.rescored_judges, other.rescored_judges),
            (self.unmeasured_judges, other.unmeasured_judges),
            (self.flips, other.flips),
            (self.verdict_flips, other.verdict_flips),
            (self.action_changes, other.action_changes),
        ):
            mine.update(theirs)

    def add(self, changes: list[JudgeChange], old_verdict: bool, new_verdict: bool, old_action: Any, new_action: Any):
        for c in changes:
            if c.old != c.new:
                self.flips[(c.name, _arrow(c.old, c.new))] += 1
        if old_verdict != new_verdict:
            self.verdict_flips[_arrow(old_verdict, new_verdict)] += 1
        if old_action != new_action:
            self.action_changes[(old_action, new_action)] += 1


def _arrow(old: bool, new: bool) -> str:
    return f"{'pass' if old else 'fail'}->{'pass' if new else 'fail'}"


class Rescorer:
    """Applies one overlay to records, one at a time (so a file streams)."""

    def __init__(self, overlay: Overlay) -> None:
        self.overlay = overlay
        self.stats = RescoreStats()

    def rescore(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record under the overlay (changed in place and returned); others pass through."""
        self.stats.rows += 1
        if record.get("status") != "completed" or not record.get("judges"):
            return record
        self.stats.completed += 1
        changes = [self._revote(j) for j in record["judges"]]
        weights_changed = self._reweigh(record["judges"])
        if not weights_changed and all(c.old == c.new and not c.confidence_changed for c in changes):
            return record  # nothing the verdict reads has changed: keep it byte for byte
        old_verdict, old_action = record.get("overall_passed"), record.get("primary_action_code")
        self._reverdict(record, changes)
        self.stats.add(
            changes, bool(old_verdict), bool(record["overall_passed"]), old_action, record["primary_action_code"]
        )
        return record

    # -- votes ----------------------------------------------------------------------
    def _revote(self, j: dict[str, Any]) -> JudgeChange:
        name, old = str(j["name"]), bool(j["passed"])
        table = self.overlay.table(name)
        if not table:
            return JudgeChange(name, old, old)
        stored = j.get("measurements") or []
        if not stored:
            self.stats.unmeasured_judges[name] += 1
            return JudgeChange(name, old, old)
        stored_ms = [Measurement.from_json(m) for m in stored]
        ms = [m.with_threshold(self.overlay.threshold(name, m.name, m.model, m.threshold)) for m in stored_ms]
        self.stats.rescored_judges[name] += 1
        if ms == stored_ms:
            return JudgeChange(name, old, old)  # the overlay names none of its measurements: nothing to recompute
        vote = decide(ms, str(j.get("decision_rule") or "all"))
        confidence = rescaled_confidence(float(j.get("confidence") or 0.0), stored_ms, ms)
        confidence_changed = confidence is not None and confidence != j.get("confidence")
        if confidence_changed:
            j["confidence"] = confidence
        j["measurements"] = [m.as_json() for m in ms]
        new = old if vote is None else vote
        if new != old:
            j["passed"] = new
            j["reasoning"] = (
                f"{j.get('reasoning') or ''} [rescored under calibrated thresholds: "
                f"{'passed' if new else 'failed'}, was {'passed' if old else 'failed'}]"
            ).strip()
        return JudgeChange(name, old, new, confidence_changed)

    def _reweigh(self, judges: list[dict[str, Any]]) -> bool:
        changed = False
        for j in judges:
            w = self.overlay.weight(str(j["name"]))
            if w is not None and float(j.get("weight") or 0.0) != w:
                j["weight"] = w
                changed = True
        return changed

    # -- verdict ----------------------------------------------------------------------
    def _reverdict(self, record: dict[str, Any], changes: list[JudgeChange]) -> None:
        summary = dict(record.get("check_summary") or {})
        preset = PRESETS.get(str(summary.get("preset"))) or preset_for(str(record.get("task_type") or ""))[0]
        critical = set(preset.critical) | set(summary.get("critical_failed") or [])
        results = [judge_result_from_json(j, critical=j["name"] in critical) for j in record["judges"]]
        gates = _gates(record, changes)
        skipped = [
            SkippedCheck(
                name=str(s.get("judge")),
                category=str(s.get("category") or ""),
                reason=str(s.get("reason") or ""),
                detail=s.get("detail"),
                critical=s.get("judge") in (summary.get("critical_skipped") or []),
                gate=s.get("judge") in (summary.get("gates_skipped") or []),
            )
            for s in summary.get("skipped_checks") or []
        ]
        pass_threshold = float(summary.get("pass_threshold", preset.pass_threshold))
        verdict = aggregate(results, pass_threshold=pass_threshold, skipped=skipped, extra_gates=gates)
        action = decide_action(verdict, results, record.get("generation_prompt"))
        for key in VERDICT_KEYS:
            record[key] = getattr(verdict, key)
        record["check_summary"] = {**summary, **verdict.check_summary}
        record["primary_action_code"] = action.primary_action
        if isinstance(record.get("action"), dict):
            record["action"].update(
                primary_action=action.primary_action,
                failure_summary=action.failure_summary,
                improved_prompt=action.improved_prompt,
            )
        record["gate_failures"] = _gates_to_json(record, verdict.gate_failures)


def _gates(record: dict[str, Any], changes: list[JudgeChange]) -> list[tuple[str, GateFailure]]:
    """The stored gates, less those of a gate judge that now passes, plus one for a gate
    judge that now fails (its stored measurements say why)."""
    now_passing = {c.name for c in changes if c.new and not c.old and c.name in GATE_ON_FAILURE}
    now_failing = {c.name for c in changes if c.old and not c.new and c.name in GATE_ON_FAILURE}
    gates = [
        (str(g.get("module")), GateFailure(str(g.get("output_key")), str(g.get("module")), str(g.get("reason"))))
        for g in record.get("gate_failures") or []
        if g.get("module") not in now_passing
    ]
    for j in record["judges"]:
        if j["name"] in now_failing:
            failed = [m for m in j.get("measurements") or [] if m.get("decisive", True) and m.get("passed") is False]
            why = "; ".join(f"{m['name']} {m['value']:.3g} beyond {m['threshold']:.3g}" for m in failed[:3])
            gates.append((j["name"], GateFailure("rescore", j["name"], f"rescored under calibrated thresholds: {why}")))
    return gates


def _gates_to_json(record: dict[str, Any], gates: list[tuple[str, GateFailure]]) -> list[dict[str, Any]]:
    stored = {(g.get("module"), g.get("output_key"), g.get("reason")): g for g in record.get("gate_failures") or []}
    out = []
    for i, (_, g) in enumerate(gates):
        kept = stored.get((g.module, g.output_key, g.reason))
        ns = uuid.UUID(str(record["id"])) if _is_uuid(record.get("id")) else uuid.NAMESPACE_OID
        out.append(
            kept
            or {
                "id": str(uuid.uuid5(ns, f"rescore-gate/{i}/{g.module}")),
                "evaluation_id": record.get("id"),
                "output_key": g.output_key,
                "module": g.module,
                "reason": g.reason,
                "created_at": record.get("completed_at"),
            }
        )
    return out


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def read_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """The records of a results JSONL file; a line that is not JSON is a clear error, not a skip."""
    for start, lines in _line_chunks(path, 1024):
        yield from _parse(lines, start, path)


def _line_chunks(path: str | Path, size: int) -> Iterator[tuple[int, list[bytes]]]:
    """(number of the first line, up to ``size`` raw lines) over the file."""
    p = Path(path)
    if not p.is_file():
        raise InvalidRequestError(f"results file not found: {p}")
    with p.open("rb") as fh:
        start, chunk = 1, []
        for line in fh:
            chunk.append(line)
            if len(chunk) >= size:
                yield start, chunk
                start, chunk = start + len(chunk), []
        if chunk:
            yield start, chunk


def _parse(lines: list[bytes], start: int, path: str | Path) -> Iterator[dict[str, Any]]:
    for n, line in enumerate(lines, start):
        if not line.strip():
            continue
        try:
            rec = _loads(line)
        except ValueError as exc:  # json.JSONDecodeError and orjson.JSONDecodeError both are
            raise InvalidRequestError(f"{path}:{n}: not a JSON line ({exc})") from exc
        if not isinstance(rec, dict):
            raise InvalidRequestError(f"{path}:{n}: not a JSON object")
        yield rec


def rescore_file(source: str | Path, overlay: Overlay, output: str | Path, *, workers: int = 1) -> RescoreStats:
    """Write every record of ``source`` rescored under ``overlay`` to ``output`` (same order).

    With ``workers`` > 1, chunks of lines are parsed, rescored and serialised in that many
    processes (JSON decoding is most of the time); the output order is the input's.
    """
    if Path(output).resolve() == Path(source).resolve():
        raise InvalidRequestError("the output must be another file than the input (rescore never edits results)")
    total = RescoreStats()
    chunks = ((start, lines, str(source)) for start, lines in _line_chunks(source, CHUNK_LINES))
    tmp = Path(f"{output}.part")
    try:
        with tmp.open("wb") as out:
            if workers <= 1:
                _init_worker(overlay)
                done: Iterable[tuple[bytes, RescoreStats]] = map(_rescore_chunk, chunks)
                for data, stats in done:
                    out.write(data)
                    total.merge(stats)
            else:
                with multiprocessing.get_context().Pool(workers, _init_worker, (overlay,)) as pool:
                    for data, stats in pool.imap(_rescore_chunk, chunks):
                        out.write(data)
                        total.merge(stats)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(output)
    return total


CHUNK_LINES = 512
_worker_rescorer: Rescorer | None = None


def _init_worker(overlay: Overlay) -> None:
    global _worker_rescorer
    _worker_rescorer = Rescorer(overlay)


def _rescore_chunk(task: tuple[int, list[bytes], str]) -> tuple[bytes, RescoreStats]:
    start, lines, path = task
    rescorer = _worker_rescorer
    assert rescorer is not None, "_init_worker sets the rescorer"
    rescorer.stats = RescoreStats()
    data = b"".join(_dumps(rescorer.rescore(r)) + b"\n" for r in _parse(lines, start, path))
    return data, rescorer.stats


def _loads(line: bytes) -> Any:
    return orjson.loads(line) if orjson is not None else json.loads(line)


def _dumps(record: dict[str, Any]) -> bytes:
    if orjson is not None:
        return orjson.dumps(record)
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
