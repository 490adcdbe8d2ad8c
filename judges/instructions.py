"""instructions: check the free-text rubric's requirements and prohibitions on the image.

The rubric is read by ``imagejury.judges.rubric.parse_rubric`` into requirements ("the background
must be plain white"), prohibitions ("no text or watermark", "no blue shapes") and
directives ("ignore the background", "prioritise the face"). Every reading is written
into the reasoning, so a user sees how the rubric was understood.

Scoring, zero-shot and contrastive (``imagejury.judges.clip_scoring``):

- a phrase the vocabulary can vary ("blue shapes", "a plain white background") is scored
  against its foils ("red shapes", "a plain black background", ...) — and, for a
  requirement of the form "X must be Y", against the bare "X" too;
- a phrase it cannot vary ("text", "a smiling person") is scored as *with vs without*:
  "<context> with <phrase>" against "<context>", where the context is the prompt (or
  "an image"). CLIP reads negation poorly, so absence is never written as "no X".

A requirement is met, and a prohibited thing is present, when the phrase's probability
reaches the threshold for the configured model (the same table and provenance as
prompt_adherence). Requirements on an aspect the rubric says to ignore are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from imagejury.judges.base import JudgeConfig, confidence_from_margin
from imagejury.judges.clip_scoring import (
    EMPTY_THRESHOLD,
    ClipTextJudge,
    Contrast,
    ModelThreshold,
    contrast,
    emptiness_evidence,
    emptiness_measurement,
    emptiness_score,
    no_better_than_plain,
    not_empty,
)
from imagejury.judges.prompt_adherence import THRESHOLDS
from imagejury.judges.prompt_parser import PromptParser
from imagejury.judges.rubric import Rubric, RubricCheck, parse_rubric
from imagejury.judges.taxonomy import DEFECT_ASPECTS
from imagejury.judges.types import JudgeIssue, JudgeItem, JudgeResult, Measurement
from imagejury.judges.vocabulary import load_vocabulary


class InstructionsConfig(JudgeConfig):
    threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="requirement met / prohibited thing present at this probability; None = per-model table",
    )
    max_checks: int = Field(20, ge=1, description="cap on checks per rubric; the rest are listed as not scored")
    max_foils_per_class: int = Field(6, ge=1)
    vocabulary: dict[str, list[str]] | None = Field(
        None, description="narrow vocabulary classes (see prompt_adherence)"
    )
    confidence_scale: float = Field(0.25, gt=0.0)


class InstructionsJudge(ClipTextJudge):
    name = "instructions"
    category = "instructions"
    description = "Whether the image meets the rubric's requirements and avoids its prohibitions; directives recorded."
    default_weight = 1.5
    version = "1"
    requires = frozenset({"instructions"})
    Config = InstructionsConfig
    config: InstructionsConfig

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.parser = PromptParser(load_vocabulary(self.config.vocabulary), self.config.max_foils_per_class)

    def threshold(self) -> ModelThreshold:
        return THRESHOLDS.resolve(self.config.threshold, self.clip_source)

    def _candidates(self, check: RubricCheck, context: str) -> tuple[str, list[str], list[str | None], str]:
        """(text, foils, foil classes, how) for one check."""
        point, foils = self.parser.phrase_foils(check.phrase)
        if check.base and point is not None:
            # "the square must be red": only the predicate varies, the subject is given
            foils = [f for f in foils if f.changed != point.head_class or point.head_class is None]
        if foils:
            texts = [f.text for f in foils]
            classes: list[str | None] = [f.changed for f in foils]
            if check.base and check.base.lower() != check.phrase.lower():
                texts.append(check.base)
                classes.append("base")
            return check.phrase, texts, classes, "against its vocabulary foils"
        if check.base and check.base.lower() != check.phrase.lower():
            return check.phrase, [check.base], ["base"], f"against '{check.base}'"
        return (
            f"{context} with {check.phrase}",
            [context],
            ["absent"],
            f"'{context} with {check.phrase}' vs '{context}'",
        )

    def judge(self, batch: Sequence[JudgeItem]) -> list[JudgeResult]:
        if not batch:
            return []
        plans = []
        texts: list[str] = []
        for item in batch:
            rubric = parse_rubric(item.instructions)
            context = (item.prompt or "").strip().rstrip(".") or "an image"
            checks, skipped = self._select(rubric, item)
            cands = [(c, *self._candidates(c, context)) for c in checks]
            for _, text, foils, _, _ in cands:
                texts += [text, *foils]
            plans.append((rubric, cands, skipped))
        images = self.image_embeddings(batch)
        plains = self.plain_embeddings(batch)
        emb = self.text_embeddings(batch, texts)
        scale = self.logit_scale
        thr = self.threshold()
        out = []
        for i, (rubric, cands, skipped) in enumerate(plans):
            scored = [
                (
                    c,
                    how,
                    contrast(images[i], text, foils, emb, scale, classes),
                    emptiness_score(emb[text], images[i], plain, scale)
                    if (plain := plains[i]) is not None and _needs_a_subject(c)
                    else None,
                )
                for c, text, foils, classes, how in cands
            ]
            out.append(self._result(rubric, scored, skipped, thr, scale))
        return out

    def _select(self, rubric: Rubric, item: JudgeItem) -> tuple[list[RubricCheck], list[str]]:
        ignore = set(rubric.directives.ignore) | set(item.directives.ignore)
        checks, skipped = [], []
        for c in rubric.checks:
            if c.aspect and c.aspect in ignore:
                skipped.append(f"{c.kind} '{c.phrase}' skipped: the rubric ignores {c.aspect}")
            else:
                checks.append(c)
        if len(checks) > self.config.max_checks:
            skipped.append(
                f"{len(checks) - self.config.max_checks} check(s) not scored (cap max_checks={self.config.max_checks}): "
                + ", ".join(f"'{c.phrase}'" for c in checks[self.config.max_checks :])
            )
            checks = checks[: self.config.max_checks]
        return checks, skipped

    def _result(
        self,
        rubric: Rubric,
        scored: list[tuple[RubricCheck, str, Contrast, float | None]],
        skipped: list[str],
        thr: ModelThreshold,
        scale: float,
    ) -> JudgeResult:
        t = thr.value
        results: dict[str, dict] = {}
        issues: list[JudgeIssue] = []
        evidence: list[str] = []
        strengths: list[str] = []
        margins: list[float] = []
        n_ok = 0
        measurements: list[Measurement] = []
        for check, how, c, empty in scored:
            measurements.append(
                Measurement(
                    f"{check.kind}: {check.phrase}",
                    c.score,
                    t,
                    check.kind == "requirement",  # a prohibited element passes when it is *not* found
                    f"softmax probability of the text over its foils ({how})",
                    model=self.clip_source,
                )
            )
            if check.kind == "requirement":
                shown = not_empty(empty)
                ok = c.score >= t and shown
                margin = c.score - t if shown else empty - EMPTY_THRESHOLD  # type: ignore[operator]
                if empty is not None:
                    measurements.append(
                        emptiness_measurement(f"requirement: {check.phrase} not_empty", empty, self.clip_source)
                    )
                    evidence.append(emptiness_evidence(f"'{check.phrase}'", empty))
                if ok:
                    strengths.append(f"meets '{check.sentence}'")
                elif not shown and c.score >= t:  # the requirement's text fits, but no better than nothing
                    issues.append(
                        JudgeIssue(
                            "requirement_not_met",
                            f"requirement not met: '{check.phrase}' — {no_better_than_plain('it', empty)}",  # type: ignore[arg-type]
                            target=check.phrase,
                        )
                    )
                else:
                    issues.append(
                        JudgeIssue(
                            "requirement_not_met",
                            f"requirement not met: '{check.phrase}' (p={c.score:.2f} < {t:.2f}; '{c.best_foil}' p={c.best_foil_prob:.2f})",
                            target=check.phrase,
                            instead=c.best_foil,
                        )
                    )
            else:
                present = c.score >= t
                ok = not present
                margin = t - c.score
                if present:
                    issues.append(
                        JudgeIssue(
                            "prohibited_element",
                            f"prohibited element present: '{check.phrase}' (p={c.score:.2f} >= {t:.2f}; rubric: '{check.sentence}')",
                            target=check.phrase,
                        )
                    )
                else:
                    strengths.append(f"avoids '{check.phrase}'")
            n_ok += ok
            margins.append(margin)
            key = f"{check.kind}: {check.phrase}"
            results[key] = {
                **c.as_dict(),
                "kind": check.kind,
                "sentence": check.sentence,
                "passed": ok,
                "present" if check.kind == "prohibition" else "met": c.score >= t,
                "aspect": check.aspect,
            }
            evidence.append(
                f"{check.kind} '{check.phrase}' scored {how}: p={c.score:.3f} (threshold {t:.2f}), margin {c.margin:+.3f}"
            )

        d = rubric.directives
        read = "; ".join(d.notes) if d.notes else "no sentences"
        directive_txt = ""
        if d.ignore or d.prioritise:
            directive_txt = (
                f" Directives: ignore {sorted(d.ignore) or '-'}, prioritise {sorted(d.prioritise) or '-'} "
                "(applied by the evaluator to the other judges)."
            )
        if not scored:
            return self.result(
                passed=True,
                confidence=0.5,
                weight=0.0,
                reasoning=f"No checkable requirement or prohibition in the rubric. How it was read: {read}.{directive_txt} "
                + " ".join(skipped)
                + " Not voted: weight 0.",
                evidence=skipped,
                sub_points_evaluated=0,
            )
        passed = n_ok == len(scored)
        decisive = min(margins) if passed else min(m for m in margins if m < 0)
        reasoning = (
            f"{n_ok}/{len(scored)} rubric checks satisfied (threshold {t:.2f}, from: {thr.source}; logit scale {scale:.1f}). "
            f"How the rubric was read: {read}.{directive_txt}"
        )
        if skipped:
            reasoning += " " + " ".join(skipped)
        return self.result(
            passed=passed,
            confidence=confidence_from_margin(decisive, self.config.confidence_scale),
            reasoning=reasoning,
            score=round(n_ok / len(scored), 4),
            threshold=t,
            evidence=evidence + skipped,
            sub_point_results=results,
            sub_points_evaluated=len(scored),
            issues=issues,
            strengths=strengths[:5],
            measurements=measurements,
            decision_rule="all",
        )


#: rubric aspects a plain canvas may rightly satisfy ("the background must be plain white"):
#: requirements on them get no emptiness foil
_SCENE_ASPECTS = (
    frozenset({"background", "lighting", "colour", "composition", "aesthetics", "quality"}) | DEFECT_ASPECTS
)


def _needs_a_subject(check: RubricCheck) -> bool:
    """A requirement that names something to show ("there must be a red circle") must fit
    the image better than a plain canvas; prohibitions and scene-wide requirements need not."""
    return check.kind == "requirement" and check.aspect not in _SCENE_ASPECTS
