"""The one table of the words a request and a rubric may use: task types, reference kinds
and rubric aspects, each with its aliases (case-insensitive; ``-`` and spaces read as ``_``).

Presets, the planner, the rubric parser and every judge read these tables, so an alias
that selects a preset also runs that preset's judges (``Headshot``, ``portrait`` and
``profile-photo`` all run the headshot judge), and an unknown value is reported — with
what it was treated as and the nearest known value — never silently a default.

Rubric aspects come in two sorts. A *content* aspect ("ignore the background",
"prioritise the face") maps to the judges it switches off or weighs up, and judges drop
their own parts of that aspect (prompt sub-points, attribute keys, reference kinds). A
*defect* aspect ("ignore the noise", "film grain is fine") switches no judge off: the
judges that measure that defect (the technical judges, the headshot judge's face
sharpness) skip that one defect and keep the rest. ``item.directives.ignore`` holds the
canonical names below.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

# ---------------------------------------------------------------- task types
#: canonical task type -> aliases. Each canonical name is a preset (core/presets.py).
TASK_TYPES: dict[str, tuple[str, ...]] = {
    "headshot": ("portrait", "avatar", "profile_photo", "profile_picture", "profile_pic", "head_shot", "selfie"),
    "image_generation": ("text_to_image", "generation", "txt2img", "t2i", "general", "image"),
    "product": (
        "product_photo",
        "product_shot",
        "packshot",
        "garment",
        "ecommerce",
        "e_commerce",
        "virtual_try_on",
        "try_on",
    ),
}
DEFAULT_TASK_TYPE = "image_generation"

# ---------------------------------------------------------------- reference kinds
#: canonical reference kind -> aliases. ``identity`` feeds the identity judge; every other
#: kind feeds reference_similarity with its own threshold.
REFERENCE_KINDS: dict[str, tuple[str, ...]] = {
    "identity": ("face", "person", "subject", "selfie", "likeness"),
    "garment": ("clothing", "clothes", "outfit", "apparel", "dress", "shirt"),
    "product": ("item", "packshot", "product_photo"),
    "object": ("thing", "prop"),
    "style": ("style_reference", "art_style", "look", "mood"),
    "background": ("backdrop", "scene", "setting", "environment", "location"),
}
IDENTITY_KIND = "identity"
#: what an unknown reference kind is treated as: a non-identity reference checked by
#: reference_similarity with its 'default' threshold
UNKNOWN_KIND_TREATED_AS = "a generic reference for reference_similarity (its 'default' threshold)"


def normalise(value: str) -> str:
    """Lower case, trimmed, ``-`` and spaces as ``_``: 'Profile-Photo ' -> 'profile_photo'."""
    return re.sub(r"[\s\-]+", "_", value.strip().lower())


@dataclass(frozen=True)
class Resolved:
    """A value looked up in one of the tables."""

    given: str
    canonical: str | None  # None: unknown
    suggestion: str | None = None  # the nearest known value ("did you mean ...")

    @property
    def known(self) -> bool:
        return self.canonical is not None


def _resolve(value: str, table: dict[str, tuple[str, ...]]) -> Resolved:
    key = normalise(value)
    for canonical, aliases in table.items():
        if key == canonical or key in aliases:
            return Resolved(value, canonical)
    names = {name: canonical for canonical, aliases in table.items() for name in (canonical, *aliases)}
    close = difflib.get_close_matches(key, list(names), n=1, cutoff=0.6)
    return Resolved(value, None, names[close[0]] if close else None)


def resolve_task_type(value: str) -> Resolved:
    return _resolve(value, TASK_TYPES)


def resolve_reference_kind(value: str) -> Resolved:
    return _resolve(value, REFERENCE_KINDS)


def canonical_task_type(value: str) -> str:
    """The canonical task type, or the default for an unknown one (reported elsewhere)."""
    return resolve_task_type(value).canonical or DEFAULT_TASK_TYPE


def canonical_reference_kind(value: str) -> str:
    """The canonical kind, or the normalised value itself for an unknown one."""
    resolved = resolve_reference_kind(value)
    return resolved.canonical or normalise(value)


def is_identity_kind(value: str) -> bool:
    return resolve_reference_kind(value).canonical == IDENTITY_KIND


def known_values(table: dict[str, tuple[str, ...]]) -> str:
    """'headshot (portrait, avatar, ...), image_generation (...)' for help texts and schemas."""
    return "; ".join(f"{c} ({', '.join(a)})" if a else c for c, a in table.items())


# ---------------------------------------------------------------- rubric aspects
@dataclass(frozen=True)
class Aspect:
    """One thing a rubric can ignore or prioritise."""

    name: str
    words: tuple[str, ...]  # how a rubric names it (whole words; multi-word phrases first)
    judges: frozenset[str] = frozenset()  # judges an "ignore" switches off and a "prioritise" weighs up
    defect: bool = False  # a pixel defect: no judge is switched off; the judges measuring it skip it


_ASPECT_LIST: tuple[Aspect, ...] = (
    Aspect(
        "background",
        ("background", "backgrounds", "backdrop", "setting", "scenery", "environment", "surroundings", "bg"),
    ),
    Aspect(
        "face",
        ("face", "faces", "facial", "expression", "expressions", "smile", "headshot"),
        frozenset({"identity", "headshot"}),
    ),
    Aspect("eyes", ("eyes", "eye", "blink", "blinking", "closed eyes")),
    Aspect("pose", ("pose", "head pose", "head tilt", "head angle", "head turn")),
    Aspect(
        "text",
        ("text", "lettering", "typography", "watermark", "watermarks", "logo", "logos", "caption", "captions")
        + ("words", "writing"),
    ),
    Aspect("lighting", ("lighting", "light", "lights", "shadows", "shadow", "brightness")),
    Aspect(
        "colour",
        ("colour", "color", "colours", "colors", "palette", "tones", "tone", "hue", "hues", "saturation")
        + ("coloring", "colouring"),
    ),
    Aspect(
        "composition",
        ("composition", "framing", "frame", "crop", "cropping", "layout", "placement", "angle", "position")
        + ("positioning",),
        frozenset({"headshot"}),
    ),
    Aspect(
        "quality",
        ("quality", "image quality", "technical quality", "artifacts", "artefacts", "detail", "details", "technical"),
        frozenset({"technical_quality", "technical_signals"}),
    ),
    Aspect(
        "identity",
        ("identity", "likeness", "resemblance", "person's identity", "same person", "who it is"),
        frozenset({"identity"}),
    ),
    Aspect("prompt", ("prompt", "description", "adherence"), frozenset({"prompt_adherence"})),
    Aspect(
        "clothing",
        ("clothing", "clothes", "outfit", "outfits", "attire", "wardrobe", "shirt", "dress", "suit", "garment")
        + ("garments",),
        frozenset({"reference_similarity"}),
    ),
    Aspect("reference", ("reference", "references", "reference image"), frozenset({"reference_similarity"})),
    Aspect("attributes", ("attributes", "input attributes"), frozenset({"attributes"})),
    Aspect("aesthetics", ("aesthetics", "aesthetic", "beauty", "style", "artistic", "look"), frozenset({"aesthetics"})),
    # defects: the technical judges (and the headshot judge's face sharpness) skip only these
    Aspect("noise", ("noise", "noisy", "grain", "grainy", "graininess", "film grain", "sensor noise"), defect=True),
    Aspect(
        "blur",
        ("blur", "blurry", "blurriness", "sharpness", "focus", "softness", "out of focus", "motion blur"),
        defect=True,
    ),
    Aspect(
        "exposure",
        ("exposure", "overexposure", "underexposure", "overexposed", "underexposed", "blown highlights")
        + ("clipping", "highlights"),
        defect=True,
    ),
    Aspect(
        "compression",
        ("compression", "jpeg", "jpeg artifacts", "compression artifacts", "blockiness", "blocking"),
        defect=True,
    ),
    Aspect("banding", ("banding", "posterization", "posterisation", "colour banding", "color banding"), defect=True),
    Aspect("resolution", ("resolution", "low resolution", "pixelation", "pixelated", "image size"), defect=True),
    Aspect("aspect_ratio", ("aspect ratio", "aspect_ratio", "proportions"), defect=True),
)
# Deliberately absent: safety. A rubric can not switch off the safety gate ("ignore nudity"
# is recorded as an unknown aspect, not obeyed).
ASPECTS: dict[str, Aspect] = {a.name: a for a in _ASPECT_LIST}
DEFECT_ASPECTS: frozenset[str] = frozenset(a.name for a in _ASPECT_LIST if a.defect)
#: aspect -> judges an "ignore" switches off / a "prioritise" weighs up (defects: none)
ASPECT_JUDGES: dict[str, frozenset[str]] = {a.name: a.judges for a in _ASPECT_LIST if a.judges}

#: vocabulary class (prompt sub-points, foils, attribute keys) -> the aspect it belongs to;
#: an ignored aspect drops those sub-points, foils and keys
CLASS_ASPECT: dict[str, str] = {
    "colour": "colour",
    "setting": "background",
    "background": "background",
    "lighting": "lighting",
    "weather": "lighting",
    "shot": "composition",
    "clothing": "clothing",
    "style": "aesthetics",
}

#: reference kind -> the aspect whose "ignore" drops references of that kind
KIND_ASPECT: dict[str, str] = {"garment": "clothing", "background": "background", "style": "aesthetics"}

#: headshot sub-check -> the aspect whose "ignore" skips it
HEADSHOT_CHECK_ASPECT: dict[str, str] = {
    "framing": "composition",
    "sharpness": "blur",
    "eyes_open": "eyes",
    "pose": "pose",
}


def _aspect_words() -> dict[str, str]:
    words: dict[str, str] = {}
    for a in _ASPECT_LIST:
        for w in a.words:
            if w in words:
                raise ValueError(f"aspect word '{w}' is listed for both '{words[w]}' and '{a.name}'")
            words[w] = a.name
    # multi-word phrases first, so "film grain" wins over "grain" and "jpeg artifacts" over "artifacts"
    return dict(sorted(words.items(), key=lambda kv: -len(kv[0].split())))


ASPECT_OF_WORD: dict[str, str] = _aspect_words()

__all__ = [
    "ASPECTS",
    "ASPECT_JUDGES",
    "ASPECT_OF_WORD",
    "Aspect",
    "CLASS_ASPECT",
    "DEFAULT_TASK_TYPE",
    "DEFECT_ASPECTS",
    "HEADSHOT_CHECK_ASPECT",
    "IDENTITY_KIND",
    "KIND_ASPECT",
    "REFERENCE_KINDS",
    "Resolved",
    "TASK_TYPES",
    "canonical_reference_kind",
    "canonical_task_type",
    "is_identity_kind",
    "known_values",
    "normalise",
    "resolve_reference_kind",
    "resolve_task_type",
]
