"""The suggested next step: an action code, a one-line summary and an improved prompt.

Rule based and deterministic, so the same failures always give the same advice.

Action codes (``primary_action_code``):

| code | when |
|---|---|
| ``accept`` | passed, and the deciding judges were confident |
| ``manual_review`` | low-confidence votes (mean confidence < 0.6), or a critical check or a gate could not run |
| ``reject`` | a gate failed (unsafe content, no face where identity is required) |
| ``fix_identity`` | the identity check (critical in headshots) failed |
| ``regenerate_with_prompt`` | what was asked is missing: prompt, rubric or attributes failed |
| ``enhance_quality`` | only technical / quality checks failed: upscale, denoise, re-render |
| ``regenerate`` | failed for other reasons (framing, reference mismatch, aesthetics) |
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from imagejury.core.schema import GENERATION_PROMPT_MAX
from imagejury.core.verdict.aggregate import Verdict
from imagejury.judges.types import JudgeResult

ACTION_CODES = (
    "accept",
    "manual_review",
    "reject",
    "fix_identity",
    "regenerate_with_prompt",
    "enhance_quality",
    "regenerate",
)
LOW_CONFIDENCE = 0.6
PROMPT_JUDGES = frozenset({"prompt_adherence", "instructions", "attributes"})
QUALITY_JUDGES = frozenset({"technical_quality", "technical_signals"})

# issue subcategory -> words that ask the generator for the fix
QUALITY_HINTS: dict[str, str] = {
    "blur": "sharp focus, crisp details",
    "noise": "clean, noise-free image",
    "compression": "high quality, no compression artifacts",
    "exposure": "well-exposed, balanced lighting",
    "low_resolution": "high resolution",
    "aspect_ratio": "",  # not fixed by words: handled in the summary
    "blank": "a detailed, fully rendered image",
    "framing": "centered head-and-shoulders framing",
    "multiple_faces": "a single person",
    "eyes_closed": "eyes open",
    "pose": "facing the camera",
    "no_face": "a clearly visible face",
    "identity_mismatch": "",
    "aesthetics": "beautiful, professional composition",
}
QUOTED = re.compile(r"'([^']{2,120})'")


@dataclass
class Action:
    primary_action: str
    failure_summary: str | None
    improved_prompt: str | None


def decide_action(verdict: Verdict, results: Sequence[JudgeResult], prompt: str | None) -> Action:
    failed = [r for r in results if not r.passed]
    mean_conf = sum(r.confidence for r in results) / len(results) if results else 0.0
    failed_names = {r.name for r in failed}

    unchecked = list(verdict.check_summary.get("critical_skipped", [])) + list(
        verdict.check_summary.get("gates_skipped", [])
    )
    if verdict.gate_failures:
        code = "reject"
    elif unchecked:
        code = "manual_review"  # a critical check or a gate could not run: a person must look
    elif verdict.overall_passed:
        code = "accept" if mean_conf >= LOW_CONFIDENCE else "manual_review"
    elif not results:
        code = "manual_review"
    elif "identity" in failed_names:
        code = "fix_identity"
    elif failed_names & PROMPT_JUDGES:
        code = "regenerate_with_prompt"
    elif failed_names and failed_names <= QUALITY_JUDGES:
        code = "enhance_quality"
    elif mean_conf < LOW_CONFIDENCE:
        code = "manual_review"
    else:
        code = "regenerate"

    summary = None if code == "accept" else _summary(verdict, failed)
    if unchecked and verdict.overall_passed:
        summary = f"Passed the checks that ran, but {', '.join(unchecked)} could not run; please review."

    unsafe = any(g.module == "safety" for _, g in verdict.gate_failures)
    # no rewrite of a prompt whose image was stopped as unsafe: that is not a quality fix
    improved = _improved_prompt(prompt, failed) if not verdict.overall_passed and not unsafe else None
    return Action(primary_action=code, failure_summary=summary, improved_prompt=improved)


def _summary(verdict: Verdict, failed: Sequence[JudgeResult]) -> str:
    if verdict.gate_failures:
        name, gate = verdict.gate_failures[0]
        return f"Rejected by the {gate.module} gate: {gate.reason}"
    if not failed:
        if verdict.override_reason:
            return verdict.override_reason
        return f"Passed with low confidence (weighted pass rate {verdict.weighted_pass_rate:.2f}); please review."
    parts = []
    for r in sorted(failed, key=lambda r: -r.weight * r.confidence)[:3]:
        first = r.issues[0].detail if r.issues else r.reasoning
        parts.append(f"{r.name} ({first})")
    return f"Failed {len(failed)} check(s), rate {verdict.weighted_pass_rate:.2f}: " + "; ".join(parts)


def _improved_prompt(prompt: str | None, failed: Sequence[JudgeResult]) -> str | None:
    """Rewrite the prompt so that each failed check is asked for explicitly."""
    additions: list[str] = []
    negatives: list[str] = []
    for r in failed:
        for issue in r.issues:
            target = issue.target
            if target is None:
                m = QUOTED.search(issue.detail)
                target = m.group(1) if m else None
            if r.name in PROMPT_JUDGES and target:
                if issue.subcategory in {"prohibited_element", "prohibition"}:
                    negatives.append(target)
                else:
                    additions.append(f"clearly showing {target}")
            else:
                hint = QUALITY_HINTS.get(issue.subcategory)
                if hint:
                    additions.append(hint)
    if not additions and not negatives:
        return None
    base = (prompt or "").strip().rstrip(".")
    seen: list[str] = []
    for a in additions:
        if a and a not in seen and a.lower() not in base.lower():
            seen.append(a)
    tail = ""
    if negatives:
        tail = ". Avoid: " + ", ".join(dict.fromkeys(negatives))
    extra = ", ".join(seen)
    # the improved prompt must be usable as the next request's generation_prompt: keep the
    # additions (they are the advice) and shorten the original prompt when it would not fit
    room = GENERATION_PROMPT_MAX - len(tail) - 1 - (len(extra) + 2 if extra and base else len(extra))
    if len(base) > room:
        cut = base[: max(room, 0)]
        base = (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(" ,;.")
    out = ", ".join([p for p in [base, extra] if p]) + tail
    return out[: GENERATION_PROMPT_MAX - 1] + "."
