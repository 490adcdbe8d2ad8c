"""The public-set loaders read the documented formats and fail clearly on others."""

from __future__ import annotations

import json

import pytest

from benchmarks.public_sets import (
    DatasetFormatError,
    load_agiqa3k,
    load_seetrue,
    load_tifa160_likert,
    load_tifa_v1,
    tifa_reference_correlation,
)


def _tifa(tmp_path, n=6):
    rows = {
        f"coco_{i}_sd": {
            "text_id": f"coco_{i}",
            "image_path": f"coco_{i}_sd.jpg",
            "text": f"prompt {i}",
            "human_scores": [i % 5 + 1, i % 5 + 1],
            "human_avg": float(i % 5 + 1),
            "clipscore_vitb32": 25.0 + (i % 5) + (0.5 if i == 2 else 0.0),
        }
        for i in range(n)
    }
    p = tmp_path / "human_annotations_with_scores.json"
    p.write_text(json.dumps(rows))
    return p


def test_tifa_rows_and_reference_correlation(tmp_path):
    p = _tifa(tmp_path)
    rows = list(load_tifa_v1(p, tmp_path / "imgs"))
    assert len(rows) == 6 and rows[0].image.name == "coco_0_sd.jpg" and rows[0].prompt == "prompt 0"
    n, rho = tifa_reference_correlation(p)
    assert n == 6 and rho > 0.9


def test_tifa_missing_and_malformed(tmp_path):
    with pytest.raises(DatasetFormatError, match="Yushi-Hu/tifa"):
        list(load_tifa_v1(tmp_path / "nope.json", tmp_path))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"x": {"text": "t"}}))
    with pytest.raises(DatasetFormatError, match="image_path"):
        list(load_tifa_v1(bad, tmp_path))


def test_tifa160_averages_workers(tmp_path):
    p = tmp_path / "tifa160-likert-anns.csv"
    p.write_text(
        "t2i_model,item_id,worker_id,answer,text\nsd1dot5,a,w1,4,a cat\nsd1dot5,a,w2,2,a cat\nsd1dot5,b,w1,5,a dog\n"
    )
    (tmp_path / "a_sd1dot5.png").write_bytes(b"x")
    rows = list(load_tifa160_likert(p, tmp_path))
    assert [(r.item_id, r.human) for r in rows] == [("a_sd1dot5", 3.0), ("b_sd1dot5", 5.0)]
    assert rows[0].image.suffix == ".png"


def test_seetrue_and_agiqa_columns(tmp_path):
    s = tmp_path / "drawbench.csv"
    s.write_text("image,text,label\n1.png,a red cube,1\n2.png,a blue cube,0\n")
    assert [r.human for r in load_seetrue(s, tmp_path)] == [1.0, 0.0]
    a = tmp_path / "data.csv"
    a.write_text(
        "name,prompt,adj1,adj2,style,mos_quality,std_quality,mos_align,std_align\nx.jpg,a cat,,,,2.5,0.1,3.5,0.2\n"
    )
    assert next(load_agiqa3k(a, tmp_path)).human == 3.5
    assert next(load_agiqa3k(a, tmp_path, "mos_quality")).human == 2.5
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("img,caption\n")
    with pytest.raises(DatasetFormatError, match="missing column"):
        list(load_seetrue(wrong, tmp_path))
