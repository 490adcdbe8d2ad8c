"""The verdict: a pure function of judge results, their weights, gates and the preset.

``weighted_pass_rate`` is the weight of passed judges over the weight of judges that
ran, as a fraction in [0, 1]. A judge that did not apply is not in ``results`` at all, so
the remaining weights renormalise by construction.

A judge that applied but could not run (a model missing, with ``allow_missing_models``)
is a ``SkippedCheck``: it never counts as a pass. ``check_summary`` states it in a stable,
machine-readable form that every surface (CLI headline and exit code, batch summary,
HTML report) reads:

- ``incomplete`` (bool): at least one applicable judge was skipped;
- ``skipped_checks``: one entry per skipped judge, keys ``judge``, ``reason`` (one line),
  ``detail`` (a pointer to the fix, or None) and ``model`` (the missing model's name, or
  None when the judge itself is missing);
- ``missing_models``: one entry per missing model, keys ``model``, ``judges`` and
  ``how_to`` (the full "looked in … to supply it …" message, once per model).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from imagejury.judges.types import GateFailure, JudgeResult

MAX_TOP_ISSUES = 8
MAX_TOP_STRENGTHS = 5
STRENGTH_MIN_CONFIDENCE = 0.75


@dataclass(frozen=True)
class SkippedCheck:
    """A judge that applied but could not run (model missing, with --allow-missing-models)."""

    name: str
    category: str
    reason: str  # one line: "model 'ViT-L-14:openai' is not available here"
    detail: str | None = None  # the full message: where we looked, how to supply it
    critical: bool = False  # the preset marks it critical: without it the image cannot pass
    gate: bool = False  # a gate (safety): without it the image cannot be accepted unreviewed
    model: str | None = None  # the missing model's name; None when the judge itself is missing


@dataclass
class Verdict:
    overall_passed: bool
    weighted_pass_rate: float
    override_reason: str | None
    top_issues: list[str]
    top_strengths: list[str]
    check_summary: dict[str, Any]
    analysis_modules_executed: int
    gate_failures: list[tuple[str, GateFailure]] = field(default_factory=list)  # (judge name, gate)


def aggregate(
    results: Sequence[JudgeResult],
    *,
    pass_threshold: float,
    skipped: Sequence[SkippedCheck] = (),
    extra_gates: Sequence[tuple[str, GateFailure]] = (),
) -> Verdict:
    """Fold judge votes into the verdict.

    Passing needs all of: no gate failure, a rate at or above ``pass_threshold``, and no
    critical judge that failed or could not run. ``override_reason`` says when one of
    these overrode a rate that would otherwise have passed.
    """
    total_w = sum(max(r.weight, 0.0) for r in results)
    passed_w = sum(max(r.weight, 0.0) for r in results if r.passed)
    rate = round(passed_w / total_w, 4) if total_w > 0 else 0.0

    gates = list(extra_gates) + [(r.name, g) for r in results for g in r.gate_failures]
    critical_failed = [r for r in results if r.critical and not r.passed]
    rate_ok = total_w > 0 and rate >= pass_threshold

    critical_skipped = [s for s in skipped if s.critical]
    override: str | None = None
    if gates:
        override = "gate failed: " + "; ".join(f"{g.module}/{g.output_key}: {g.reason}" for _, g in gates)
    elif critical_failed:
        override = "critical check failed: " + ", ".join(r.name for r in critical_failed)
    elif critical_skipped:
        override = "critical check could not run: " + ", ".join(f"{s.name} ({s.reason})" for s in critical_skipped)
    if override and not rate_ok:
        # the rate alone already fails: say so too, the override changed nothing
        override = f"{override} (the weighted pass rate {rate:.2f} is also below {pass_threshold:.2f})"
    if total_w <= 0 and not gates:
        override = "no check could run"
    overall = rate_ok and not gates and not critical_failed and not critical_skipped

    return Verdict(
        overall_passed=overall,
        weighted_pass_rate=rate,
        override_reason=override,
        top_issues=_top_issues(results, gates, skipped),
        top_strengths=_top_strengths(results),
        check_summary=_summary(results, skipped, gates, pass_threshold, rate),
        analysis_modules_executed=len(results),
        gate_failures=gates,
    )


def _top_issues(
    results: Sequence[JudgeResult], gates: Sequence[tuple[str, GateFailure]], skipped: Sequence[SkippedCheck]
) -> list[str]:
    ranked: list[tuple[float, int, str]] = []
    order = 0
    for name, gate in gates:
        ranked.append((float("inf"), order, f"{name}: {gate.reason}"))
        order += 1
    for r in results:
        if r.passed and not r.issues:
            continue
        for issue in r.issues:
            # a failed judge's issues outrank a passing judge's minor remarks
            rank = r.weight * r.confidence * issue.severity * (1.0 if not r.passed else 0.25)
            ranked.append((rank, order, f"{r.name}: {issue.detail}"))
            order += 1
        if not r.passed and not r.issues:
            ranked.append((r.weight * r.confidence, order, f"{r.name}: {r.reasoning}"))
            order += 1
    ranked.sort(key=lambda t: (-t[0], t[1]))
    out: list[str] = []
    for _, _, text in ranked:
        if text not in out:
            out.append(text)
    out = out[:MAX_TOP_ISSUES]
    # a skipped check is never silent: always listed, after the real findings — one line
    # per cause (a missing model that feeds three judges is one line, not three)
    for reason, names in _skipped_by_reason(skipped).items():
        out.append(f"check not run: {_and_list(names)} — {reason}")
    return out


def _skipped_by_reason(skipped: Sequence[SkippedCheck]) -> dict[str, list[str]]:
    by_reason: dict[str, list[str]] = {}
    for s in skipped:
        by_reason.setdefault(s.reason, []).append(s.name)
    return by_reason


def _and_list(names: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    names = list(dict.fromkeys(names))
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _missing_models(skipped: Sequence[SkippedCheck]) -> list[dict[str, Any]]:
    """One entry per missing model: the judges it feeds and, once, how to supply it."""
    out: dict[str, dict[str, Any]] = {}
    for s in skipped:
        if s.model is None:
            continue
        entry = out.setdefault(s.model, {"model": s.model, "judges": [], "how_to": s.detail})
        entry["judges"].append(s.name)
    return list(out.values())


def _top_strengths(results: Sequence[JudgeResult]) -> list[str]:
    strong = sorted(
        (r for r in results if r.passed and r.confidence >= STRENGTH_MIN_CONFIDENCE),
        key=lambda r: -(r.weight * r.confidence),
    )
    out: list[str] = []
    for r in strong:
        text = f"{r.name}: {r.strengths[0]}" if r.strengths else f"{r.name}: {r.reasoning}"
        if text not in out:
            out.append(text)
    return out[:MAX_TOP_STRENGTHS]


def _summary(
    results: Sequence[JudgeResult],
    skipped: Sequence[SkippedCheck],
    gates: Sequence[tuple[str, GateFailure]],
    pass_threshold: float,
    rate: float,
) -> dict[str, Any]:
    by_category: dict[str, dict[str, int]] = {}
    for r in results:
        cat = by_category.setdefault(r.category, {"passed": 0, "failed": 0, "skipped": 0})
        cat["passed" if r.passed else "failed"] += 1
    for s in skipped:
        by_category.setdefault(s.category, {"passed": 0, "failed": 0, "skipped": 0})["skipped"] += 1
    return {
        "total": len(results) + len(skipped),
        "executed": len(results),
        "passed": sum(1 for r in results if r.passed),
        "failed": sum(1 for r in results if not r.passed),
        "skipped": len(skipped),
        "gates_failed": len(gates),
        "critical_failed": [r.name for r in results if r.critical and not r.passed],
        "critical_skipped": [s.name for s in skipped if s.critical],
        "gates_skipped": [s.name for s in skipped if s.gate],
        "by_category": by_category,
        "incomplete": bool(skipped),
        "skipped_checks": [
            {
                "judge": s.name,
                "reason": s.reason,
                # the full how-to lives once per model in missing_models, not once per judge
                "detail": "see missing_models and `imagejury models`" if s.model else s.detail,
                "model": s.model,
            }
            for s in skipped
        ],
        "missing_models": _missing_models(skipped),
        "pass_threshold": pass_threshold,
        "weighted_pass_rate": rate,
    }
