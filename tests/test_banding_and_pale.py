"""Banding (false contours) and the washed-out rule on pale designs (issue 12.1).

The banding threshold and the washed-out gate were chosen on the graphics calibration
split (seeds 0–5); the cases here are from that split unless said otherwise.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from imagejury.judges.features import FeatureCache
from imagejury.judges.technical_quality import TechnicalQualityJudge
from imagejury.judges.technical_signals import TechnicalSignalsJudge
from imagejury.judges.types import Directives, JudgeItem, decide
from imagejury.models.provider import ModelSet
from imagejury.models.quality.signals import false_contours, measure
from imagejury.models.registry import ModelRegistry
from imagejury.models.settings import ModelSettings
from tests.support import graphics, photos

THRESHOLD = TechnicalSignalsJudge.Config().max_false_contours


def _item(img: Image.Image, item_id: str = "x", **kw: object) -> JudgeItem:
    key = hashlib.sha256(img.tobytes() + str(img.size).encode()).hexdigest()
    return JudgeItem(item_id=item_id, image=img, image_key=key, features=FeatureCache(), **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def judges() -> list:
    ms = ModelSet(ModelSettings(clip="local-dir:/nonexistent/clip"), registry=ModelRegistry())
    quality = TechnicalQualityJudge(config={"use_clip_iqa": False}, model_set=ms)
    quality.warmup()
    return [TechnicalSignalsJudge(), quality]


def _ramp(levels: int | None, size: int = 256) -> torch.Tensor:
    """A horizontal grey ramp 20..220, continuous (8-bit) or quantised to ``levels`` tones."""
    t = np.linspace(20.0, 220.0, size)
    if levels:
        step = 200.0 / (levels - 1)
        t = 20.0 + np.round((t - 20.0) / step) * step
    row = np.round(t)
    return torch.tensor(np.broadcast_to(row, (3, size, size)).copy(), dtype=torch.float32)


# -- the measure ------------------------------------------------------------------------
def test_false_contours_find_a_staircase_but_not_a_ramp_or_solid_fills() -> None:
    assert false_contours(_ramp(None)) == 0.0  # a continuous 8-bit ramp moves 0-1 levels per pixel
    assert false_contours(_ramp(8)) > 10 * THRESHOLD  # the same ramp in 8 equal steps
    solid = torch.full((3, 256, 256), 40.0)
    solid[:, 64:192, 64:192] = 200.0  # one hard-edged square: a single jump per line, not a staircase
    assert false_contours(solid) == 0.0
    nested = solid.clone()
    nested[:, 96:160, 96:160] = 120.0  # up, then down: opposite signs are not a staircase
    assert false_contours(nested) == 0.0


def test_false_contours_are_quiet_on_photos_and_their_jpeg_blocks() -> None:
    for name in ("astronaut", "rocket"):
        img = photos.photo(name)
        assert measure(img).false_contours < THRESHOLD / 2, name
        assert measure(photos.jpeg(img, 8)).false_contours < THRESHOLD / 2, name  # 8×8 blocks: blockiness
        assert measure(graphics.banding(img, 6)).false_contours > THRESHOLD, name


# -- the banding rule in both judges ----------------------------------------------------
@pytest.mark.parametrize("kind", ["gradient_icon", "render_3d"])
def test_banded_ramps_fail_as_banding_and_clean_ones_pass(judges: list, kind: str) -> None:
    clean = graphics.graphic(kind, 0)
    banded = graphics.degraded(clean, "banding")
    for judge in judges:
        ok, bad = judge.judge([_item(clean, "clean"), _item(banded, "banded")])
        assert ok.passed, f"{judge.name}: {ok.reasoning}"
        assert ok.sub_point_results["false_contours"]["passed"]
        assert not bad.passed and "banding" in {i.subcategory for i in bad.issues}, f"{judge.name}: {bad.reasoning}"
        for r in (ok, bad):
            assert decide(r.measurements, r.decision_rule) == r.passed


def test_banding_can_be_ignored_by_its_aspect_word(judges: list) -> None:
    banded = graphics.degraded(graphics.graphic("render_3d", 0), "banding")
    signals = judges[0]
    (r,) = signals.judge([_item(banded, directives=Directives(ignore={"posterization"}))])
    assert "banding" not in {i.subcategory for i in r.issues}
    assert r.sub_point_results["false_contours"].get("ignored")
    assert not next(m for m in r.measurements if m.name == "false_contours").decisive


# -- washed out: pale designs pass, over-exposure fails ----------------------------------
@pytest.mark.parametrize("kind,seed", [("flat_illustration", 5), ("poster_text", 4)])
def test_pale_clean_designs_pass_and_their_over_exposure_fails(judges: list, kind: str, seed: int) -> None:
    """Darkest tone 166 / 153 (above the 150 washed-out limit), but the lights do not clip
    (flat illustration) or the image is mid-toned (poster): a pale palette, not over-exposure."""
    clean = graphics.graphic(kind, seed)
    assert measure(clean).black_point > judges[0].config.max_black_point  # the rule's old false failure
    over = graphics.degraded(clean, "over_exposure")
    for judge in judges:
        ok, bad = judge.judge([_item(clean, "clean"), _item(over, "over")])
        assert ok.passed, f"{judge.name}: {ok.reasoning}"
        assert "black_point" not in ok.sub_point_results
        assert any("washed-out check not applied" in e for e in ok.evidence)
        # pushed to near-white, the pale illustration is also blank: either names what is wrong
        assert not bad.passed and {i.subcategory for i in bad.issues} & {"exposure", "blank"}, bad.reasoning
        assert not bad.sub_point_results.get("black_point", {"passed": False})["passed"]


def test_washed_out_gate_needs_both_clipped_lights_and_a_light_image() -> None:
    judge = TechnicalSignalsJudge()
    over = graphics.degraded(graphics.graphic("flat_illustration", 0), "over_exposure")  # bp 244, wp 255, mean 254
    (r,) = judge.judge([_item(over)])
    assert not r.sub_point_results["black_point"]["passed"]
    for change in ({"washed_out_min_white_point": 256.0}, {"washed_out_min_mean_luma": 255.5}):
        (r,) = TechnicalSignalsJudge(config=change).judge([_item(over)])
        assert "black_point" not in r.sub_point_results, change
