"""The batch report without a browser: escaping, the skipped-checks banner, incomplete
rows, and inputs that must not hang it (a named pipe where an image should be)."""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

import pytest
from PIL import Image

from imagejury.batch.manifest import iter_image_files
from imagejury.batch.report import build_report, skipped_lines, tally, verdict_of, write_report


def _completed(rid: str, passed: bool = True, skipped: list[dict] | None = None, **extra) -> dict:
    summary: dict = {"skipped_checks": skipped or []}
    if "incomplete" in extra:
        summary["incomplete"] = extra.pop("incomplete")
    return {
        "id": rid,
        "status": "completed",
        "overall_passed": passed,
        "weighted_pass_rate": 1.0 if passed else 0.0,
        "client_ref": rid,
        "check_summary": summary,
        "judges": [{"name": "technical_signals", "passed": passed, "confidence": 0.8, "weight": 1, "reasoning": "ok"}],
        **extra,
    }


def _write(path: Path, recs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return path


def _badges(page: str) -> list[str]:
    return re.findall(r'<span class="badge b-(\w+)"', page)


CLIP_SKIP = {
    "judge": "safety",
    "reason": "model 'ViT-L-14:openai' is not available here",
    "detail": "looked in the HF cache",
    "model": "ViT-L-14:openai",
}


def test_template_syntax_in_user_text_is_shown_as_text(tmp_path: Path) -> None:
    # before: the page was built by str.replace in turn, so a {{SHOWN}} inside a card's
    # text was expanded by a later replacement
    rec = _completed("x{{SHOWN}}y")
    rec["judges"][0]["reasoning"] = "{{TITLE}} and {{ 7 * 7 }} and {% if 1 %}if{% endif %}"
    rec["override_reason"] = "<img src=x onerror=alert(1)>"
    page = build_report([rec], base_dir=None)
    assert "x{{SHOWN}}y" in page
    assert "{{TITLE}} and {{ 7 * 7 }} and {% if 1 %}if{% endif %}" in page
    assert "<img src=x onerror" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_passing_rows_with_skipped_checks_are_incomplete_never_pass(tmp_path: Path) -> None:
    recs = [
        _completed("new-flag", skipped=[CLIP_SKIP], incomplete=True),
        _completed("old-record", skipped=[{k: v for k, v in CLIP_SKIP.items() if k != "model"}]),
        _completed("complete", incomplete=False),
        _completed("failed-anyway", passed=False, skipped=[CLIP_SKIP], incomplete=True),
    ]
    assert [verdict_of(r) for r in recs] == ["incomplete", "incomplete", "pass", "fail"]
    page = build_report(recs, base_dir=None)
    assert _badges(page) == ["incomplete", "incomplete", "pass", "fail"]
    assert re.search(r'<b class="c-pass">1</b> passed', page)
    assert re.search(r'<b class="c-inc">2</b> incomplete', page)


def test_banner_names_the_skipped_judges_the_rows_and_the_model(tmp_path: Path) -> None:
    prompt_skip = {**CLIP_SKIP, "judge": "prompt_adherence"}
    face_skip = {"judge": "identity", "reason": "judge 'identity' could not load dlib", "detail": ""}
    recs = [_completed(f"r{i}", skipped=[CLIP_SKIP, prompt_skip], incomplete=True) for i in range(40)]
    recs[0]["check_summary"]["skipped_checks"].append(face_skip)  # an old record: no model key
    recs.append({"id": "bad", "status": "failed", "failure_code": "invalid_media"})
    lines = skipped_lines(tally(recs).skips, evaluated=40)
    assert lines == [
        "prompt_adherence and safety skipped on all 40 rows: model ViT-L-14:openai not available",
        "identity skipped on 1 of 40 evaluated rows: judge 'identity' could not load dlib",
    ]
    page = build_report(recs, base_dir=None)
    assert 'id="skipped-banner"' in page and lines[0] in page


def test_no_banner_when_every_check_ran() -> None:
    page = build_report([_completed("a"), _completed("b", passed=False)], base_dir=None)
    assert 'id="skipped-banner"' not in page


def test_a_child_template_can_add_card_actions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the hook another feature (per-card labelling) builds on: blocks in report.html
    from imagejury.batch import report

    child = tmp_path / "labelled.html"
    child.write_text(
        '{% extends "report.html" %}'
        '{% block card_actions %}<button class="label" data-for="{{ card.id }}">label</button>{% endblock %}'
        "{% block page_scripts %}<script>window.labelling = true;</script>{% endblock %}"
    )
    for template in report.TEMPLATES.glob("*.html"):  # the report and the partials it includes
        (tmp_path / template.name).write_text(template.read_text())
    monkeypatch.setattr(report, "TEMPLATES", tmp_path)
    report._environment.cache_clear()
    try:
        page = build_report([_completed("a"), _completed("b")], base_dir=None, template="labelled.html")
    finally:
        report._environment.cache_clear()
    assert page.count('<button class="label"') == 2 and 'data-for="b"' in page
    assert "window.labelling = true;" in page


# ---------------------------------------------------------------- named pipes never hang
def _finishes(fn, fifo: Path, seconds: float = 30) -> bool:
    """Run ``fn`` in a thread; if it is still blocked after ``seconds``, unblock it by
    opening the pipe's other end (so the test fails instead of hanging) and say so."""
    done = threading.Event()
    worker = threading.Thread(target=lambda: (fn(), done.set()), daemon=True)
    worker.start()
    if done.wait(seconds):
        return True
    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    os.close(fd)
    worker.join(10)
    return False


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_report_does_not_open_a_named_pipe(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.png")
    Image.new("RGB", (20, 20), (200, 0, 0)).save(tmp_path / "real.png")
    recs = [
        {"id": "p", "status": "failed", "failure_code": "invalid_media", "generated_image_url": "pipe.png"},
        {**_completed("r"), "generated_image_url": "real.png"},
    ]
    _write(tmp_path / "out.jsonl", recs)
    assert _finishes(
        lambda: write_report(tmp_path / "out.jsonl", tmp_path / "r.html", base_dir=tmp_path), tmp_path / "pipe.png"
    )
    page = (tmp_path / "r.html").read_text()
    assert page.count("data:image/jpeg;base64,") == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_directory_input_skips_named_pipes_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    os.mkfifo(tmp_path / "b.png")
    Image.new("RGB", (20, 20)).save(tmp_path / "a.png")
    with caplog.at_level("WARNING", logger="imagejury.batch.manifest"):
        files = [p.name for p in iter_image_files(tmp_path)]
    assert files == ["a.png"]
    assert "b.png is not a regular file" in caplog.text


def test_the_report_carries_the_labelling_bar() -> None:
    page = build_report([_completed("a"), _completed("b")], base_dir=None)
    assert 'id="lbl-bar"' in page and "labels.csv" in page
