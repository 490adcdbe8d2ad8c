"""The report's labelling partial (evaluator/batch/templates/_labels.html) in a real headless Chromium:
keyboard marks, counts, persistence across a reload, the filters' hidden cards skipped, and the
downloaded CSV fed to ``imagejury calibrate``.

Driven by playwright with Debian's ``chromium`` as its executable (no browser download), on a
minimal page that includes the partial the way the report does.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from jinja2 import Environment, FileSystemLoader, select_autoescape

from imagejury.cli import main
from tests.test_calibrate import make_record

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra has it)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
TEMPLATES = Path(__file__).resolve().parents[1] / "evaluator" / "batch" / "templates"
PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>labels test</title></head><body>
<section><div class="grid" id="grid">
{% for r in records %}<article class="card" data-id="{{ r.id }}"><div class="meta"><span class="name">{{ r.client_ref }}</span></div></article>
{% endfor %}</div></section>
{% include "_labels.html" %}
</body></html>"""


@pytest.fixture(scope="module")
def labelled_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[dict], np.ndarray]:
    root = tmp_path_factory.mktemp("labels")
    sims = np.linspace(0.45, 0.95, 24)
    records = [make_record(float(s), client_ref=f"img-{i}") for i, s in enumerate(sims)]
    (root / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    page = root / "report.html"
    page.write_text(env.from_string(PAGE).render(records=records))
    return root, page, records, sims >= 0.75  # the reviewer's line is stricter than the judge's


@pytest.fixture()
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


def _counts(page) -> tuple[str, str, str, str]:
    return tuple(page.inner_text(f"#lbl-{k}") for k in ("done", "total", "pass", "fail"))  # type: ignore[return-value]


def test_keyboard_labels_count_persist_and_skip_hidden_cards(browser, labelled_set):
    _, path, records, _ = labelled_set
    context = browser.new_context()
    page = context.new_page()
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-labels-ready='1']")
    assert _counts(page) == ("0", "24", "0", "0")
    page.keyboard.press("j")  # the first card
    assert page.get_attribute("body", "data-current") == records[0]["id"]
    page.keyboard.press("p")  # pass, then on to card 1
    page.keyboard.press("f")  # fail card 1, on to card 2
    assert _counts(page) == ("2", "24", "1", "1")
    cards = page.locator("#grid .card")
    assert cards.nth(0).get_attribute("data-label") == "pass" and cards.nth(1).get_attribute("data-label") == "fail"
    assert cards.nth(0).locator("button.lbl-pass").get_attribute("aria-pressed") == "true"
    # a card the filters hid is skipped
    page.evaluate("document.querySelectorAll('#grid .card')[3].hidden = true")
    page.keyboard.press("j")
    assert page.get_attribute("body", "data-current") == records[4]["id"]
    page.keyboard.press("k")
    assert page.get_attribute("body", "data-current") == records[2]["id"]
    # u clears; typing in a search box is not a shortcut
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("u")
    assert _counts(page) == ("1", "24", "1", "0")
    page.evaluate("var i = document.createElement('input'); i.id = 'search'; document.body.prepend(i)")
    page.focus("#search")
    page.keyboard.type("pf")
    assert _counts(page) == ("1", "24", "1", "0")
    # clicking the buttons works too, and a second click removes the mark
    cards.nth(5).locator("button.lbl-fail").click()
    assert _counts(page) == ("2", "24", "1", "1")
    page.reload()
    page.wait_for_selector("body[data-labels-ready='1']")
    assert _counts(page) == ("2", "24", "1", "1")  # kept across a reload (localStorage)
    page.locator("#grid .card").nth(5).locator("button.lbl-fail").click()
    assert _counts(page) == ("1", "24", "1", "0")
    context.close()


def test_downloaded_csv_feeds_calibrate(browser, labelled_set, tmp_path, capsys):
    root, path, records, truth = labelled_set
    context = browser.new_context()
    page = context.new_page()
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-labels-ready='1']")
    page.keyboard.press("j")
    for t in truth:
        page.keyboard.press("p" if t else "f")
    assert _counts(page) == ("24", "24", str(int(truth.sum())), str(int((~truth).sum())))
    with page.expect_download() as info:
        page.click("#lbl-download")
    download = info.value
    assert download.suggested_filename == "labels.csv"
    labels = tmp_path / "labels.csv"
    download.save_as(labels)
    context.close()
    rows = list(csv.DictReader(labels.open()))
    assert [r["id"] for r in rows] == [r["id"] for r in records]
    assert [r["passed"] for r in rows] == [str(int(t)) for t in truth]
    out = tmp_path / "c.toml"
    assert (
        main(["calibrate", str(root / "r.jsonl"), "--labels", str(labels), "-o", str(out), "--bootstrap", "100"]) == 0
    )
    assert "identity" in capsys.readouterr().out and "[judges" in out.read_text()
