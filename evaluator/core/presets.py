"""Task presets: which judges a task type runs, their weights, and what is critical.

A preset is data. ``standard`` runs every judge in ``weights``; ``quick`` runs the
cheaper subset in ``quick`` (no BRISQUE/NIQE/PIQE, no aesthetics; the quick job class
also defaults to the smaller CLIP, ViT-B-32). A failed *critical* judge fails the
evaluation whatever the rate; a gate always does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

COMMON = {
    "technical_signals": 1.0,
    "technical_quality": 1.5,
    "prompt_adherence": 2.0,
    "instructions": 2.0,
    "attributes": 1.5,
    "aesthetics": 0.75,
    "safety": 1.0,
    "identity": 2.0,
    "reference_similarity": 1.5,
}
QUICK_COMMON = frozenset(
    {
        "technical_signals",
        "prompt_adherence",
        "instructions",
        "attributes",
        "safety",
        "identity",
        "reference_similarity",
    }
)


@dataclass(frozen=True)
class Preset:
    name: str
    weights: dict[str, float]
    quick: frozenset[str]
    critical: frozenset[str] = frozenset()
    pass_threshold: float = 0.7  # weighted_pass_rate needed to pass
    description: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)

    def judges_for(self, job_class: str) -> dict[str, float]:
        if job_class == "quick":
            return {n: w for n, w in self.weights.items() if n in self.quick}
        return dict(self.weights)


PRESETS: dict[str, Preset] = {
    "headshot": Preset(
        name="headshot",
        weights={**COMMON, "identity": 3.0, "headshot": 2.0, "prompt_adherence": 1.0, "aesthetics": 0.5},
        quick=QUICK_COMMON | {"headshot"},
        critical=frozenset({"identity"}),
        pass_threshold=0.75,
        description="portrait of a known person: identity is critical; one sharp, well-framed face",
        aliases=("portrait", "avatar", "profile_photo"),
    ),
    "image_generation": Preset(
        name="image_generation",
        weights={**COMMON, "prompt_adherence": 3.0},
        quick=QUICK_COMMON,
        critical=frozenset(),
        pass_threshold=0.7,
        description="general text-to-image: prompt adherence weighs most",
        aliases=("text_to_image", "generation", "txt2img"),
    ),
    "product": Preset(
        name="product",
        weights={**COMMON, "reference_similarity": 3.0, "prompt_adherence": 1.5},
        quick=QUICK_COMMON,
        critical=frozenset({"reference_similarity"}),
        pass_threshold=0.75,
        description="product / garment shot: the reference item must be shown faithfully",
        aliases=("product_photo", "garment", "ecommerce", "virtual_try_on", "try_on"),
    ),
}
DEFAULT_PRESET = "image_generation"


def preset_for(task_type: str) -> tuple[Preset, bool]:
    """The preset for a task type and whether it was matched (False: the default)."""
    key = task_type.strip().lower().replace("-", "_").replace(" ", "_")
    if key in PRESETS:
        return PRESETS[key], True
    for preset in PRESETS.values():
        if key in preset.aliases:
            return preset, True
    return PRESETS[DEFAULT_PRESET], False
