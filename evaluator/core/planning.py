"""Which judges run for one item, with what weight, and which are critical.

From the task preset and job class, then each judge's own ``applies()`` (prompt,
instructions, attributes and reference kinds present), then the rubric's directives
("ignore the background", "prioritise the face"). A judge that does not apply is not
run and not counted; the plan records why, for the check summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from imagejury.core.presets import Preset, preset_for
from imagejury.judges.base import Judge
from imagejury.judges.types import JudgeItem

# rubric aspect -> judges it switches off ("ignore ...") or weighs up ("prioritise ...")
ASPECT_JUDGES: dict[str, frozenset[str]] = {
    "quality": frozenset({"technical_quality", "technical_signals"}),
    "identity": frozenset({"identity"}),
    "face": frozenset({"identity", "headshot"}),
    "prompt": frozenset({"prompt_adherence"}),
    "aesthetics": frozenset({"aesthetics"}),
    "composition": frozenset({"headshot"}),
    "reference": frozenset({"reference_similarity"}),
    "clothing": frozenset({"reference_similarity"}),
    "attributes": frozenset({"attributes"}),
}
# ignoring these would switch off a safeguard, so the rubric cannot skip them (nor a
# preset's critical judges: see plan_item)
NEVER_SKIPPED = frozenset({"safety"})
PRIORITY_FACTOR = 2.0


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
        plan.notes.append(f"task_type '{item.task_type}' has no preset; used '{preset.name}'")
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
