"""The whole loop through the real evaluator and batch engine: batch → labels → calibrate →
rescore, and the same overlay loaded by the evaluator (``--config``) gives the verdicts rescore
computed without running a model.

The judge here is a third-party-style plugin that does what every built-in judge will: record
its measurement and read its threshold through ``Judge.threshold_for``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagejury.batch.engine import BatchOptions, LocalBatch
from imagejury.batch.manifest import open_manifest
from imagejury.cli import main
from imagejury.core.config import EvaluatorConfig
from imagejury.core.pipeline import Evaluator
from imagejury.judges.base import Judge, confidence_from_margin
from imagejury.judges.types import JudgeItem, JudgeResult, Measurement
from tests.support import pipeline_judges as pj
from tests.test_batch_support import write_jsonl

DEFAULT_THRESHOLD = 0.5


class RedShareJudge(Judge):
    """Passes an image whose red share of the mean colour is high enough."""

    name = "t_red_share"
    category = "test"

    def judge(self, batch: Sequence[JudgeItem]) -> list[JudgeResult]:
        out = []
        for item in batch:
            rgb = np.asarray(item.image, dtype=np.float64).mean(axis=(0, 1)) + 1e-3
            share = float(rgb[0] / rgb.sum())
            threshold = self.threshold_for("red_share", DEFAULT_THRESHOLD, model="mean-colour")
            m = Measurement("red_share", share, threshold, True, "share of the mean RGB", "mean-colour")
            out.append(
                self.result(
                    passed=bool(m.passed),
                    confidence=confidence_from_margin(m.margin or 0.0, 0.1),
                    reasoning=f"red share {share:.3f} vs {threshold:.3f}",
                    score=share,
                    threshold=threshold,
                    measurements=[m],
                )
            )
        return out


def _run_batch(root: Path, config: EvaluatorConfig, out: Path) -> list[dict]:
    ev = Evaluator(config, judges=pj.make_registry(RedShareJudge))
    LocalBatch(ev, open_manifest(root / "m.jsonl"), out, BatchOptions(batch_size=8, workers=1, progress=False)).run()
    return [json.loads(line) for line in out.read_text().splitlines()]


def _config(path: Path | None) -> EvaluatorConfig:
    base = pj.make_config(["t_red_share"])
    if path is None:
        return base
    overlay = EvaluatorConfig.from_file(path)
    judges = {**base.judges, "t_red_share": {**base.judges["t_red_share"], **overlay.judges["t_red_share"]}}
    return base.model_copy(update={"judges": judges})


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    root = tmp_path_factory.mktemp("loop")
    rng = np.random.default_rng(4)
    shares = rng.uniform(0.2, 0.8, 60)
    rows = []
    for i, s in enumerate(shares):
        red = int(255 * s)
        Image.new("RGB", (32, 32), (red, (255 - red) // 2, (255 - red) // 2)).save(root / f"{i}.png")
        rows.append({"generated_image_url": f"{i}.png", "task_type": "image_generation", "client_ref": f"c{i}"})
    write_jsonl(root / "m.jsonl", rows)
    return root, shares, shares >= 0.62  # the people's line is stricter than the judge's 0.5


def test_batch_labels_calibrate_rescore_equals_reevaluating_with_the_overlay(images, tmp_path, capsys):
    root, _, truth = images
    first = _run_batch(root, _config(None), tmp_path / "r.jsonl")
    assert all(r["judges"][0]["measurements"][0]["threshold"] == DEFAULT_THRESHOLD for r in first)
    labels = tmp_path / "l.csv"
    with labels.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "passed"])
        w.writerows([f"c{i}", int(t)] for i, t in enumerate(truth))
    overlay = tmp_path / "c.toml"
    assert main(["calibrate", str(tmp_path / "r.jsonl"), "--labels", str(labels), "-o", str(overlay)]) == 0
    capsys.readouterr()
    assert main(["rescore", str(tmp_path / "r.jsonl"), "--config", str(overlay), "-o", str(tmp_path / "r2.jsonl")]) == 0
    rescored = {r["client_ref"]: r for r in map(json.loads, (tmp_path / "r2.jsonl").read_text().splitlines())}
    again = {r["client_ref"]: r for r in _run_batch(root, _config(overlay), tmp_path / "r3.jsonl")}
    for ref, r in again.items():
        assert rescored[ref]["overall_passed"] == r["overall_passed"], ref
        assert rescored[ref]["primary_action_code"] == r["primary_action_code"], ref
        assert (
            rescored[ref]["judges"][0]["measurements"][0]["threshold"] == r["judges"][0]["measurements"][0]["threshold"]
        )
        assert rescored[ref]["judges"][0]["confidence"] == pytest.approx(r["judges"][0]["confidence"], abs=2e-3)
        assert rescored[ref]["weighted_pass_rate"] == r["weighted_pass_rate"]
    before = np.array([r["overall_passed"] for r in sorted(first, key=lambda r: int(r["client_ref"][1:]))])
    after = np.array([again[f"c{i}"]["overall_passed"] for i in range(len(truth))])
    assert np.mean(after == truth) > np.mean(before == truth)
