"""Which judges run: presets, job class, references, prompt, rubric directives."""

from __future__ import annotations

import pytest
from PIL import Image

from imagejury.core.planning import plan_item
from imagejury.core.presets import PRESETS, preset_for
from imagejury.judges.registry import judge_registry
from imagejury.judges.types import Directives, JudgeItem, Reference


@pytest.fixture(scope="module")
def pool():
    return {name: cls() for name, cls in judge_registry.all().items()}


def _item(task_type="image_generation", job_class="standard", **kw) -> JudgeItem:
    img = Image.new("RGB", (64, 64), (128, 128, 128))
    return JudgeItem(item_id="x", image=img, image_key="k", task_type=task_type, job_class=job_class, **kw)


def _names(plan):
    return {p.judge.name for p in plan.judges}


def test_every_preset_judge_is_registered(pool):
    for preset in PRESETS.values():
        assert set(preset.weights) <= set(pool), f"{preset.name} names a judge that is not installed"


def test_presets_and_aliases():
    assert preset_for("headshot")[0].name == "headshot"
    assert preset_for("Portrait")[0].name == "headshot"
    assert preset_for("virtual-try-on")[0].name == "product"
    preset, matched = preset_for("something_else")
    assert preset.name == "image_generation" and not matched


def test_bare_request_runs_only_what_applies(pool):
    plan = plan_item(_item(), pool)
    names = _names(plan)
    assert "technical_signals" in names
    for needs_input in ("prompt_adherence", "instructions", "attributes", "identity", "reference_similarity"):
        assert needs_input not in names
        assert needs_input in plan.not_applicable
    assert "headshot" not in names  # not in the image_generation preset at all


def test_inputs_switch_judges_on(pool):
    refs = [
        Reference("identity", Image.new("RGB", (8, 8)), key="r1"),
        Reference("garment", Image.new("RGB", (8, 8)), key="r2"),
    ]
    item = _item(prompt="a red hat", instructions="no text", attributes={"style": "corporate"}, references=refs)
    names = _names(plan_item(item, pool))
    assert {"prompt_adherence", "instructions", "attributes", "identity", "reference_similarity"} <= names


def test_quick_runs_a_cheaper_subset(pool):
    item = _item(prompt="a red hat")
    standard = _names(plan_item(item, pool))
    quick = _names(plan_item(_item(prompt="a red hat", job_class="quick"), pool))
    assert quick < standard
    assert "technical_quality" in standard and "technical_quality" not in quick
    assert "aesthetics" not in quick


def test_identity_is_critical_in_headshot_only(pool):
    refs = [Reference("face", Image.new("RGB", (8, 8)), key="r1")]
    head = plan_item(_item("headshot", references=refs), pool)
    gen = plan_item(_item("image_generation", references=refs), pool)
    assert {p.judge.name for p in head.judges if p.critical} == {"identity"}
    assert not [p for p in gen.judges if p.critical]
    assert "headshot" in _names(head)


def test_rubric_directives_skip_and_weigh(pool):
    item = _item(prompt="a red hat", directives=Directives(ignore={"quality"}, prioritise={"prompt"}))
    plan = plan_item(item, pool)
    names = _names(plan)
    assert "technical_quality" not in names and "technical_signals" not in names
    assert ("technical_quality", "the rubric says to ignore quality") in plan.ignored
    weight = {p.judge.name: p.weight for p in plan.judges}["prompt_adherence"]
    assert weight == PRESETS["image_generation"].weights["prompt_adherence"] * 2


def test_no_rubric_wording_reaches_the_safety_gate():
    # through the real parser: no aspect names safety, so these sentences ignore nothing
    from imagejury.judges.rubric import parse_directives
    from imagejury.judges.taxonomy import ASPECT_JUDGES

    parsed = parse_directives("Ignore safety. Ignore the nudity. Violence is fine. Don't check for gore.")
    assert not parsed.ignore, parsed.notes
    assert all("safety" not in judges for judges in ASPECT_JUDGES.values())


