"""A self-contained HTML report of a batch's results: one file, no network, opens anywhere.

What it holds: headline counts; a chart per judge of how its votes are spread; a grid of
thumbnails (small JPEGs embedded as base64) with a verdict badge each; filters by
verdict and by issue; and, per image, every judge's vote, confidence, reasoning and
issues. Charts are inline SVG drawn here, filters a few lines of plain JavaScript
(no CDN, no framework), so the file works offline and in a mail attachment.

Scores per judge: the API gives each judge ``passed`` and ``confidence`` (distance from
its threshold, 0.5 = on the line). The chart shows ``p(pass)`` = confidence when the
judge passed, 1 - confidence when it failed — one axis from "sure fail" (0) through
"on the threshold" (0.5) to "sure pass" (1) — in ten bins, passes and fails stacked.

Large batches: charts and counts use every record; the grid shows the first ``limit``
images (the report says so), which keeps a million-row report at a sane size.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from PIL import Image

from imagejury.batch.engine import ResultsFile
from imagejury.core.intake.media import classify_source

log = logging.getLogger(__name__)

TEMPLATE = Path(__file__).with_name("templates") / "report.html"
THUMB_PX = 160  # thumbnail longest side: sharp on a 4-column grid, ~5 KB as JPEG q70
THUMB_QUALITY = 70
BINS = 10


@dataclass
class JudgeDist:
    passes: list[int] = field(default_factory=lambda: [0] * BINS)
    fails: list[int] = field(default_factory=lambda: [0] * BINS)

    def add(self, passed: bool, confidence: float) -> None:
        p = confidence if passed else 1.0 - confidence
        b = min(BINS - 1, max(0, int(p * BINS)))
        (self.passes if passed else self.fails)[b] += 1


def verdict_of(rec: dict[str, Any]) -> str:
    """pass | fail | error (the row could not be evaluated)."""
    if rec.get("status") == "completed":
        return "pass" if rec.get("overall_passed") else "fail"
    return "error"


def issue_codes(rec: dict[str, Any]) -> list[str]:
    codes = []
    for j in rec.get("judges") or []:
        for i in j.get("issues") or []:
            codes.append(f"{i.get('category')}/{i.get('subcategory')}")
    if rec.get("status") != "completed":
        codes.append(f"not evaluated/{rec.get('failure_code') or 'unknown'}")
    return sorted(set(codes))


def thumbnail(url: Any, base_dir: Path | None, px: int = THUMB_PX) -> str | None:
    """A data: URI of a small JPEG of a local image; None for remote or unreadable ones
    (the report never fetches anything)."""
    if not isinstance(url, str) or classify_source(url) != "path":
        return None
    path = Path(url[7:] if url.startswith("file://") else url)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        with Image.open(path) as img:
            img.draft("RGB", (px, px))
            img = img.convert("RGB")
            img.thumbnail((px, px))
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=THUMB_QUALITY)
    except Exception:  # noqa: BLE001 - a missing or corrupt image simply has no thumbnail
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _svg_chart(name: str, dist: JudgeDist) -> str:
    w, h, pad = 260, 120, 18
    bw = (w - 2 * pad) / BINS
    top = max([p + f for p, f in zip(dist.passes, dist.fails)] + [1])
    parts = [
        f'<svg class="chart" viewBox="0 0 {w} {h + 28}" width="{w}" height="{h + 28}" role="img" '
        f'aria-label="{html.escape(name)} vote distribution">'
    ]
    for i in range(BINS):
        x = pad + i * bw
        fh = (h - pad) * dist.fails[i] / top
        ph = (h - pad) * dist.passes[i] / top
        if dist.fails[i]:
            parts.append(
                f'<rect class="bar-fail" x="{x + 1:.1f}" y="{h - fh:.1f}" width="{bw - 2:.1f}" height="{fh:.1f}">'
                f"<title>{dist.fails[i]} fail, p(pass) {i / BINS:.1f}-{(i + 1) / BINS:.1f}</title></rect>"
            )
        if dist.passes[i]:
            parts.append(
                f'<rect class="bar-pass" x="{x + 1:.1f}" y="{h - fh - ph:.1f}" width="{bw - 2:.1f}" height="{ph:.1f}">'
                f"<title>{dist.passes[i]} pass, p(pass) {i / BINS:.1f}-{(i + 1) / BINS:.1f}</title></rect>"
            )
    parts.append(f'<line x1="{pad}" y1="{h}" x2="{w - pad}" y2="{h}" class="axis"/>')
    parts.append(f'<line x1="{w / 2}" y1="{pad - 6}" x2="{w / 2}" y2="{h}" class="mid"/>')
    for x, label in ((pad, "0"), (w / 2, "0.5"), (w - pad, "1")):
        parts.append(f'<text x="{x}" y="{h + 14}" text-anchor="middle">{label}</text>')
    parts.append(f'<text x="{w / 2}" y="{h + 26}" text-anchor="middle" class="cap">p(pass), max bar {top}</text>')
    parts.append("</svg>")
    total_p, total_f = sum(dist.passes), sum(dist.fails)
    return (
        f'<figure class="judge-chart" data-judge="{html.escape(name)}"><figcaption><b>{html.escape(name)}</b> '
        f"{total_p} pass / {total_f} fail</figcaption>{''.join(parts)}</figure>"
    )


def _card(rec: dict[str, Any], thumb: str | None) -> str:
    e = html.escape
    verdict = verdict_of(rec)
    codes = issue_codes(rec)
    label = (
        rec.get("client_ref")
        or rec.get("generated_image_url")
        or (rec.get("links") or {}).get("batch_row")
        or rec.get("id")
    )
    label = str(label)
    img = f'<img src="{thumb}" alt="{e(label)}" loading="lazy">' if thumb else '<div class="noimg">no preview</div>'
    rate = rec.get("weighted_pass_rate")
    badge = {"pass": "PASS", "fail": "FAIL", "error": "NOT EVALUATED"}[verdict]
    rows = []
    for j in rec.get("judges") or []:
        issues = "".join(
            f"<li>{e(str(i.get('subcategory')))}: {e(str(i.get('detail')))}</li>" for i in j.get("issues") or []
        )
        rows.append(
            f'<tr class="{"jp" if j.get("passed") else "jf"}"><td>{e(str(j.get("name")))}</td>'
            f"<td>{'pass' if j.get('passed') else 'FAIL'}</td><td>{float(j.get('confidence') or 0):.2f}</td>"
            f"<td>{float(j.get('weight') or 0):g}</td><td>{e(str(j.get('reasoning') or ''))}"
            f"{'<ul>' + issues + '</ul>' if issues else ''}</td></tr>"
        )
    for s in (rec.get("check_summary") or {}).get("skipped_checks") or []:
        rows.append(
            f'<tr class="js"><td>{e(str(s.get("judge")))}</td><td>skipped</td><td></td><td></td>'
            f"<td>{e(str(s.get('reason') or ''))}</td></tr>"
        )
    if verdict == "error":
        body = f'<p class="err">{e(str(rec.get("failure_code")))}: {e(str(rec.get("failure_message") or ""))}</p>'
    else:
        body = (
            '<table class="judges"><thead><tr><th>judge</th><th>vote</th><th>conf.</th><th>weight</th><th>reasoning</th></tr>'
            f"</thead><tbody>{''.join(rows)}</tbody></table>"
        )
        if rec.get("override_reason"):
            body = f'<p class="override">{e(str(rec["override_reason"]))}</p>' + body
        action = rec.get("action") or {}
        if action.get("primary_action"):
            body += f'<p class="action">action: {e(str(action["primary_action"]))}</p>'
    rate_txt = f"{rate:.2f}" if isinstance(rate, (int, float)) and verdict != "error" else ""
    return (
        f'<article class="card v-{verdict}" data-verdict="{verdict}" data-issues="{e("|".join(codes))}" data-id="{e(str(rec.get("id")))}">'
        f'{img}<div class="meta"><span class="badge b-{verdict}">{badge}</span> <span class="rate">{rate_txt}</span>'
        f'<div class="name" title="{e(label)}">{e(label[-60:])}</div></div>'
        f"<details><summary>judges</summary>{body}</details></article>"
    )


def build_report(
    records: list[dict[str, Any]],
    *,
    base_dir: Path | None,
    limit: int = 5000,
    title: str = "imagejury batch report",
    total_records: int | None = None,
    dists: dict[str, JudgeDist] | None = None,
    counts: Counter | None = None,
    issue_counts: Counter | None = None,
) -> str:
    """The report's HTML for ``records`` (the grid); charts and counts from the
    precomputed tallies when given (all records), else from ``records``."""
    if dists is None or counts is None or issue_counts is None:
        dists, counts, issue_counts = tally(records)
    shown = records[:limit]
    with ThreadPoolExecutor(max_workers=4) as pool:
        thumbs = list(pool.map(lambda r: thumbnail(r.get("generated_image_url"), base_dir), shown))
    cards = "".join(_card(r, t) for r, t in zip(shown, thumbs))
    total = total_records if total_records is not None else len(records)
    evaluated = counts["pass"] + counts["fail"]
    rate = f"{counts['pass'] / evaluated:.1%}" if evaluated else "-"
    issue_opts = "".join(
        f'<option value="{html.escape(c)}">{html.escape(c)} ({n})</option>' for c, n in issue_counts.most_common()
    )
    charts = "".join(_svg_chart(name, d) for name, d in sorted(dists.items())) or "<p>No judge ran.</p>"
    note = (
        f'<p class="note">The grid shows the first {len(shown)} of {total} results; counts and charts cover all.</p>'
        if len(shown) < total
        else ""
    )
    top = "".join(f"<li>{html.escape(c)}: {n}</li>" for c, n in issue_counts.most_common(8))
    template = TEMPLATE.read_text(encoding="utf-8")
    values = {
        "TITLE": html.escape(title),
        "GENERATED": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "TOTAL": str(total),
        "PASSED": str(counts["pass"]),
        "FAILED": str(counts["fail"]),
        "ERRORS": str(counts["error"]),
        "PASS_RATE": rate,
        "ISSUE_OPTIONS": issue_opts,
        "TOP_ISSUES": top or "<li>none</li>",
        "CHARTS": charts,
        "NOTE": note,
        "CARDS": cards,
        "SHOWN": str(len(shown)),
    }
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value)
    return template


def tally(records: Any) -> tuple[dict[str, JudgeDist], Counter, Counter]:
    dists: dict[str, JudgeDist] = defaultdict(JudgeDist)
    counts: Counter = Counter()
    issue_counts: Counter = Counter()
    for rec in records:
        counts[verdict_of(rec)] += 1
        for code in issue_codes(rec):
            issue_counts[code] += 1
        for j in rec.get("judges") or []:
            dists[str(j.get("name"))].add(bool(j.get("passed")), float(j.get("confidence") or 0.5))
    return dict(dists), counts, issue_counts


def write_report(results: str | Path, report: str | Path, *, base_dir: Path | None = None, limit: int = 5000) -> int:
    """Write the report of a results JSONL; returns how many evaluations it covers.

    Streams the file once: tallies see every record, the grid keeps the first ``limit``.
    An id seen twice (only after hand edits: the engine writes each row once) counts once.
    """
    seen: set[str] = set()
    shown: list[dict[str, Any]] = []
    dists: dict[str, JudgeDist] = defaultdict(JudgeDist)
    counts: Counter = Counter()
    issue_counts: Counter = Counter()
    for rec in ResultsFile(results).records():
        rid = str(rec["id"])
        if rid in seen:
            continue
        seen.add(rid)
        counts[verdict_of(rec)] += 1
        issue_counts.update(issue_codes(rec))
        for j in rec.get("judges") or []:
            dists[str(j.get("name"))].add(bool(j.get("passed")), float(j.get("confidence") or 0.5))
        if len(shown) < limit:
            shown.append(_slim(rec))
    page = build_report(
        shown,
        base_dir=base_dir,
        limit=limit,
        total_records=len(seen),
        dists=dict(dists),
        counts=counts,
        issue_counts=issue_counts,
    )
    out = Path(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return len(seen)


_KEEP = (
    "id",
    "status",
    "overall_passed",
    "weighted_pass_rate",
    "override_reason",
    "failure_code",
    "failure_message",
    "client_ref",
    "generated_image_url",
    "links",
    "action",
    "check_summary",
    "judges",
)


def _slim(rec: dict[str, Any]) -> dict[str, Any]:
    """What the report needs of a record (drops the echo of long prompts, ids, timestamps)."""
    out = {k: rec.get(k) for k in _KEEP if k in rec}
    cs = rec.get("check_summary") or {}
    out["check_summary"] = {"skipped_checks": cs.get("skipped_checks") or []}
    out["judges"] = [
        {k: j.get(k) for k in ("name", "passed", "confidence", "weight", "reasoning")}
        | {
            "issues": [
                {"category": i.get("category"), "subcategory": i.get("subcategory"), "detail": i.get("detail")}
                for i in j.get("issues") or []
            ]
        }
        for j in rec.get("judges") or []
    ]
    action = rec.get("action") or {}
    out["action"] = {"primary_action": action.get("primary_action")} if action else None
    return out


__all__ = ["build_report", "issue_codes", "tally", "thumbnail", "verdict_of", "write_report"]
