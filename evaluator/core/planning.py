"""Which judges run for one item, with what weight, and which are critical.

From the task preset and job class, then each judge's own ``applies()`` (prompt,
instructions, attributes and reference kinds present), then the rubric's directives
("ignore the background", "prioritise the face"). A judge that does not apply is not
run and not counted; the plan records why, for the check summary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from imagejury.core.presets import PRIORITY_FACTOR, Preset, preset_for
from imagejury.judges.base import Judge
from imagejury.judges.taxonomy import (
    ASPECT_JUDGES,
    DEFAULT_TASK_TYPE,
    REFERENCE_KINDS,
    TASK_TYPES,
    UNKNOWN_KIND_TREATED_AS,
    resolve_reference_kind,
    resolve_task_type,
)
from imagejury.judges.types import JudgeItem

# ignoring these would switch off a safeguard, so the rubric cannot skip them (nor a
# preset's critical judges: see plan_item)
NEVER_SKIPPED = frozenset({"safety"})
__all__ = ["ASPECT_JUDGES", "NEVER_SKIPPED", "PRIORITY_FACTOR", "Plan", "PlannedJudge", "plan_item", "unknown_values"]


def unknown_values(task_type: str, reference_kinds: Sequence[str]) -> list[dict[str, Any]]:
    """Every task type or reference kind the tables do not know, as an issue naming the
    value, what it was treated as and the nearest known value — reported in the result
    (``check_summary.input_issues``), warned about by the CLI and batch, refused under
    ``[evaluation] strict = true``."""
    out: list[dict[str, Any]] = []
    resolved = resolve_task_type(task_type)
    if not resolved.known:
        out.append(_issue("task_type", task_type, f"'{DEFAULT_TASK_TYPE}'", resolved.suggestion, list(TASK_TYPES)))
    for n, kind in enumerate(reference_kinds):
        r = resolve_reference_kind(kind)
        if not r.known:
            out.append(
                _issue(
                    f"reference_images[{n}].kind", kind, UNKNOWN_KIND_TREATED_AS, r.suggestion, list(REFERENCE_KINDS)
                )
            )
    return out


def _issue(field_name: str, value: str, treated_as: str, suggestion: str | None, known: list[str]) -> dict[str, Any]:
    hint = f"did you mean '{suggestion}'?" if suggestion else f"known: {', '.join(known)}"
    return {
        "field": field_name,
        "value": value,
        "treated_as": treated_as,
        "suggestion": suggestion,
        "message": f"unknown {field_name} '{value}': treated as {treated_as}; {hint}",
    }


@dataclass
class PlannedJudge:
    judge: Judge
    weight: float
    critical: bool


@dataclass
class Plan:
    preset: Preset
    preset_matched: bool
    judges: list[PlannedJudge] = field(default_factory=list)
    not_applicable: list[str] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (judge, why)
    not_installed: list[str] = field(default_factory=list)  # in the preset, but no such judge here
    notes: list[str] = field(default_factory=list)


def plan_item(
    item: JudgeItem,
    pool: dict[str, Judge],
    extra_weights: dict[str, float] | None = None,
    disabled: frozenset[str] | set[str] = frozenset(),
) -> Plan:
    """Plan one item. ``pool`` holds the judge instances for the item's job class;
    ``extra_weights`` adds judges enabled in the config beyond the preset; ``disabled``
    are judges the operator switched off (``enabled = false``)."""
    preset, matched = preset_for(item.task_type)
    plan = Plan(preset=preset, preset_matched=matched)
    if not matched:
        suggestion = resolve_task_type(item.task_type).suggestion
        hint = f"; did you mean '{suggestion}'?" if suggestion else ""
        plan.notes.append(f"task_type '{item.task_type}' has no preset; used '{preset.name}'{hint}")
    wanted = preset.judges_for(item.job_class)
    for name, w in (extra_weights or {}).items():
        wanted[name] = w

    ignored_judges: dict[str, str] = {}
    boosted: set[str] = set()
    for aspect in item.directives.ignore:
        for name in ASPECT_JUDGES.get(aspect, ()):
            if name not in NEVER_SKIPPED:
                ignored_judges[name] = f"the rubric says to ignore {aspect}"
    for aspect in item.directives.prioritise:
        boosted |= ASPECT_JUDGES.get(aspect, frozenset())

    for name, preset_weight in wanted.items():
        if name in disabled:
            continue
        judge = pool.get(name)
        if judge is None:
            plan.not_installed.append(name)
            continue
        if not judge.applies(item):
            plan.not_applicable.append(name)
            continue
        if name in ignored_judges:
            if name in preset.critical:
                # a rubric cannot switch off what makes this task type pass or fail
                plan.notes.append(f"{ignored_judges[name]}, but {name} is critical for '{preset.name}' and still runs")
            else:
                plan.ignored.append((name, ignored_judges[name]))
                continue
        configured = judge.config.weight
        weight = configured if configured is not None else preset_weight
        if name in boosted:
            weight *= PRIORITY_FACTOR
            plan.notes.append(f"{name} weighted x{PRIORITY_FACTOR:g}: the rubric prioritises it")
        plan.judges.append(PlannedJudge(judge=judge, weight=weight, critical=name in preset.critical))
    return plan
