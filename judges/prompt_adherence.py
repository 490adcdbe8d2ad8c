"""prompt_adherence: does the image show what the prompt asked — as a whole and in its parts?

The prompt is split by the deterministic parser (``imagejury.judges.prompt_parser``) into
sub-points ("a red hat", "two dogs", "a beach", "a watercolor painting"); each, and the
whole prompt, is scored *contrastively* against foils (one word changed), giving the
probability that the image supports the text over its alternatives
(``imagejury.judges.clip_scoring``). A sub-point passes when that probability reaches the
threshold for the configured CLIP model.

Thresholds (``THRESHOLDS``): the probability is a softmax over [text, k foils], so
chance is 1/(k+1) (~0.07–0.11 with the default foil budget). For real CLIP models the
default 0.5 asks that the text hold more probability than *all its foils together* —
i.e. at least (k+1)/2 times chance and above every single foil; it is not measured on a
labelled set of real images (none ships offline). For the project's tiny shapes CLIP the
value was chosen by ``benchmarks/text_judges_accuracy.py`` on a calibration split and
checked on a held-out split (``benchmarks/results/text_judges.md``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from imagejury.judges.base import JudgeConfig, confidence_from_margin
from imagejury.judges.clip_scoring import (
    EMPTY_THRESHOLD,
    ClipTextJudge,
    Contrast,
    ModelThreshold,
    ThresholdTable,
    contrast,
    emptiness_measurement,
    emptiness_score,
    no_better_than_plain,
    not_empty,
)
from imagejury.judges.prompt_parser import ATTRIBUTE_CLASSES, ParsedPrompt, PromptParser, SubPoint
from imagejury.judges.taxonomy import CLASS_ASPECT
from imagejury.judges.types import Directives, JudgeIssue, JudgeItem, JudgeResult, Measurement
from imagejury.judges.vocabulary import load_vocabulary

log = logging.getLogger(__name__)

THRESHOLDS = ThresholdTable(
    rows=[
        ModelThreshold(
            "*tiny_shapes_clip*",
            0.5,
            "benchmarks/text_judges_accuracy.py: sweep on a calibration split of generated shape images, "
            "checked on a held-out split (benchmarks/results/text_judges.md)",
        ),
    ],
    default=ModelThreshold(
        "*",
        0.5,
        "chance-level reasoning: softmax over [text, k foils]; 0.5 = more probability than all foils together "
        "(>= (k+1)/2 x chance, above every foil); not measured on labelled real images",
    ),
)

# which rubric aspect a foil class belongs to (an ignored aspect drops those foils): the
# one table in taxonomy.py, shared with the attributes judge and the rubric parser
FOIL_ASPECT = CLASS_ASPECT
WHOLE = "whole prompt"


class PromptAdherenceConfig(JudgeConfig):
    threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="pass probability; None = the per-model value in THRESHOLDS (with its source)"
    )
    min_sub_point_fraction: float = Field(
        0.75,
        ge=0.0,
        le=1.0,
        description="share of sub-points that must pass (product choice: one part in four may be missed by CLIP's "
        "weak attribute binding; sub-points of a prioritised aspect must always pass)",
    )
    max_sub_points: int = Field(
        12, ge=1, description="cap on sub-points scored per prompt; the rest are listed as not scored"
    )
    max_foils_per_class: int = Field(6, ge=1, description="alternatives per swapped word (vocabulary order)")
    max_prompt_foils: int = Field(12, ge=1, description="foils for the whole prompt (one change each, round-robin)")
    vocabulary: dict[str, list[str]] | None = Field(
        None, description="narrow vocabulary classes to the values the model knows, e.g. {'colour': [...]}"
    )
    confidence_scale: float = Field(
        0.25, gt=0.0, description="probability distance from the threshold at which confidence ~0.88"
    )


class PromptAdherenceJudge(ClipTextJudge):
    name = "prompt_adherence"
    category = "prompt_adherence"
    description = (
        "Whether the image shows the prompt, as a whole and sub-point by sub-point, scored against near-miss foils."
    )
    default_weight = 2.0
    version = "1"
    requires = frozenset({"prompt"})
    Config = PromptAdherenceConfig
    config: PromptAdherenceConfig

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.parser = PromptParser(
            load_vocabulary(self.config.vocabulary), self.config.max_foils_per_class, self.config.max_prompt_foils
        )

    def threshold(self) -> ModelThreshold:
        return THRESHOLDS.resolve(self.config.threshold, self.clip_source)

    def judge(self, batch: Sequence[JudgeItem]) -> list[JudgeResult]:
        if not batch:
            return []
        plans = [self._plan(item) for item in batch]
        texts: list[str] = []
        for parsed, points, _ in plans:
            texts += [parsed.text, *(f.text for f in parsed.prompt_foils)]
            for p in points:
                texts += [p.text, *(f.text for f in p.foils)]
        images = self.image_embeddings(batch)
        plains = self.plain_embeddings(batch)
        emb = self.text_embeddings(batch, texts)
        scale = self.logit_scale
        thr = self.threshold()
        return [
            self._judge_one(item, (images[i], plains[i]), parsed, points, skipped, emb, scale, thr)
            for i, (item, (parsed, points, skipped)) in enumerate(zip(batch, plans))
        ]

    # -- planning --------------------------------------------------------------
    def _plan(self, item: JudgeItem) -> tuple[ParsedPrompt, list[SubPoint], list[str]]:
        """Parse, apply directives, cap: (parsed, sub-points to score, notes on what was not scored)."""
        parsed = self.parser.parse(item.prompt or "")
        d: Directives = item.directives
        notes: list[str] = []
        drop_classes = {cls for cls, aspect in FOIL_ASPECT.items() if aspect in d.ignore}
        parsed.prompt_foils = [f for f in parsed.prompt_foils if f.changed not in drop_classes]
        points: list[SubPoint] = []
        for p in parsed.sub_points:
            if p.aspect in d.ignore:
                notes.append(f"'{p.text}' not scored: the rubric ignores {p.aspect}")
                continue
            p.foils = [f for f in p.foils if f.changed not in drop_classes]
            if not p.foils:
                notes.append(f"'{p.text}' not scored: no alternatives to compare against")
                continue
            points.append(p)
        if len(points) > self.config.max_sub_points:
            extra = points[self.config.max_sub_points :]
            points = points[: self.config.max_sub_points]
            notes.append(
                f"{len(extra)} sub-point(s) not scored (cap max_sub_points={self.config.max_sub_points}): "
                + ", ".join(f"'{p.text}'" for p in extra)
            )
        return parsed, points, notes

    # -- scoring ---------------------------------------------------------------
    def _judge_one(
        self,
        item: JudgeItem,
        rows: tuple[Any, Any],  # (D,) numpy rows: the image and its plain canvas (the emptiness foil)
        parsed: ParsedPrompt,
        points: list[SubPoint],
        notes: list[str],
        emb: dict,
        scale: float,
        thr: ModelThreshold,
    ) -> JudgeResult:
        t = thr.value
        image_emb, plain_emb = rows
        whole = contrast(
            image_emb,
            parsed.text,
            [f.text for f in parsed.prompt_foils],
            emb,
            scale,
            [f.changed for f in parsed.prompt_foils],
        )
        whole_passed = whole.score >= t if parsed.prompt_foils else True
        results: dict[str, dict] = {WHOLE: {**whole.as_dict(), "kind": "whole_prompt", "passed": whole_passed}}
        issues: list[JudgeIssue] = []
        evidence: list[str] = [
            f"whole prompt: p={whole.score:.3f} vs {whole.n_foils} foils (chance {whole.chance:.3f}), "
            f"best foil '{whole.best_foil}' p={whole.best_foil_prob:.3f}, cosine {whole.cosine:.3f}, margin {whole.margin:+.3f}"
            if parsed.prompt_foils
            else "whole prompt: no foils could be built from its parts; not scored on its own"
        ]
        strengths: list[str] = []
        scored: list[tuple[SubPoint, Contrast, bool]] = []
        for p in points:
            c = contrast(image_emb, p.text, [f.text for f in p.foils], emb, scale, [f.changed for f in p.foils])
            ok = c.score >= t
            scored.append((p, c, ok))
            key = p.text if p.text not in results else f"{p.text} ({p.kind})"
            results[key] = {**c.as_dict(), "kind": p.kind, "passed": ok, "attributes": p.attributes, "aspect": p.aspect}
            evidence.append(
                f"'{p.text}' ({p.kind}): p={c.score:.3f} vs {c.n_foils} foils, best foil '{c.best_foil}' "
                f"p={c.best_foil_prob:.3f}, margin {c.margin:+.3f}"
            )
            if ok:
                strengths.append(f"shows '{p.text}' (p={c.score:.2f})")
            else:
                issues.append(self._issue(p, c, t, item.directives))

        n_ok = sum(ok for _, _, ok in scored)
        fraction = n_ok / len(scored) if scored else 1.0
        prioritised_failed = [p.text for p, _, ok in scored if not ok and p.aspect in item.directives.prioritise]
        if not parsed.prompt_foils and not scored:
            return self._not_checkable(parsed, notes)
        # the emptiness foil: a prompt with a subject must fit this image better than a plain
        # canvas of its colours (a blank, plain or unrelated image does not pass "a red circle")
        empty_p = (
            emptiness_score(emb[parsed.text], image_emb, plain_emb, scale)
            if plain_emb is not None and any(p.kind in {"subject", "object"} for p in parsed.sub_points)
            else None
        )
        shown = not_empty(empty_p)
        evidence.append(
            "emptiness foil: not applied (the image is not near-uniform, or the prompt names no subject)"
            if empty_p is None
            else f"emptiness foil: P(this image over a plain canvas of its colours | prompt) = {empty_p:.3f} "
            f"(needs {EMPTY_THRESHOLD:.2f})"
        )
        # everything but the emptiness foil passed
        otherwise_passed = whole_passed and fraction >= self.config.min_sub_point_fraction and not prioritised_failed
        if not shown and otherwise_passed:
            # named only when nothing else explains the failure (a wrong colour is a wrong colour)
            issues.insert(
                0,
                JudgeIssue(
                    "empty_image",
                    f"{no_better_than_plain('the prompt', empty_p)}: the subject is missing",  # type: ignore[arg-type]
                    severity=1.0,
                    target=parsed.text,
                ),
            )
        passed = otherwise_passed and shown
        if not whole_passed and n_ok == len(scored):
            issues.append(
                JudgeIssue(
                    "prompt_mismatch",
                    f"the whole prompt is not supported: '{whole.best_foil}' fits better (p={whole.best_foil_prob:.2f} vs {whole.score:.2f})",
                    severity=0.8,
                    target=parsed.text,
                )
            )
        measurements = self._measurements(parsed, whole, scored, fraction, t, item.directives)
        if empty_p is not None:
            measurements.insert(0, emptiness_measurement("not_empty", empty_p, self.clip_source))
        margins = [whole.score - t] if parsed.prompt_foils else []
        if empty_p is not None:
            margins.append(empty_p - EMPTY_THRESHOLD)
        margins += [c.score - t for _, c, _ in scored]
        # passed: the weakest passing part decides; failed: the clearest failure
        decisive = min((m for m in margins if m >= 0), default=0.0) if passed else min(margins)
        reasoning = (
            f"Whole prompt {'supported' if whole_passed else 'not supported'} (p={whole.score:.2f}, threshold {t:.2f}); "
            f"{n_ok}/{len(scored)} sub-points found (need {self.config.min_sub_point_fraction:.0%}). "
            f"Scores are softmax probabilities of each text against near-miss foils with the model's logit scale "
            f"{scale:.1f}; threshold from: {thr.source}."
        )
        if prioritised_failed:
            reasoning += f" Prioritised by the rubric and missing: {', '.join(repr(x) for x in prioritised_failed)}."
        extra = list(notes)
        tokens = self._token_count(parsed.text)
        ctx = int(getattr(self.embedder, "context_length", 0) or 0)
        if tokens is not None and ctx and tokens > ctx:
            extra.append(
                f"the prompt is {tokens} tokens, over the model's {ctx}: the embedder encoded it in chunks and averaged them"
            )
        if parsed.negations:
            extra.append(
                "negated phrases not checked here (see the instructions judge): "
                + ", ".join(f"'{n}'" for n in parsed.negations)
            )
        if parsed.unparsed:
            extra.append("words not in the vocabulary, not checked: " + ", ".join(parsed.unparsed[:20]))
        if extra:
            reasoning += " " + "; ".join(extra) + "."
        evidence += extra
        return self.result(
            passed=passed,
            confidence=confidence_from_margin(decisive, self.config.confidence_scale),
            reasoning=reasoning,
            score=round(min(whole.score, fraction) if parsed.prompt_foils else fraction, 4),
            threshold=t,
            evidence=evidence,
            sub_point_results=results,
            sub_points_evaluated=len(scored),
            issues=issues,
            strengths=strengths[:5],
            measurements=measurements,
            decision_rule="all",
        )

    def _measurements(
        self,
        parsed: ParsedPrompt,
        whole: Contrast,
        scored: list[tuple[SubPoint, Contrast, bool]],
        fraction: float,
        t: float,
        d: Directives,
    ) -> list[Measurement]:
        """The vote as data: the whole prompt's probability, the share of sub-points found,
        and each sub-point's probability (decisive only when the rubric prioritises its aspect)."""
        units = "softmax probability of the text over its near-miss foils"
        model = self.clip_source
        out = []
        if parsed.prompt_foils:
            out.append(Measurement("whole_prompt", whole.score, t, True, units, model=model))
        out.append(
            Measurement(
                "sub_points_found",
                fraction,
                self.config.min_sub_point_fraction,
                True,
                "share of scored sub-points at or above the threshold",
                model=model,
            )
        )
        for p, c, _ in scored:
            out.append(
                Measurement(f"sub:{p.text}", c.score, t, True, units, model=model, decisive=p.aspect in d.prioritise)
            )
        return out

    def _token_count(self, text: str) -> int | None:
        count = getattr(self.embedder, "count_tokens", None)
        if count is None:
            return None
        try:
            return int(count(text))
        except Exception:  # noqa: BLE001 - a note only; never fail the judge over it
            return None

    def _issue(self, p: SubPoint, c: Contrast, t: float, d: Directives) -> JudgeIssue:
        severity = 1.0 if p.aspect in d.prioritise or p.kind == "subject" else 0.7
        nums = f"p={c.score:.2f} < {t:.2f}; '{c.best_foil}' p={c.best_foil_prob:.2f}"
        cls = c.best_foil_class
        if cls in ATTRIBUTE_CLASSES:
            return JudgeIssue(
                "wrong_attribute",
                f"wrong {cls} for '{p.text}': the image fits '{c.best_foil}' better ({nums})",
                severity,
                target=p.text,
                instead=c.best_foil,
            )
        if cls == "count":
            return JudgeIssue(
                "wrong_count",
                f"count not matched for '{p.text}': the image fits '{c.best_foil}' better ({nums})",
                severity,
                target=p.text,
                instead=c.best_foil,
            )
        if p.kind in {"style", "lighting", "weather", "shot"}:
            return JudgeIssue(f"wrong_{p.kind}", f"{p.kind} not matched: '{p.text}' ({nums})", severity, target=p.text)
        return JudgeIssue("missing_element", f"sub-point not found: '{p.text}' ({nums})", severity, target=p.text)

    def _not_checkable(self, parsed: ParsedPrompt, notes: list[str]) -> JudgeResult:
        reason = (
            "Nothing in the prompt could be checked contrastively: no recognised objects, attributes, settings or "
            "styles with alternatives in the vocabulary. " + "; ".join(notes)
        ).strip()
        return self.result(
            passed=True,
            confidence=0.5,
            weight=0.0,
            reasoning=reason + " Not voted: weight 0, so it cannot move the verdict.",
            score=None,
            evidence=["words not in the vocabulary: " + ", ".join(parsed.unparsed[:20])] if parsed.unparsed else [],
            sub_point_results={},
            sub_points_evaluated=0,
        )
