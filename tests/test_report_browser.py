"""The HTML report in a real headless Chromium: it opens, shows every row, and its filters work.

Chromium runs with ``--dump-dom``, which prints the DOM after the page's scripts ran; the
filters read the URL fragment (``#verdict=fail``), so each filter is one page load.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from imagejury.batch.engine import BatchOptions, LocalBatch
from imagejury.batch.manifest import open_manifest
from imagejury.batch.report import write_report
from imagejury.core.pipeline import Evaluator
from tests.support import pipeline_judges as pj
from tests.test_batch_support import write_jsonl

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium); the report's browser test needs it"
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    (root / "img").mkdir()
    rows = []
    for i in range(9):
        color = (220, 10, 10) if i % 3 else (10, 10, 220)  # 6 red (pass), 3 blue (fail)
        Image.new("RGB", (48, 48), color).save(root / "img" / f"{i}.png")
        row = {"generated_image_url": f"img/{i}.png", "task_type": "image_generation", "client_ref": f"img-{i}"}
        if i in (1, 2):
            row["generation_prompt"] = "gate"  # the test gate judge fails these with issue "unsafe"
        rows.append(row)
    rows.append({"generated_image_url": "img/missing.png", "task_type": "image_generation", "client_ref": "gone"})
    write_jsonl(root / "m.jsonl", rows)
    ev = Evaluator(pj.make_config(["t_redness", "t_gate"]), judges=pj.make_registry())
    LocalBatch(
        ev, open_manifest(root / "m.jsonl"), root / "out.jsonl", BatchOptions(batch_size=4, workers=2, progress=False)
    ).run()
    path = root / "report.html"
    assert write_report(root / "out.jsonl", path, base_dir=root) == 10
    return path


def _dom(path: Path, fragment: str, profile: Path) -> str:
    url = path.resolve().as_uri() + fragment
    proc = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", url], capture_output=True, text=True, timeout=90
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _body(dom: str) -> dict[str, str]:
    m = re.search(r"<body([^>]*)>", dom)
    assert m, "no <body> in the dumped DOM"
    return dict(re.findall(r'(data-[a-z]+)="([^"]*)"', m.group(1)))


def _cards(dom: str) -> list[tuple[str, bool]]:
    """(verdict, hidden) of each card, as the browser left them."""
    return [
        (v, "hidden" in attrs)
        for attrs, v in (
            (m.group(0), m.group(1))
            for m in re.finditer(r'<article class="card [^"]*" data-verdict="(\w+)"[^>]*>', dom)
        )
    ]


def test_report_opens_and_shows_every_row(report: Path, tmp_path: Path) -> None:
    dom = _dom(report, "", tmp_path / "p1")
    body = _body(dom)
    assert body["data-ready"] == "1", "the report's script did not run"
    assert body["data-shown"] == "10"
    cards = _cards(dom)
    assert sorted(v for v, _ in cards) == ["error"] + ["fail"] * 5 + ["pass"] * 4
    assert not any(hidden for _, hidden in cards)
    assert dom.count("data:image/jpeg;base64,") == 9  # the missing image has no thumbnail
    assert dom.count('class="judge-chart"') == 2  # one chart per judge
    assert "t_redness" in dom and "red share" in dom  # each image's judges, with their reasons


def test_verdict_and_issue_filters(report: Path, tmp_path: Path) -> None:
    dom = _dom(report, "#verdict=fail", tmp_path / "p2")
    assert _body(dom)["data-shown"] == "5"
    assert all(hidden == (v != "fail") for v, hidden in _cards(dom))

    dom = _dom(report, "#issue=" + "safety/unsafe", tmp_path / "p3")
    assert _body(dom)["data-shown"] == "2"
    visible = re.findall(r'<article class="card [^"]*" data-verdict="\w+" data-issues="([^"]*)" data-id="[^"]*">', dom)
    assert sum("safety/unsafe" in v for v in visible) == 2

    dom = _dom(report, "#verdict=error", tmp_path / "p4")
    assert _body(dom)["data-shown"] == "1"


def test_report_data_is_escaped(tmp_path: Path) -> None:
    recs = [
        {
            "id": "x",
            "status": "failed",
            "failure_code": "invalid_media",
            "failure_message": "<script>alert(1)</script>",
            "client_ref": "<b>ref</b>",
        }
    ]
    (tmp_path / "out.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    write_report(tmp_path / "out.jsonl", tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>ref</b>" not in html


# ---------------------------------------------------------------- an opened card at 1400 px
MEASURE = """
<script>
window.addEventListener("load", function () {
  var card = document.querySelector('[data-id="long"]');
  card.querySelector("details").open = true;
  setTimeout(function () {
    var box = card.getBoundingClientRect(), clipped = [];
    card.querySelectorAll("table.judges td").forEach(function (td) {
      var r = td.getBoundingClientRect();
      if (r.right > box.right + 1 || r.left < box.left - 1 || td.scrollWidth > td.clientWidth + 1) {
        clipped.push(td.textContent.slice(0, 24));
      }
    });
    document.body.dataset.cardWidth = String(Math.round(box.width));
    document.body.dataset.clipped = clipped.join(" | ") || "none";
    document.body.dataset.cells = String(card.querySelectorAll("table.judges tbody tr").length);
  }, 200);
});
</script>
"""


def test_an_opened_card_shows_every_judges_reasoning_unclipped_at_1400px(tmp_path: Path) -> None:
    # before: `.card {overflow: hidden}` and a widening rule on <details> (not a grid item),
    # so the opened judges table ran past a 200 px card and its reasoning was cut off
    Image.new("RGB", (64, 64), (200, 30, 30)).save(tmp_path / "a.png")
    judges = [
        {
            "name": f"judge_{k}",
            "passed": k % 2 == 0,
            "confidence": 0.7,
            "weight": 1,
            "reasoning": f"judge {k} explains at length: "
            + "the image shows a red square " * 12
            + "and_one_very_long_unbroken_token_" * 4,
        }
        for k in range(5)
    ]
    recs = [
        {"id": f"n{i}", "status": "completed", "overall_passed": True, "client_ref": f"n{i}", "judges": judges[:1]}
        for i in range(7)
    ]
    recs.insert(
        2,
        {
            "id": "long",
            "status": "completed",
            "overall_passed": False,
            "client_ref": "long",
            "generated_image_url": "a.png",
            "judges": judges,
            "check_summary": {"skipped_checks": [{"judge": "safety", "reason": "model x missing", "model": "x"}]},
        },
    )
    (tmp_path / "out.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    write_report(tmp_path / "out.jsonl", tmp_path / "r.html", base_dir=tmp_path)
    page = tmp_path / "measure.html"
    page.write_text((tmp_path / "r.html").read_text().replace("</body>", MEASURE + "</body>"))
    proc = subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            "--window-size=1400,1000",
            "--virtual-time-budget=5000",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = re.search(r"<body([^>]*)>", proc.stdout)
    assert m
    body = dict(re.findall(r'(data-[a-z-]+)="([^"]*)"', m.group(1)))
    assert body.get("data-cells") == "6", body  # five judges and one skipped check
    assert body["data-clipped"] == "none", f"cells cut off by the card: {body['data-clipped']}"
    assert int(body["data-card-width"]) >= 1000, f"the opened card is only {body['data-card-width']} px wide"
