"""Calibrated thresholds applied to a judge's vote after it is cast.

``imagejury calibrate`` writes threshold overrides per judge, measurement and model
(``[judges.NAME.calibration]``). A judge may read them itself (``Judge.threshold_for``);
whether it does or not, ``recalibrate`` re-decides its vote from the measurements it
recorded under the overridden thresholds — the same rule ``imagejury rescore`` applies to
stored results, so a live evaluation with a calibrated config and a rescored file agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from imagejury.judges.types import GateFailure, JudgeIssue, JudgeResult, Measurement, decide

#: (measurement name, its model, the judge's own threshold) -> the threshold to apply
ThresholdFor = Callable[[str, float, str], float]


def recalibrate(result: JudgeResult, threshold_for: ThresholdFor, *, is_gate: bool = False) -> JudgeResult:
    """``result`` with its measurements under the overridden thresholds and its vote re-decided.

    Unchanged when no override names one of its measurements. When the vote flips, the
    reasoning says so, a failing vote gets an issue naming the calibrated threshold, and a
    gate adds (or drops) its gate failure."""
    before = result.measurements
    after = [m.with_threshold(threshold_for(m.name, m.threshold, m.model)) for m in before]
    if after == before:
        return result
    result.measurements = after
    confidence = rescaled_confidence(result.confidence, before, after)
    if confidence is not None:
        result.confidence = confidence
    vote = decide(after, result.decision_rule)
    if vote is None or vote == result.passed:
        return result
    result.passed = vote
    changed = ", ".join(f"{m.name} {m.threshold:g}" for m, old in zip(after, before) if m.threshold != old.threshold)
    result.reasoning = f"{result.reasoning} [calibrated thresholds ({changed}): {'passed' if vote else 'failed'}]"
    if vote:
        result.gate_failures = []
    else:
        detail = f"fails the calibrated threshold(s): {changed}"
        result.issues.append(JudgeIssue(subcategory="calibrated_threshold", detail=detail))
        if is_gate:
            result.gate_failures.append(GateFailure(output_key="calibrated", module=result.name, reason=detail))
    return result


def rescaled_confidence(confidence: float, before: list[Measurement], after: list[Measurement]) -> float | None:
    """The confidence at the new margin, for a judge with one decisive measurement whose
    confidence follows ``confidence_from_margin`` (0.5 + 0.5·tanh(|margin| / scale)): the scale is
    recovered from the old confidence and margin. None (keep the old one) otherwise."""
    old = [m for m in before if m.decisive and m.margin is not None]
    new = [m for m in after if m.decisive and m.margin is not None]
    if len(old) != 1 or len(new) != 1:
        return None
    c = 2.0 * confidence - 1.0
    old_margin, new_margin = abs(old[0].margin or 0.0), abs(new[0].margin or 0.0)
    if not 0.0 < c < 1.0 or old_margin == 0.0:
        return None
    scale = old_margin / math.atanh(c)
    return round(0.5 + 0.5 * math.tanh(new_margin / scale), 4)