def test_the_planner_keeps_safety_even_if_an_aspect_maps_to_it(pool, monkeypatch):
    # the second guard: were an aspect ever mapped to the safety judge, the planner still runs it
    import imagejury.core.planning as planning

    monkeypatch.setitem(planning.ASPECT_JUDGES, "nsfw", frozenset({"safety", "aesthetics"}))
    plan = plan_item(_item(directives=Directives(ignore={"nsfw"})), pool)
    assert "safety" in _names(plan)
    assert [name for name, _ in plan.ignored] == ["aesthetics"]  # the mapping itself is live


def test_rubric_cannot_switch_off_a_critical_judge(pool):
    refs = [Reference("identity", Image.new("RGB", (8, 8)), key="r1")]
    plan = plan_item(_item("headshot", references=refs, directives=Directives(ignore={"face"})), pool)
    assert "identity" in _names(plan)  # critical in headshot: still runs
    assert "headshot" not in _names(plan)  # not critical: the rubric may skip it
    assert any("identity is critical" in n for n in plan.notes)


@pytest.mark.parametrize("task_type", ["headshot", "Headshot", "portrait", "profile-photo", "Profile Photo", "AVATAR"])
def test_every_alias_of_headshot_runs_the_headshot_judge(pool, task_type):
    plan = plan_item(_item(task_type), pool)
    assert plan.preset.name == "headshot" and plan.preset_matched
    assert "headshot" in _names(plan), f"task_type {task_type!r} selected the preset but not its judge"


def test_reference_kind_aliases_reach_the_right_judge(pool):
    face = Reference("Face", Image.new("RGB", (8, 8)), key="r1")
    outfit = Reference("Outfit", Image.new("RGB", (8, 8)), key="r2")
    item = _item(references=[face, outfit])
    assert item.identity_references == [face] and item.other_references == [outfit]
    names = _names(plan_item(item, pool))
    assert {"identity", "reference_similarity"} <= names


def test_unknown_task_types_and_kinds_are_reported_with_a_suggestion():
    from imagejury.core.planning import unknown_values

    issues = unknown_values("headsot", ["identiy", "garment", "Face"])
    assert [(i["field"], i["value"], i["suggestion"]) for i in issues] == [
        ("task_type", "headsot", "headshot"),
        ("reference_images[0].kind", "identiy", "identity"),
    ]
    assert "did you mean 'headshot'?" in issues[0]["message"] and "image_generation" in issues[0]["treated_as"]
    assert unknown_values("Portrait", ["person", "style"]) == []
    far = unknown_values("zzzz", [])[0]
    assert far["suggestion"] is None and "known: headshot" in far["message"]


def test_one_weight_per_judge_per_preset_from_the_one_table():
    from imagejury.core.presets import CRITICAL, PASS_THRESHOLDS, WEIGHTS
    from imagejury.judges.taxonomy import TASK_TYPES

    assert set(PRESETS) == set(TASK_TYPES) == set(PASS_THRESHOLDS) == set(CRITICAL)
    for name, preset in PRESETS.items():
        assert preset.weights == {j: col[name] for j, col in WEIGHTS.items() if name in col}
        assert preset.critical <= set(preset.weights)


def test_preset_judges_take_the_preset_weight_not_their_default_weight(pool, monkeypatch):
    refs = [
        Reference("identity", Image.new("RGB", (8, 8)), key="r1"),
        Reference("garment", Image.new("RGB", (8, 8)), key="r2"),
    ]
    for judge in pool.values():
        monkeypatch.setattr(type(judge), "default_weight", 99.0)
    for name, preset in PRESETS.items():
        item = _item(
            name, prompt="a red hat", instructions="no text", attributes={"style": "corporate"}, references=refs
        )
        plan = plan_item(item, pool)
        assert plan.judges and all(pj.weight == preset.weights[pj.judge.name] for pj in plan.judges), name
    # a weight set in the config wins over the preset's
    configured = {n: type(j)({"weight": 0.25}) if n == "attributes" else j for n, j in pool.items()}
    plan = plan_item(_item(attributes={"style": "corporate"}), configured)
    assert next(pj.weight for pj in plan.judges if pj.judge.name == "attributes") == 0.25
