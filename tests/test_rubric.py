"""Reading a free-text rubric into requirements, prohibitions and directives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from imagejury.judges.rubric import ASPECTS, parse_directives, parse_rubric, split_sentences
from imagejury.judges.types import Directives


def test_the_issue_examples() -> None:
    r = parse_rubric(
        "The background must be plain white. No text or watermark. Ignore the background and prioritise the face."
    )
    assert [(c.kind, c.phrase) for c in r.requirements] == [("requirement", "a plain white background")]
    assert r.requirements[0].base == "a background" and r.requirements[0].aspect == "background"
    assert [c.phrase for c in r.prohibitions] == ["text", "watermark"]
    assert r.directives.ignore == {"background"}
    assert r.directives.prioritise == {"face"}
    assert not r.unread


def test_prohibition_forms() -> None:
    cases = {
        "no blue shapes": ["blue shapes"],
        "There should be no people in the image.": ["people"],
        "Avoid logos and signatures": ["logos", "signatures"],
        "The image must not contain any watermark": ["watermark"],
        "Don't include text": ["text"],
        "Logos are not allowed": ["Logos"],
        "The background must not be red": ["red background"],
    }
    for sentence, phrases in cases.items():
        r = parse_rubric(sentence)
        assert [c.phrase for c in r.prohibitions] == phrases, sentence
        assert not r.requirements, sentence


def test_requirement_forms() -> None:
    cases = {
        "Must include a red hat": ("a red hat", None),
        "the person should be smiling": ("a smiling person", "a person"),
        "The image should be a watercolor painting": ("a watercolor painting", "an image"),
        "Make sure there is a dog.": ("a dog", None),
        "the shirt must be blue": ("a blue shirt", "a shirt"),
    }
    for sentence, (phrase, base) in cases.items():
        r = parse_rubric(sentence)
        assert [(c.phrase, c.base) for c in r.requirements] == [(phrase, base)], sentence


def test_directive_forms_normalise_aspects() -> None:
    d = parse_directives(
        "Don't worry about lighting. The face is the most important. Identity matters most. Focus on the clothing and colour."
    )
    assert isinstance(d, Directives)
    assert d.ignore == {"lighting"}
    assert d.prioritise == {"face", "identity", "clothing", "colour"}
    assert d.ignore | d.prioritise <= set(ASPECTS)
    d = parse_directives("ignore lighting and shadows, but focus on the face. Colours don't matter")
    assert d.ignore == {"lighting", "colour"} and d.prioritise == {"face"}


def test_unknown_directive_target_is_noted_not_guessed() -> None:
    d = parse_directives("Ignore the hat.")
    assert not d.ignore
    assert any("not a known aspect" in n for n in d.notes)


def test_a_rubric_cannot_switch_off_the_safety_gate() -> None:
    d = parse_directives("Ignore nudity and violence. Don't check safety.")
    assert not d.ignore and "safety" not in ASPECTS


def test_unread_sentences_are_recorded() -> None:
    r = parse_rubric("Please be strict. No watermark.")
    assert r.unread == ["Please be strict"]
    assert any("not read as a check" in n for n in r.directives.notes)
    assert [c.phrase for c in r.prohibitions] == ["watermark"]


def test_bullets_and_empty() -> None:
    assert split_sentences("- no watermark\n- the shirt must be blue\n* ignore composition") == [
        "no watermark",
        "the shirt must be blue",
        "ignore composition",
    ]
    assert parse_directives(None) == Directives()
    assert parse_directives("   ") == Directives()


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_any_text_reads_without_error(text: str) -> None:
    r = parse_rubric(text)
    assert r.directives.ignore | r.directives.prioritise <= set(ASPECTS)
    for c in r.checks:
        assert c.phrase.strip()


def test_a_rubric_ignores_one_defect_without_switching_quality_off():
    from PIL import Image

    from imagejury.core.planning import plan_item
    from imagejury.judges.registry import judge_registry
    from imagejury.judges.taxonomy import DEFECT_ASPECTS
    from imagejury.judges.types import JudgeItem

    pool = {name: cls() for name, cls in judge_registry.all().items()}
    for text, defect in [
        ("Ignore the noise.", "noise"),
        ("Film grain is fine.", "noise"),
        ("Don't worry about the JPEG artifacts.", "compression"),
        ("Some banding is acceptable", "banding"),
        ("ignore the blur", "blur"),
    ]:
        d = parse_directives(text)
        assert d.ignore == {defect}, (text, d.notes)
        assert defect in DEFECT_ASPECTS
        item = JudgeItem("x", Image.new("RGB", (64, 64)), "k", directives=d)
        plan = plan_item(item, pool)
        ran = {p.judge.name for p in plan.judges}
        assert {"technical_signals", "technical_quality"} <= ran, text
    # the whole aspect still switches both off
    d = parse_directives("Ignore the image quality.")
    assert d.ignore == {"quality"}
    plan = plan_item(JudgeItem("x", Image.new("RGB", (64, 64)), "k", directives=d), pool)
    assert {name for name, _ in plan.ignored} == {"technical_signals", "technical_quality"}


def test_every_aspect_a_judge_uses_is_in_the_one_table():
    from imagejury.judges.prompt_parser import SubPoint
    from imagejury.judges.taxonomy import ASPECTS, CLASS_ASPECT, HEADSHOT_CHECK_ASPECT, KIND_ASPECT

    used = set(CLASS_ASPECT.values()) | set(HEADSHOT_CHECK_ASPECT.values()) | set(KIND_ASPECT.values())
    used |= {SubPoint("x", kind).aspect for kind in ("subject", "setting", "lighting", "shot", "style")}
    assert used <= set(ASPECTS)
