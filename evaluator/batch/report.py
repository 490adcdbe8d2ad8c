"""A self-contained HTML report of a batch's results: one file, no network, opens anywhere.

What it holds: headline counts; a chart per judge of how its votes are spread; a grid of
thumbnails (small JPEGs embedded as base64) with a verdict badge each; filters by
verdict and by issue; and, per image, every judge's vote, confidence, reasoning and
issues; a banner naming the checks that were skipped (and on how many rows). The page
is a Jinja2 template (``templates/report.html``, autoescaped: text from the records can
never become markup or template syntax); charts are inline SVG drawn here, filters a few
lines of plain JavaScript (no CDN, no framework), so the file works offline and in a
mail attachment. Rows whose checks were skipped are "incomplete", never a green pass.

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
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from PIL import Image

from imagejury.batch.engine import ResultsFile
from imagejury.core.intake.media import classify_source

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).with_name("templates")
TEMPLATE_NAME = "report.html"
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
    """pass | fail | incomplete | error (the row could not be evaluated).

    ``incomplete``: the verdict came out passing but some checks were skipped (a model
    not here, ``--allow-missing-models``) — never shown as a plain pass. A failing
    verdict stays ``fail`` whatever was skipped: the checks that ran failed it."""
    if rec.get("status") != "completed":
        return "error"
    if not rec.get("overall_passed"):
        return "fail"
    return "incomplete" if is_incomplete(rec) else "pass"


def is_incomplete(rec: dict[str, Any]) -> bool:
    """``check_summary.incomplete`` when the record has it; older records: any skipped check."""
    summary = rec.get("check_summary") or {}
    flag = summary.get("incomplete")
    if isinstance(flag, bool):
        return flag
    return bool(summary.get("skipped_checks"))


def skip_cause(entry: dict[str, Any]) -> str:
    """Why a check was skipped, in a few words: the model when the record names it
    (``skipped_checks[].model``), else the recorded reason."""
    model = entry.get("model")
    if isinstance(model, str) and model:
        return f"model {model} not available"
    return str(entry.get("reason") or entry.get("detail") or "no reason recorded")


def skipped_lines(skips: Counter, evaluated: int) -> list[str]:
    """The banner: one line per cause and row count, its judges named together —
    "safety and prompt_adherence skipped on all 40 rows: model ViT-L-14:openai not available"."""
    groups: dict[tuple[str, int], list[str]] = defaultdict(list)
    for (judge, cause), n in skips.items():
        groups[(cause, n)].append(judge)
    lines = []
    for (cause, n), judges in sorted(groups.items(), key=lambda kv: (-kv[0][1], kv[0][0])):
        names = sorted(judges)
        who = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        where = f"all {n} rows" if n == evaluated else f"{n} of {evaluated} evaluated rows"
        lines.append(f"{who} skipped on {where}: {cause}")
    return lines


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
        if not path.is_file():  # a named pipe would block open() forever; a device is no image
            return None
        with Image.open(path) as opened:
            opened.draft("RGB", (px, px))
            img = opened.convert("RGB")
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


def card_view(rec: dict[str, Any], thumb: str | None) -> dict[str, Any]:
    """What the template shows of one record (plain values: the template escapes them)."""
    verdict = verdict_of(rec)
    label = str(
        rec.get("client_ref")
        or rec.get("generated_image_url")
        or (rec.get("links") or {}).get("batch_row")
        or rec.get("id")
    )
    skipped = [
        {"judge": str(s.get("judge")), "cause": skip_cause(s)}
        for s in (rec.get("check_summary") or {}).get("skipped_checks") or []
    ]
    rate = rec.get("weighted_pass_rate")
    action = rec.get("action") or {}
    return {
        "id": str(rec.get("id")),
        "verdict": verdict,
        "badge": BADGES[verdict],
        "badge_title": "skipped: " + ", ".join(s["judge"] for s in skipped) if verdict == "incomplete" else "",
        "issues": "|".join(issue_codes(rec)),
        "label": label,
        "thumb": thumb,
        "rate": f"{rate:.2f}" if isinstance(rate, (int, float)) and verdict != "error" else "",
        "failure_code": str(rec.get("failure_code")),
        "failure_message": str(rec.get("failure_message") or ""),
        "override": str(rec.get("override_reason") or ""),
        "action": str(action.get("primary_action") or ""),
        "judges": [
            {
                "name": str(j.get("name")),
                "passed": bool(j.get("passed")),
                "confidence": float(j.get("confidence") or 0),
                "weight": f"{float(j.get('weight') or 0):g}",
                "reasoning": str(j.get("reasoning") or ""),
                "issues": [f"{i.get('subcategory')}: {i.get('detail')}" for i in j.get("issues") or []],
            }
            for j in rec.get("judges") or []
        ],
        "skipped": skipped,
    }


BADGES = {"pass": "PASS", "fail": "FAIL", "incomplete": "INCOMPLETE", "error": "NOT EVALUATED"}


@dataclass
class Tally:
    """Counts over every record (the grid may show fewer)."""

    dists: dict[str, JudgeDist] = field(default_factory=lambda: defaultdict(JudgeDist))
    counts: Counter = field(default_factory=Counter)  # verdict -> rows
    issues: Counter = field(default_factory=Counter)  # issue code -> rows
    skips: Counter = field(default_factory=Counter)  # (judge, cause) -> rows

    def add(self, rec: dict[str, Any]) -> None:
        self.counts[verdict_of(rec)] += 1
        self.issues.update(issue_codes(rec))
        for j in rec.get("judges") or []:
            self.dists[str(j.get("name"))].add(bool(j.get("passed")), float(j.get("confidence") or 0.5))
        if rec.get("status") == "completed":
            for entry in (rec.get("check_summary") or {}).get("skipped_checks") or []:
                self.skips[(str(entry.get("judge")), skip_cause(entry))] += 1


def build_report(
    records: list[dict[str, Any]],
    *,
    base_dir: Path | None,
    limit: int = 5000,
    title: str = "imagejury batch report",
    total_records: int | None = None,
    totals: Tally | None = None,
    template: str = TEMPLATE_NAME,
) -> str:
    """The report's HTML for ``records`` (the grid); counts, charts and the skipped-checks
    banner from ``totals`` when given (all records), else from ``records``.

    ``template``: a template in ``templates/`` — one that extends ``report.html`` can fill
    its blocks (``card_actions``, ``toolbar``, ``page_scripts``, ``head_extra``)."""
    if totals is None:
        totals = tally(records)
    shown = records[:limit]
    with ThreadPoolExecutor(max_workers=4) as pool:
        thumbs = list(pool.map(lambda r: thumbnail(r.get("generated_image_url"), base_dir), shown))
    counts = totals.counts
    evaluated = counts["pass"] + counts["fail"] + counts["incomplete"]
    page = (
        _environment()
        .get_template(template)
        .render(
            title=title,
            generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            total=total_records if total_records is not None else len(records),
            shown=len(shown),
            counts={k: counts[k] for k in BADGES},
            pass_rate=f"{counts['pass'] / evaluated:.1%}" if evaluated else "-",
            skipped_lines=skipped_lines(totals.skips, evaluated),
            charts=[Markup(_svg_chart(name, d)) for name, d in sorted(totals.dists.items())],
            top_issues=totals.issues.most_common(8),
            issue_options=totals.issues.most_common(),
            cards=[card_view(r, t) for r, t in zip(shown, thumbs)],
        )
    )
    return page


@lru_cache(maxsize=1)
def _environment() -> Environment:
    # autoescape on for everything: the template is HTML and every value comes from user data
    return Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
    )


def tally(records: Any) -> Tally:
    totals = Tally()
    for rec in records:
        totals.add(rec)
    return totals


def write_report(results: str | Path, report: str | Path, *, base_dir: Path | None = None, limit: int = 5000) -> int:
    """Write the report of a results JSONL; returns how many evaluations it covers.

    Streams the file once: tallies see every record, the grid keeps the first ``limit``.
    An id seen twice (only after hand edits: the engine writes each row once) counts once.
    """
    seen: set[str] = set()
    shown: list[dict[str, Any]] = []
    totals = Tally()
    for rec in ResultsFile(results).records():
        rid = str(rec["id"])
        if rid in seen:
            continue
        seen.add(rid)
        totals.add(rec)
        if len(shown) < limit:
            shown.append(_slim(rec))
    page = build_report(shown, base_dir=base_dir, limit=limit, total_records=len(seen), totals=totals)
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
    summary: dict[str, Any] = {"skipped_checks": cs.get("skipped_checks") or []}
    if isinstance(cs.get("incomplete"), bool):
        summary["incomplete"] = cs["incomplete"]
    out["check_summary"] = summary
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


__all__ = [
    "Tally",
    "build_report",
    "card_view",
    "is_incomplete",
    "issue_codes",
    "skip_cause",
    "skipped_lines",
    "tally",
    "thumbnail",
    "verdict_of",
    "write_report",
]
