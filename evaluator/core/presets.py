"""Task presets: which judges a task type runs, their weights, what is critical, the pass
threshold — and the other verdict numbers (priority factor, action limits) — in ONE table.

Every number here is a product choice unless its comment names a measurement; none of
the weights or thresholds was fitted to labels (``imagejury calibrate`` is the way to fit
them to yours). A preset is data: ``standard`` runs every judge with a weight in its
column; ``quick`` runs the cheaper subset in ``QUICK`` (no BRISQUE/NIQE/PIQE, no
aesthetics; the quick job class also defaults to the smaller CLIP, ViT-B-32). A failed
*critical* judge fails the evaluation whatever the rate; a gate always does.

One weight per judge per preset. A judge's own ``default_weight`` applies only to a judge
no preset names (a third-party judge switched on with ``[judges.NAME] enabled = true``);
``[judges.NAME] weight = ...`` in the config overrides the preset's weight.

Task types and their aliases live in ``imagejury.judges.taxonomy.TASK_TYPES`` (one table
shared with the planner and the judges); each canonical task type has a preset here.
"""

from __future__ import annotations

from dataclasses import dataclass

from imagejury.judges.taxonomy import DEFAULT_TASK_TYPE, TASK_TYPES, resolve_task_type

HEADSHOT, GENERATION, PRODUCT = "headshot", "image_generation", "product"

# judge -> {preset: weight}. Relative weights are product choices: what the task is *for*
# weighs most (identity for a headshot, the prompt for generation, the reference for a
# product), pixel checks weigh about half of that, taste (aesthetics) least.
WEIGHTS: dict[str, dict[str, float]] = {
    #                       headshot  image_generation  product
    # pixel checks: one quick, one thorough; thorough counts a bit more (product choice)
    "technical_signals": {HEADSHOT: 1.0, GENERATION: 1.0, PRODUCT: 1.0},
    "technical_quality": {HEADSHOT: 1.5, GENERATION: 1.5, PRODUCT: 1.5},
    # the prompt: the whole point of generation (3.0); secondary when a person or a product
    # reference decides the task (product choice)
    "prompt_adherence": {HEADSHOT: 1.0, GENERATION: 3.0, PRODUCT: 1.5},
    # what the caller wrote as a rubric or attributes: as much as the prompt's default
    "instructions": {HEADSHOT: 2.0, GENERATION: 2.0, PRODUCT: 2.0},
    "attributes": {HEADSHOT: 1.5, GENERATION: 1.5, PRODUCT: 1.5},
    # taste: least, and least of all for a headshot (likeness over beauty; product choice)
    "aesthetics": {HEADSHOT: 0.5, GENERATION: 0.75, PRODUCT: 0.75},
    # a gate: its vote weight matters little, its gate failure fails the evaluation anyway
    "safety": {HEADSHOT: 1.0, GENERATION: 1.0, PRODUCT: 1.0},
    # identity: what a headshot is for (3.0, and critical); elsewhere when a face reference is given
    "identity": {HEADSHOT: 3.0, GENERATION: 2.0, PRODUCT: 2.0},
    "headshot": {HEADSHOT: 2.0},
    # the reference item: what a product shot is for (3.0, and critical)
    "reference_similarity": {HEADSHOT: 1.5, GENERATION: 1.5, PRODUCT: 3.0},
}
#: judges the quick job class runs (no no-reference IQA models, no aesthetics head)
QUICK = frozenset(
    {
        "technical_signals",
        "prompt_adherence",
        "instructions",
        "attributes",
        "safety",
        "identity",
        "reference_similarity",
        "headshot",
    }
)
#: preset -> judges whose failure (or absence) fails the evaluation (product choice: the
#: judge that checks what the task is for)
CRITICAL: dict[str, frozenset[str]] = {
    HEADSHOT: frozenset({"identity"}),
    GENERATION: frozenset(),
    PRODUCT: frozenset({"reference_similarity"}),
}
#: preset -> weighted_pass_rate needed to pass. 0.7: roughly "everything that matters
#: passed, one minor check may fail"; 0.75 where a critical judge also guards the task.
#: Product choices, not fitted to labels.
PASS_THRESHOLDS: dict[str, float] = {HEADSHOT: 0.75, GENERATION: 0.7, PRODUCT: 0.75}
DESCRIPTIONS: dict[str, str] = {
    HEADSHOT: "portrait of a known person: identity is critical; one sharp, well-framed face",
    GENERATION: "general text-to-image: prompt adherence weighs most",
    PRODUCT: "product / garment shot: the reference item must be shown faithfully",
}
#: a judge on an aspect the rubric prioritises ("focus on the face") has its weight
#: multiplied by this. 2.0: doubles its say without letting it outvote everything else
#: (product choice).
PRIORITY_FACTOR = 2.0
#: the action's confidence limit: a pass whose judges' mean confidence is below this goes
#: to manual_review. 0.6 is confidence_from_margin at ~20% of a judge's confidence scale
#: from its threshold: the votes are close to coin flips (product choice).
LOW_CONFIDENCE = 0.6

DEFAULT_PRESET = DEFAULT_TASK_TYPE


@dataclass(frozen=True)
class Preset:
    name: str
    weights: dict[str, float]
    quick: frozenset[str]
    critical: frozenset[str] = frozenset()
    pass_threshold: float = 0.7  # weighted_pass_rate needed to pass
    description: str = ""

    @property
    def aliases(self) -> tuple[str, ...]:
        return TASK_TYPES.get(self.name, ())

    def judges_for(self, job_class: str) -> dict[str, float]:
        if job_class == "quick":
            return {n: w for n, w in self.weights.items() if n in self.quick}
        return dict(self.weights)


def _build() -> dict[str, Preset]:
    if set(TASK_TYPES) != set(PASS_THRESHOLDS):
        raise ValueError(f"every task type needs a preset: {sorted(TASK_TYPES)} vs {sorted(PASS_THRESHOLDS)}")
    return {
        name: Preset(
            name=name,
            weights={judge: column[name] for judge, column in WEIGHTS.items() if name in column},
            quick=QUICK,
            critical=CRITICAL[name],
            pass_threshold=PASS_THRESHOLDS[name],
            description=DESCRIPTIONS[name],
        )
        for name in TASK_TYPES
    }


PRESETS: dict[str, Preset] = _build()


def preset_for(task_type: str) -> tuple[Preset, bool]:
    """The preset for a task type (aliases, case-insensitive) and whether it was matched
    (False: unknown, the default preset; the evaluation reports it)."""
    resolved = resolve_task_type(task_type)
    if resolved.canonical is not None:
        return PRESETS[resolved.canonical], True
    return PRESETS[DEFAULT_PRESET], False
