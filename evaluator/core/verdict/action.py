"""The suggested next step: an action code, a one-line summary and an improved prompt.

Rule based and deterministic, so the same failures always give the same advice.

Action codes (``primary_action_code``):

| code | when |
|---|---|
| ``accept`` | passed, and the deciding judges were confident |
| ``manual_review`` | passed what ran, but a critical check or a gate could not run, or a critical judge passed inside its uncertainty band; or low-confidence votes (mean confidence < 0.6) |
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

# issue subcategory -> words that ask the generator for the fix (no generic boilerplate:
# an issue with no concrete fix adds nothing)
QUALITY_HINTS: dict[str, str] = {
    "blur": "sharp focus",
    "noise": "clean, noise-free",
    "compression": "no compression artifacts",
    "exposure": "balanced exposure",
    "low_resolution": "high resolution",
    "banding": "smooth gradients",
    "blank": "a fully rendered scene",
    "empty_image": "the subject large and clearly visible",
    "framing": "centered head-and-shoulders framing",
    "multiple_faces": "a single person",
    "eyes_closed": "eyes open",
    "pose": "facing the camera",
    "no_face": "a clearly visible face",
}
# hint -> words in the request that ask for the very thing the hint would undo; a hint is
# never added against them ("balanced exposure" for a product on a white background)
HINT_CONFLICTS: dict[str, tuple[str, ...]] = {
    "exposure": (
        "white background",
        "white backdrop",
        "white seamless",
        "black background",
        "high key",
        "high-key",
        "low key",
        "low-key",
        "silhouette",
        "overexposed",
        "underexposed",
        "night",
        "dark",
        "backlit",
        "neon",
        "bright",
        "white",
        "blown",
    ),
    "blur": (
        "bokeh",
        "motion blur",
        "blurry",
        "blurred",
        "soft focus",
        "dreamy",
        "depth of field",
        "tilt-shift",
        "haze",
    ),
    "noise": ("film grain", "grainy", "grain", "noise", "analog", "35mm", "vintage film", "noir"),
    "compression": ("glitch", "jpeg"),
    "low_resolution": ("pixel art", "low-res", "lowres", "8-bit", "16-bit", "retro game"),
    "banding": ("posterized", "posterised", "flat colours", "flat colors", "cel shading", "cel-shaded"),
    "blank": ("minimal", "minimalist", "plain", "blank", "empty", "negative space"),
}
QUOTED = re.compile(r"'([^']{2,120})'")


@dataclass
class Action:
    primary_action: str
    failure_summary: str | None
    improved_prompt: str | None


def decide_action(verdict: Verdict, results: Sequence[JudgeResult], prompt: str | None, also_asked: str = "") -> Action:
    """The action follows what *failed*, never what was skipped: a broken image is
    ``regenerate`` / ``enhance_quality`` whether or not safety ran; only an image that
    passes every check that ran turns into ``manual_review`` because a gate or critical
    check was skipped, or because a critical judge passed inside its uncertainty band.
    ``also_asked`` is the rest of the request (rubric, attribute values): the improved
    prompt never adds words that contradict it."""
    failed = [r for r in results if not r.passed]
    summary_of_checks = verdict.check_summary
    unchecked = list(summary_of_checks.get("critical_skipped", [])) + [
        g for g in summary_of_checks.get("gates_skipped", []) if g not in summary_of_checks.get("critical_skipped", [])
    ]
    borderline = borderline_critical(results)
    if verdict.gate_failures:
        code = "reject"
    elif _passes_what_ran(verdict, results):
        if unchecked or borderline:
            code = "manual_review"  # a person must look: a gate did not run, or the call was too close
        else:
            code = "accept" if _mean_confidence(results) >= LOW_CONFIDENCE else "manual_review"
    elif failed:
        code = _code_for_failures(failed, results)
    else:
        code = "manual_review"  # nothing failed and nothing passed enough to decide (no check ran)

    summary = None if code == "accept" else _summary(verdict, failed)
    if code == "manual_review" and not failed and not verdict.gate_failures:
        if unchecked:
            summary = f"Passed the checks that ran, but {', '.join(unchecked)} could not run; please review."
        elif borderline:
            summary = "Passed, but inside the uncertainty band: " + "; ".join(borderline) + "; please review."

    unsafe = any(g.module == "safety" for _, g in verdict.gate_failures)
    # no rewrite of a prompt whose image was stopped as unsafe: that is not a quality fix
    improved = _improved_prompt(prompt, failed, also_asked) if not verdict.overall_passed and not unsafe else None
    return Action(primary_action=code, failure_summary=summary, improved_prompt=improved)


def _mean_confidence(results: Sequence[JudgeResult]) -> float:
    return sum(r.confidence for r in results) / len(results) if results else 0.0


def _passes_what_ran(verdict: Verdict, results: Sequence[JudgeResult]) -> bool:
    """The verdict the checks that ran give, leaving aside the ones that were skipped."""
    if not results or verdict.gate_failures or any(r.critical and not r.passed for r in results):
        return False
    threshold = float(verdict.check_summary.get("pass_threshold", 0.0))
    return verdict.weighted_pass_rate is not None and verdict.weighted_pass_rate >= threshold


def _code_for_failures(failed: Sequence[JudgeResult], results: Sequence[JudgeResult]) -> str:
    failed_names = {r.name for r in failed}
    if "identity" in failed_names:
        return "fix_identity"
    if failed_names & PROMPT_JUDGES:
        return "regenerate_with_prompt"
    if failed_names <= QUALITY_JUDGES:  # only quality judges failed: the content is right
        return "enhance_quality"
    if _mean_confidence(results) < LOW_CONFIDENCE:
        return "manual_review"
    return "regenerate"


def borderline_critical(results: Sequence[JudgeResult]) -> list[str]:
    """Critical judges that passed with a decisive measurement inside its uncertainty band,
    each as a sentence that states the margin, the band and where the band comes from."""
    out = []
    for r in results:
        if not (r.critical and r.passed):
            continue
        for m in r.measurements:
            if m.decisive and m.borderline and m.margin is not None:
                source = f" ({m.band_source})" if m.band_source else ""
                out.append(
                    f"{r.name} {m.name} {m.value:.3f} is {m.margin:+.3f} from the threshold {m.threshold:.3f}, "
                    f"within the band ±{m.band:g}{source}"
                )
    return out


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


def _improved_prompt(prompt: str | None, failed: Sequence[JudgeResult], also_asked: str = "") -> str | None:
    """Rewrite the prompt so that each failed check is asked for, in words a generator reads.

    - what was asked and missed is added once, as the phrase itself ("a red hat"), never
      repeated when the prompt already says it, never wrapped in boilerplate;
    - what the image showed instead ("a blue hat") goes to the Avoid clause: the strongest
      wording for an attribute that came out wrong, without naming it in the positive text;
    - quality hints are concrete and never contradict the request ("balanced exposure" is
      not added to a prompt that asks for a white background);
    - no prompt and nothing concrete to ask for: no rewrite (never a fragment).
    """
    base = (prompt or "").strip().rstrip(".")
    asked = f"{base} {also_asked}".lower()
    additions: list[str] = []
    negatives: list[str] = []
    for r in failed:
        for issue in r.issues:
            target = issue.target
            if target is None:
                m = QUOTED.search(issue.detail)
                target = m.group(1) if m else None
            if r.name in PROMPT_JUDGES and target and issue.subcategory != "empty_image":
                if issue.subcategory in {"prohibited_element", "prohibition"}:
                    negatives.append(target)
                    continue
                if issue.instead and issue.instead.lower() not in asked:
                    negatives.append(issue.instead)
                elif _says(base.lower(), target.lower()):
                    # asked for and missed, nothing specific instead: stress it where it stands
                    base = _stress(base, target)
                additions.append(target)
            else:
                hint = QUALITY_HINTS.get(issue.subcategory)
                conflicts = HINT_CONFLICTS.get(issue.subcategory, ())
                if hint and not any(_says(asked, word) for word in conflicts):
                    additions.append(hint)
    original = (prompt or "").strip().rstrip(".")
    extra = [a for a in dict.fromkeys(additions) if a and not _says(base.lower(), a.lower())]
    if not base and not any(a not in QUALITY_HINTS.values() for a in extra):
        return None  # nothing but quality words and no prompt to attach them to: a fragment
    if not extra and not negatives and base == original:
        return None
    return _assemble(base, extra, list(dict.fromkeys(negatives)))


def _stress(base: str, target: str) -> str:
    """'a red hat on a table' -> 'a red hat in clear view on a table' (once)."""
    stressed = f"{target} in clear view"
    if stressed.lower() in base.lower():
        return base
    m = re.search(rf"(?<![\w-]){re.escape(target)}(?![\w-])", base, flags=re.I)
    return base if m is None else base[: m.end()] + " in clear view" + base[m.end() :]


def _says(text: str, phrase: str) -> bool:
    """True when ``phrase`` occurs in ``text`` as whole words."""
    return re.search(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", text) is not None


def _assemble(base: str, extra: list[str], negatives: list[str]) -> str:
    """'base, extra. Avoid: negatives.' within GENERATION_PROMPT_MAX, shortening the
    original prompt (never the advice) when it would not fit."""
    tail = ". Avoid: " + ", ".join(negatives) if negatives else ""
    joined = ", ".join(extra)
    # the improved prompt must be usable as the next request's generation_prompt
    room = GENERATION_PROMPT_MAX - len(tail) - 1 - (len(joined) + 2 if joined and base else len(joined))
    if len(base) > room:
        cut = base[: max(room, 0)]
        base = (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(" ,;.")
    out = ", ".join([p for p in [base, joined] if p]) + tail
    return out[: GENERATION_PROMPT_MAX - 1] + "."
