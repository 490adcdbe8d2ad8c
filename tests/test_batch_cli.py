"""``imagejury batch`` end to end with the real judges: CSV and directory inputs, outputs, exit codes."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from imagejury.cli import main
from tests.test_batch_support import corrupt_and_missing, make_images, model_flags, records, write_jsonl

FLAGS = ["--no-progress", "--batch-size", "8", "--workers", "2"]


def test_csv_manifest_with_relative_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = make_images(tmp_path / "img", 12, seed=3) + corrupt_and_missing(tmp_path / "img")
    with (tmp_path / "m.csv").open("w", newline="") as fh:
        w = csv.DictWriter(
            fh,
            fieldnames=[
                "generated_image_url",
                "task_type",
                "generation_prompt",
                "job_class",
                "client_ref",
                "attr_style",
            ],
        )
        w.writeheader()
        for r in rows:
            w.writerow({**r, "attr_style": "flat"})
    out = tmp_path / "out.jsonl"
    assert main(["batch", str(tmp_path / "m.csv"), "-o", str(out), *FLAGS, *model_flags()]) == 0
    recs = records(out)
    assert len(recs) == 16
    done = [r for r in recs if r["status"] == "completed"]
    assert len(done) == 12 and all(r["input_attributes"] == {"style": "flat"} for r in done)
    assert {r["judges"][0]["name"] for r in done} >= {"technical_signals"}
    failed = {r["client_ref"]: r["failure_code"] for r in recs if r["status"] == "failed"}
    assert failed == {
        f"bad-{n}": "invalid_media" for n in ("corrupt.jpg", "truncated.jpg", "text.png", "does_not_exist.jpg")
    }
    err = capsys.readouterr().err
    assert "batch summary" in err and "not evaluated (invalid_media) : 4" in err


def test_directory_input_with_shared_prompt_report_and_parquet(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    make_images(tmp_path / "shots", 6, seed=4)
    (tmp_path / "shots" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nxx")
    out, report, parquet = tmp_path / "out.jsonl", tmp_path / "r.html", tmp_path / "out.parquet"
    code = main(
        [
            "batch",
            str(tmp_path / "shots"),
            "-o",
            str(out),
            "--prompt",
            "a red circle",
            "--job-class",
            "quick",
            "--report",
            str(report),
            "--parquet-out",
            str(parquet),
            *FLAGS,
            *model_flags(),
        ]
    )
    assert code == 0
    recs = records(out)
    assert sorted(r["client_ref"] for r in recs) == sorted(["broken.png"] + [f"{i:04d}.jpg" for i in range(6)])
    assert all(r["generation_prompt"] == "a red circle" and r["job_class"] == "quick" for r in recs)
    assert {r["client_ref"]: r["failure_code"] for r in recs}["broken.png"] == "invalid_media"
    assert pq.read_table(parquet).num_rows == 7
    html = report.read_text()
    assert html.count('class="card ') == 7 and "data:image/jpeg;base64," in html
    # self-contained: nothing loaded from elsewhere (text may mention URLs, e.g. in a reason)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.I)
    assert "<link" not in html and "@import" not in html


def test_task_type_and_job_class_fill_rows_that_lack_them(tmp_path: Path) -> None:
    rows = make_images(tmp_path / "img", 2, seed=5)
    for r in rows:
        del r["task_type"], r["job_class"]
    write_jsonl(tmp_path / "m.jsonl", rows)
    out = tmp_path / "out.jsonl"
    assert (
        main(
            [
                "batch",
                str(tmp_path / "m.jsonl"),
                "-o",
                str(out),
                "--task-type",
                "product",
                "--job-class",
                "quick",
                *FLAGS,
                *model_flags(),
            ]
        )
        == 0
    )
    assert {(r["task_type"], r["job_class"]) for r in records(out)} == {("product", "quick")}


def test_unusable_input_exits_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "out.jsonl")
    assert main(["batch", str(tmp_path / "nope.jsonl"), "-o", out, *FLAGS]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "m.xml").write_text("<x/>")
    assert main(["batch", str(tmp_path / "m.xml"), "-o", out, *FLAGS]) == 2
    write_jsonl(tmp_path / "m.jsonl", [])
    assert main(["batch", str(tmp_path / "m.jsonl"), "-o", out, "--workers", "0"]) == 2
    assert main(["batch", str(tmp_path / "m.jsonl"), "-o", out, "--prompt", "x", *FLAGS]) == 2
    assert "directory input" in capsys.readouterr().err
    assert main(["batch", str(tmp_path / "m.jsonl"), "-o", str(tmp_path), *FLAGS]) == 2


def test_a_batch_of_only_bad_rows_writes_them_and_exits_4(tmp_path: Path) -> None:
    # every row is in the output with its failure; but a run that evaluated nothing is
    # not a success (issue 15: an offline batch used to exit 0 with every row failed)
    (tmp_path / "m.jsonl").write_text(
        '{"task_type": "x"}\nnot json\n' + json.dumps({"generated_image_url": "gone.jpg", "task_type": "x"}) + "\n"
    )
    out = tmp_path / "out.jsonl"
    assert main(["batch", str(tmp_path / "m.jsonl"), "-o", str(out), *FLAGS, *model_flags()]) == 4
    assert sorted(r["status"] for r in records(out)) == ["failed", "rejected", "rejected"]
