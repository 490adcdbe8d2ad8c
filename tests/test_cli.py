"""The ``imagejury evaluate`` command: verdict, JSON, exit codes, on the bundled examples."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from imagejury.cli import EXIT_FAILED, EXIT_INCOMPLETE, EXIT_INVALID, EXIT_PASSED, EXIT_PROCESSING, main
from imagejury.core.schema import Evaluation
from tests.test_schema import api_docs

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples"
TINY = f"local-dir:{ROOT / 'tests' / 'assets' / 'tiny_shapes_clip'}"


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _keys(example: dict, ours: dict, where: str) -> list[str]:
    missing = [f"{where}.{k}" for k in example if k not in ours]
    return missing


def test_readable_verdict_on_bundled_example(capsys):
    code, out, _ = _run(
        capsys,
        "evaluate",
        str(EX / "astronaut_headshot.jpg"),
        "--task-type",
        "headshot",
        "--ref",
        f"identity={EX / 'astronaut_reference.jpg'}",
        "--allow-missing-models",
        "--clip",
        TINY,
    )
    assert code == EXIT_PASSED, out
    assert out.startswith("PASS")
    assert "identity" in out and "headshot" in out and "action: accept" in out


def test_json_validates_and_carries_every_key_of_the_example(capsys):
    code, out, _ = _run(
        capsys,
        "evaluate",
        str(EX / "astronaut_headshot.jpg"),
        "--task-type",
        "headshot",
        "--ref",
        f"identity={EX / 'astronaut_reference.jpg'}",
        "--prompt",
        "a red circle",
        "--instructions",
        "no blue shapes",
        "--attr",
        "color=red",
        "--clip",
        TINY,
        "--json",
    )
    data = json.loads(out)
    Evaluation.model_validate(data)
    example = json.loads((api_docs() / "response.example.json").read_text())
    missing = _keys(example, data, "")
    missing += _keys(example["judges"][0], data["judges"][0], "judges[]")
    judge_with_issue = next(j for j in data["judges"] if j["issues"])
    missing += _keys(example["judges"][0]["issues"][0], judge_with_issue["issues"][0], "judges[].issues[]")
    missing += _keys(example["action"], data["action"], "action")
    assert not missing, missing
    for extra in ("status", "source", "failure_code", "job_class"):
        assert extra in data
    assert data["status"] == "completed" and code in (EXIT_PASSED, EXIT_FAILED)


def test_failing_image_exits_1_with_reasons(capsys):
    code, out, _ = _run(
        capsys,
        "evaluate",
        str(EX / "chelsea.jpg"),
        "--task-type",
        "headshot",
        "--ref",
        f"identity={EX / 'astronaut_reference.jpg'}",
        "--allow-missing-models",
        "--clip",
        TINY,
    )
    assert code == EXIT_FAILED
    assert out.startswith("FAIL") and "[GATE] identity/face" in out and "action: reject" in out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--attr", "novalue"], "KEY=VALUE"),
        (["--job-class", "turbo"], "job_class"),
        (["--task-type", ""], "task_type"),
    ],
)
def test_invalid_input_exits_2(capsys, argv, needle):
    code, _, err = _run(capsys, "evaluate", str(EX / "coffee.jpg"), *argv)
    assert code == EXIT_INVALID
    assert needle in err


def test_invalid_media_exits_2(capsys, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    code, out, _ = _run(capsys, "evaluate", str(bad), "--allow-missing-models")
    assert code == EXIT_INVALID
    assert "invalid_media" in out
    gif = tmp_path / "x.gif"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(gif)
    code, out, _ = _run(capsys, "evaluate", str(gif), "--json")
    assert code == EXIT_INVALID and json.loads(out)["failure_code"] == "invalid_media" and "GIF" in out


def test_missing_model_exits_3_naming_it(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code, out, _ = _run(
        capsys, "evaluate", str(EX / "coffee.jpg"), "--prompt", "a cup of coffee", "--clip", "ViT-B-32:openai"
    )
    assert code == EXIT_PROCESSING
    assert "processing_failed" in out and "ViT-B-32:openai" in out and "--allow-missing-models" in out


def test_skipped_checks_are_never_a_bare_pass(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    argv = ["evaluate", str(EX / "coffee.jpg"), "--prompt", "a cup of coffee", "--clip", "ViT-B-32:openai"]
    code, out, _ = _run(capsys, *argv, "--allow-missing-models")
    assert code == EXIT_INCOMPLETE == 4, out
    assert out.startswith("INCOMPLETE") and not out.startswith("PASS")
    assert "not run: prompt_adherence" in out and "safety" in out
    # the how-to once for the one missing model, not once per judge
    assert out.count("To supply it") == 1 and "imagejury models" in out
    code, out, _ = _run(capsys, *argv, "--allow-missing-models", "--json")
    data = json.loads(out)
    assert data["check_summary"]["incomplete"] is True
    assert {s["model"] for s in data["check_summary"]["skipped_checks"]} == {"ViT-B-32:openai"}


def test_console_script_runs(tmp_path):
    exe = Path(sys.executable).with_name("imagejury")
    proc = subprocess.run([str(exe), "models"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0
    assert "dlib" in proc.stdout and "available" in proc.stdout


def test_help_lists_the_known_task_types_and_reference_kinds(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "headshot (portrait, avatar, profile_photo" in out and "image_generation" in out and "product" in out
    assert "identity (face, person" in out and "garment" in out


def test_a_typo_in_the_task_type_is_warned_about(capsys):
    code, out, err = _run(
        capsys, "evaluate", str(EX / "coffee.jpg"), "--task-type", "headsot", "--clip", TINY, "--allow-missing-models"
    )
    assert "warning: unknown task_type 'headsot'" in err and "did you mean 'headshot'?" in err
