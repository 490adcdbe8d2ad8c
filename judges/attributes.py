"""attributes: check each visible ``input_attributes`` key/value zero-shot against its alternatives.

A key is checked only when the shipped vocabulary knows it (``attribute_keys`` in
``judges/data/vocabulary.json``: colour, shape, style, lighting, weather, shot, setting,
background, material, pattern, animal, vehicle, clothing, object — with aliases such as
``color``, ``art_style``, ``shot_type``). Its value is scored against the *other values of
the same key* (``{"color": "red"}`` vs blue, green, ...), with a few caption templates
averaged (prompt ensembling, as in CLIP's zero-shot recipe) and the prompt's subject noun
filled in where the template has one ("a red circle" when the prompt is about a circle).

Keys that are metadata (width, height, aspect_ratio — those belong to technical_signals —
seeds, model names, ids) and keys the vocabulary does not know are reported as not
evaluated, never guessed. Threshold: the same per-model table as prompt_adherence (a
softmax over [value, k alternatives]; see that module for the provenance).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
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
from imagejury.judges.taxonomy import CLASS_ASPECT
from imagejury.judges.types import JudgeIssue, JudgeItem, JudgeResult, Measurement
from imagejury.judges.vocabulary import Vocabulary, fix_articles, load_vocabulary, tokenize

# rubric aspect of each attribute key (an ignored aspect skips the key): taxonomy's table
KEY_ASPECT = CLASS_ASPECT
# vocabulary classes that describe the whole scene, not a subject: a plain canvas may rightly
# show them, so the emptiness foil does not apply to them
SCENE_CLASSES = frozenset({"background", "setting", "lighting", "weather", "style", "shot"})


class AttributesConfig(JudgeConfig):
    threshold: float | None = Field(None, ge=0.0, le=1.0, description="pass probability; None = per-model table")
    max_alternatives: int = Field(8, ge=1, description="other values of the key scored against (vocabulary order)")
    vocabulary: dict[str, list[str]] | None = Field(
        None, description="narrow vocabulary classes (see prompt_adherence)"
    )
    confidence_scale: float = Field(0.25, gt=0.0)


class _Check:
    def __init__(
        self, key: str, value: str, spec_name: str, cls: str, texts: list[list[str]], labels: list[str]
    ) -> None:
        self.key, self.value, self.spec_name, self.cls = key, value, spec_name, cls
        self.texts = texts  # per candidate (value first): the template captions
        self.labels = labels  # per candidate: the value


class AttributesJudge(ClipTextJudge):
    name = "attributes"
    category = "attributes"
    description = (
        "Whether each visible input attribute (style, colour, background, lighting, shot, ...) shows in the image."
    )
    default_weight = 1.0
    version = "1"
    requires = frozenset({"attributes"})
    Config = AttributesConfig
    config: AttributesConfig

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.vocab: Vocabulary = load_vocabulary(self.config.vocabulary)
        self.parser = PromptParser(self.vocab)

    def threshold(self) -> ModelThreshold:
        return THRESHOLDS.resolve(self.config.threshold, self.clip_source)

    # -- planning --------------------------------------------------------------
    def _subject(self, item: JudgeItem) -> str:
        if item.prompt:
            for p in self.parser.parse(item.prompt).sub_points:
                if p.kind == "subject" and p.head and not p.head.startswith("("):
                    return p.head
        return "object"

    def _plan(self, item: JudgeItem) -> tuple[list[_Check], list[str]]:
        checks: list[_Check] = []
        not_evaluated: list[str] = []
        subject = self._subject(item)
        for key, raw in item.attributes.items():
            values = raw if isinstance(raw, (list, tuple)) else [raw]
            found = self.vocab.key_spec(str(key))
            if found is None:
                group = self.vocab.non_visual_reason(str(key))
                if group == "technical":
                    not_evaluated.append(f"'{key}': not visual content here (size/format is technical_signals' job)")
                elif group:
                    not_evaluated.append(f"'{key}': {group} metadata, not something the image shows")
                else:
                    not_evaluated.append(
                        f"'{key}': unknown attribute key; not evaluated (no vocabulary to compare against)"
                    )
                continue
            spec_name, spec = found
            aspect = KEY_ASPECT.get(spec_name)
            if aspect and aspect in item.directives.ignore:
                not_evaluated.append(f"'{key}': skipped, the rubric ignores {aspect}")
                continue
            for v in values:
                if not isinstance(v, str) or not v.strip():
                    not_evaluated.append(f"'{key}': value {v!r} is not a word or phrase; not evaluated")
                    continue
                check = self._check(str(key), v.strip(), spec_name, spec, subject)
                if check is None:
                    not_evaluated.append(f"'{key}'='{v}': no alternative values known for this key; not evaluated")
                else:
                    checks.append(check)
        return checks, not_evaluated

    def _check(self, key: str, value: str, spec_name: str, spec: dict[str, Any], subject: str) -> _Check | None:
        classes = spec.get("class")
        if classes is None:  # a free object: find its class from the noun
            words = [w for w, _, _ in tokenize(value)]
            match = self.vocab.match(words, 0) if words else None
            if match is None or match[0].kind != "noun" or match[1] != len(words):
                return None
            cls = match[0].cls
        else:
            options = [classes] if isinstance(classes, str) else list(classes)
            cls = next((c for c in options if self.vocab.classes[c].canonical_of(value)), options[0])
        wc = self.vocab.classes[cls]
        canonical = wc.canonical_of(value) or value.lower()
        alts = self.vocab.alternatives(cls, canonical, self.config.max_alternatives)
        if not alts:
            return None
        subj = subject if cls != "clothing" else "person"

        def captions(v: str) -> list[str]:
            return [fix_articles(t.format(value=v, display=wc.caption(v), subject=subj)) for t in spec["templates"]]

        return _Check(key, value, spec_name, cls, [captions(canonical)] + [captions(a) for a in alts], [value] + alts)

    # -- judging ---------------------------------------------------------------
    def judge(self, batch: Sequence[JudgeItem]) -> list[JudgeResult]:
        if not batch:
            return []
        plans = [self._plan(item) for item in batch]
        texts = [t for checks, _ in plans for c in checks for group in c.texts for t in group]
        images = self.image_embeddings(batch)
        plains = self.plain_embeddings(batch)
        emb = self.text_embeddings(batch, texts)
        scale = self.logit_scale
        thr = self.threshold()
        out = []
        for i, (checks, not_evaluated) in enumerate(plans):
            scored = []
            for c in checks:
                ens = {label: _ensemble([emb[t] for t in group]) for label, group in zip(c.labels, c.texts)}
                r = contrast(images[i], c.labels[0], c.labels[1:], ens, scale, [c.cls] * (len(c.labels) - 1))
                # the emptiness foil, for values that describe a subject (a plain canvas may
                # rightly be "a white background" or "overcast", never "a red circle")
                empty = (
                    None
                    if c.cls in SCENE_CLASSES or (plain := plains[i]) is None
                    else emptiness_score(ens[c.labels[0]], images[i], plain, scale)
                )
                scored.append((c, r, empty))
            out.append(self._result(scored, not_evaluated, thr, scale))
        return out

    def _result(
        self,
        scored: list[tuple[_Check, Contrast, float | None]],
        not_evaluated: list[str],
        thr: ModelThreshold,
        scale: float,
    ) -> JudgeResult:
        t = thr.value
        if not scored:
            return self.result(
                passed=True,
                confidence=0.5,
                weight=0.0,
                reasoning="No attribute could be checked: " + "; ".join(not_evaluated) + ". Not voted: weight 0.",
                evidence=not_evaluated,
                sub_points_evaluated=0,
            )
        results: dict[str, dict] = {}
        issues, evidence, strengths, margins = [], [], [], []
        measurements: list[Measurement] = []
        n_ok = 0
        for c, r, empty in scored:
            shown = not_empty(empty)
            ok = r.score >= t and shown
            n_ok += ok
            margins.append(r.score - t)
            measurements.append(
                Measurement(
                    f"{c.key}={c.value}",
                    r.score,
                    t,
                    True,
                    f"softmax probability of the value over {r.n_foils} other values of its key",
                    model=self.clip_source,
                )
            )
            if empty is not None:
                margins.append(empty - EMPTY_THRESHOLD)
                measurements.append(emptiness_measurement(f"{c.key}={c.value} not_empty", empty, self.clip_source))
                evidence.append(emptiness_evidence(f"{c.key}='{c.value}'", empty))
            if not shown and r.score >= t:  # named only when the value itself was not wrong
                issues.append(
                    JudgeIssue(
                        "empty_image",
                        f"{c.key} '{c.value}' not shown: {no_better_than_plain('it', empty)}",  # type: ignore[arg-type]
                        target=fix_articles(c.texts[0][0]),
                    )
                )
            results[f"{c.key}={c.value}"] = {
                **r.as_dict(),
                "key": c.key,
                "value": c.value,
                "passed": ok,
                "templates": c.texts[0],
            }
            evidence.append(
                f"{c.key}='{c.value}': p={r.score:.3f} vs {r.n_foils} other {c.spec_name} values "
                f"(best '{r.best_foil}' p={r.best_foil_prob:.3f}), margin {r.margin:+.3f}"
            )
            if ok:
                strengths.append(f"{c.key} is {c.value}")
            elif r.score < t:
                issues.append(
                    JudgeIssue(
                        "attribute_mismatch",
                        f"{c.key} '{c.value}' not shown: the image looks more '{r.best_foil}' (p={r.score:.2f} < {t:.2f}; "
                        f"'{r.best_foil}' p={r.best_foil_prob:.2f})",
                        # the caption itself ("a red circle", "a corporate stock photo"): it reads as
                        # prompt words, where the bare value ("corporate") does not
                        target=fix_articles(c.texts[0][0]),
                        instead=fix_articles(c.texts[c.labels.index(r.best_foil)][0])
                        if r.best_foil in c.labels
                        else None,
                    )
                )
        passed = n_ok == len(scored)
        decisive = min(margins) if passed else min(m for m in margins if m < 0)
        reasoning = (
            f"{n_ok}/{len(scored)} attributes shown (each value vs the other values of its key; threshold {t:.2f}, "
            f"from: {thr.source}; logit scale {scale:.1f})."
        )
        if not_evaluated:
            reasoning += " Not evaluated: " + "; ".join(not_evaluated) + "."
        return self.result(
            passed=passed,
            confidence=confidence_from_margin(decisive, self.config.confidence_scale),
            reasoning=reasoning,
            score=round(min(r.score for _, r, _ in scored), 4),
            threshold=t,
            evidence=evidence + [f"not evaluated: {x}" for x in not_evaluated],
            sub_point_results=results,
            sub_points_evaluated=len(scored),
            issues=issues,
            strengths=strengths[:5],
            measurements=measurements,
            decision_rule="all",
        )


def _ensemble(rows: list[np.ndarray]) -> np.ndarray:
    """Mean of template embeddings, re-normalised (CLIP's prompt-ensembling)."""
    v = np.mean(np.stack(rows), axis=0)
    return v / max(float(np.linalg.norm(v)), 1e-12)
