"""The rule-based prompt parser: sub-points, foils, determinism, and robustness."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagejury.judges.prompt_parser import PromptParser, parse_prompt
from imagejury.judges.vocabulary import fix_articles, load_vocabulary, pluralize


def _by_text(parsed):
    return {p.text: p for p in parsed.sub_points}


def test_single_object_prompt_has_colour_and_object_foils() -> None:
    parsed = parse_prompt("a red circle")
    assert [p.text for p in parsed.sub_points] == ["a red circle"]
    p = parsed.sub_points[0]
    assert p.kind == "subject" and p.head == "circle" and p.attributes == {"colour": ["red"]}
    foils = {f.text: f.changed for f in p.foils}
    assert foils["a blue circle"] == "colour"
    assert foils["a red square"] == "shape"
    assert foils["an orange circle"] == "colour"  # article re-agreed
    assert "a red circle" not in foils


def test_rich_prompt_splits_into_kinds() -> None:
    parsed = parse_prompt("A photo of a red hat and two blue cars on a beach at sunset, in watercolor style")
    kinds = {p.text: p.kind for p in parsed.sub_points}
    assert kinds["a red hat"] == "subject"
    assert kinds["two blue cars"] == "object"
    assert kinds["two cars"] == "count"
    assert kinds["a beach"] == "setting"
    assert kinds["a watercolor painting"] == "style"
    assert kinds["a scene at sunset"] == "lighting"
    count = _by_text(parsed)["two cars"]
    assert {f.text for f in count.foils} >= {"one car", "three cars"}
    cars = _by_text(parsed)["two blue cars"]
    assert "two blue trucks" in {f.text for f in cars.foils}  # plural kept on the swapped noun
    # whole-prompt foils change one part each and keep the rest of the prompt
    assert all(f.text != parsed.text for f in parsed.prompt_foils)
    assert any(f.text == parsed.text.replace("red hat", "blue hat") for f in parsed.prompt_foils)
    assert len(parsed.prompt_foils) <= 12


def test_nouns_of_the_prompt_are_not_foils_of_each_other() -> None:
    parsed = parse_prompt("a dog and a cat")
    dog = _by_text(parsed)["a dog"]
    assert "a cat" not in {f.text for f in dog.foils}


def test_negations_are_recorded_not_scored() -> None:
    parsed = parse_prompt("a street with no cars, no text or watermark")
    assert parsed.negations == ["cars", "text", "watermark"]
    assert [p.text for p in parsed.sub_points] == ["a street"]


def test_unknown_head_after_modifier_gets_attribute_foils_only() -> None:
    p = parse_prompt("a blue zorblax").sub_points[0]
    assert p.head == "zorblax" and p.head_class is None
    assert p.foils and all(f.changed == "colour" for f in p.foils)


def test_unknown_words_are_listed() -> None:
    parsed = parse_prompt("a dog wearing a fedora hat near a glimmering obelisk")
    assert "obelisk" in parsed.unparsed
    assert "a dog" in _by_text(parsed)


def test_parser_is_deterministic() -> None:
    text = "three small wooden chairs and a striped cat in a kitchen, oil painting, dramatic lighting, close-up"
    a, b = parse_prompt(text), parse_prompt(text)
    assert [(p.text, [f.text for f in p.foils]) for p in a.sub_points] == [
        (p.text, [f.text for f in p.foils]) for p in b.sub_points
    ]


def test_long_prompt_is_parsed_whole() -> None:
    parts = [
        f"a {c} {s}" for c in ("red", "green", "blue", "yellow") for s in ("circle", "square", "triangle", "cross")
    ]
    text = ", ".join(parts * 6) + ", on a white background, in watercolor style"
    parsed = parse_prompt(text)
    assert len(text.split()) > 100
    # every distinct part is found (duplicates merged); nothing after the 77th token is lost
    texts = {p.text for p in parsed.sub_points}
    assert set(parts) <= texts
    assert "a white background" in texts and "a watercolor painting" in texts


def test_vocabulary_override_narrows_foils() -> None:
    vocab = load_vocabulary({"colour": ["red", "green", "blue"], "shape": ["circle", "square"]})
    p = PromptParser(vocab).parse("a red circle").sub_points[0]
    assert {f.text for f in p.foils} == {"a green circle", "a blue circle", "a red square"}
    with pytest.raises(ValueError, match="unknown class"):
        load_vocabulary({"colours": ["red"]})


def test_foil_budget_is_respected() -> None:
    p = PromptParser(max_foils_per_class=2).parse("a red circle").sub_points[0]
    assert len([f for f in p.foils if f.changed == "colour"]) == 2
    assert len([f for f in p.foils if f.changed == "shape"]) == 2
    with pytest.raises(ValueError):
        PromptParser(max_foils_per_class=0)


def test_bad_input_type() -> None:
    with pytest.raises(TypeError):
        parse_prompt(None)  # type: ignore[arg-type]


def test_helpers() -> None:
    assert pluralize("box") == "boxes" and pluralize("butterfly") == "butterflies" and pluralize("man") == "men"
    assert fix_articles("a orange apple and an red hat") == "an orange apple and a red hat"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "red",
                "circle",
                "two",
                "no",
                "a",
                "an",
                "and",
                "or",
                ",",
                ".",
                "dog",
                "blue",
                "cars",
                "beach",
                "zork",
                "3",
                "on",
            ]
        )
        | st.text(alphabet="abcxyz ,.;0123-'", max_size=8),
        max_size=40,
    ).map(" ".join)
)
def test_any_text_parses_and_foils_differ(text: str) -> None:
    parsed = parse_prompt(text)
    for p in parsed.sub_points:
        assert p.text
        assert all(f.text.lower() != p.text.lower() for f in p.foils)
    assert all(f.text.lower() != text.strip().lower() for f in parsed.prompt_foils)


def test_vocabulary_is_consistent() -> None:
    vocab = load_vocabulary()
    for cls, table in vocab.overlaps.items():
        assert set(table) <= set(vocab.classes[cls].values), cls
    # a foil is never a value that can be true at the same time
    assert "gold" not in vocab.alternatives("colour", "yellow")
    assert "portrait" not in vocab.alternatives("shot", "headshot")
    assert "corporate" not in vocab.alternatives("style", "photograph")
    for spec in vocab.attribute_keys.values():
        classes = spec["class"] if isinstance(spec["class"], list) else [spec["class"]]
        assert all(c is None or c in vocab.classes for c in classes)
