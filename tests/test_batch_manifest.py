"""Manifest readers: JSONL, CSV, Parquet and directories, streamed, with stable row ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from imagejury.batch.manifest import (
    ManifestError,
    open_manifest,
    row_id_for,
    table_row_to_request,
)


def test_jsonl_rows_ids_and_bad_lines(tmp_path: Path) -> None:
    m = tmp_path / "m.jsonl"
    m.write_text(
        '{"generated_image_url": "a.jpg", "task_type": "x", "client_ref": "ref-1"}\n'
        "\n"
        '{"task_type": "x", "generated_image_url": "b.jpg"}\n'
        "{broken\n"
        "[1, 2]\n"
    )
    rows = list(open_manifest(m).rows())
    assert [r.row_id for r in rows][0] == "ref-1"
    assert rows[1].row_id.startswith("h-") and rows[1].data == {"task_type": "x", "generated_image_url": "b.jpg"}
    # key order does not change the hash id: it is the canonical row
    assert rows[1].row_id == row_id_for({"generated_image_url": "b.jpg", "task_type": "x"})
    assert rows[2].error and "not valid JSON" in rows[2].error and rows[2].line == 4
    assert rows[3].error and "JSON object" in rows[3].error
    assert all(r.base_dir == tmp_path for r in rows)
    # reading again gives the same ids (the resume key)
    assert [r.row_id for r in open_manifest(m).rows()] == [r.row_id for r in rows]


def test_rows_are_streamed_not_loaded(tmp_path: Path) -> None:
    m = tmp_path / "m.jsonl"
    m.write_text("".join(json.dumps({"generated_image_url": f"{i}.jpg", "task_type": "x"}) + "\n" for i in range(1000)))
    rows = open_manifest(m).rows()
    assert not isinstance(rows, list)
    first = next(rows)
    assert first.data["generated_image_url"] == "0.jpg"


def test_csv_columns_refs_attrs_and_json(tmp_path: Path) -> None:
    m = tmp_path / "m.csv"
    m.write_text(
        "generated_image_url,task_type,generation_prompt,ref_identity,ref_garment,attr_style,attr_people,input_attributes,client_ref\n"
        'a.jpg,headshot,a portrait,me1.jpg|me2.jpg,,corporate,2,"{""bg"": ""grey""}",r1\n'
        "b.jpg,product,,,shirt.jpg,,,,\n"
        'c.jpg,x,,,,,,"{not json",\n'
    )
    rows = list(open_manifest(m).rows())
    a, b, c = rows
    assert a.row_id == "r1"
    assert a.data["reference_images"] == [
        {"url": "me1.jpg", "kind": "identity"},
        {"url": "me2.jpg", "kind": "identity"},
    ]
    assert a.data["input_attributes"] == {"bg": "grey", "style": "corporate", "people": 2}
    assert b.data == {
        "generated_image_url": "b.jpg",
        "task_type": "product",
        "reference_images": [{"url": "shirt.jpg", "kind": "garment"}],
    }
    assert b.row_id.startswith("h-")
    assert c.error and "input_attributes" in c.error


def test_table_row_passes_native_nested_values() -> None:
    data = table_row_to_request(
        {"generated_image_url": "a.jpg", "reference_images": [{"url": "r.jpg", "kind": "style"}], "x": None}
    )
    assert data == {"generated_image_url": "a.jpg", "reference_images": [{"url": "r.jpg", "kind": "style"}]}


def test_parquet_rows(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(
        [
            {"generated_image_url": "a.jpg", "task_type": "x", "client_ref": "p1", "attr_style": "flat"},
            {"generated_image_url": "b.jpg", "task_type": "x", "client_ref": None, "attr_style": None},
        ]
    )
    pq.write_table(table, tmp_path / "m.parquet")
    man = open_manifest(tmp_path / "m.parquet")
    rows = list(man.rows())
    assert man.count_rows() == 2
    assert rows[0].row_id == "p1" and rows[0].data["input_attributes"] == {"style": "flat"}
    assert rows[1].data == {"generated_image_url": "b.jpg", "task_type": "x"}


def test_directory_rows_sorted_with_shared_fields(tmp_path: Path) -> None:
    for rel in ["b.png", "a.jpg", "sub/c.webp", "notes.txt", ".hidden.jpg", "sub/deeper/d.JPG"]:
        p = tmp_path / "imgs" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.suffix.lower() == ".txt":
            p.write_text("x")
        else:
            Image.new("RGB", (8, 8)).save(p, format={".png": "PNG", ".webp": "WEBP"}.get(p.suffix.lower(), "JPEG"))
    man = open_manifest(
        tmp_path / "imgs", shared={"task_type": "product", "generation_prompt": "a mug", "job_class": None}
    )
    rows = list(man.rows())
    assert [r.data["generated_image_url"] for r in rows] == ["a.jpg", "b.png", "sub/c.webp", "sub/deeper/d.JPG"]
    assert [r.row_id for r in rows] == ["a.jpg", "b.png", "sub/c.webp", "sub/deeper/d.JPG"]
    assert rows[0].data == {
        "generated_image_url": "a.jpg",
        "client_ref": "a.jpg",
        "task_type": "product",
        "generation_prompt": "a mug",
    }
    assert man.count_rows() == 4 and rows[0].base_dir == (tmp_path / "imgs").resolve()


def test_unusable_inputs_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not found"):
        open_manifest(tmp_path / "nope.jsonl")
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(ManifestError, match="suffix"):
        open_manifest(tmp_path / "m.txt")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ManifestError, match="header"):
        list(open_manifest(tmp_path / "empty.csv").rows())
    (tmp_path / "d").mkdir()
    with pytest.raises(ManifestError, match="task type"):
        open_manifest(tmp_path / "d", shared={})
