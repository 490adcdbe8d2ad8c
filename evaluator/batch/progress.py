"""Where a batch is: running tallies, a live progress bar, and the final summary.

``BatchStats`` counts what the result records say (it never looks at images), so the
local and Ray engines report the same way. ``BatchProgress`` draws a rich live bar on a
terminal (rows done, pass rate so far, images/s, ETA) and falls back to a log line every
``log_every_s`` seconds when stderr is not a terminal (CI logs, nohup).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class BatchStats:
    """Tallies over the records written in this run (plus those found from earlier runs)."""

    total: int | None = None  # rows in the input, when known
    already_done: int = 0  # skipped: their ids were in the output already
    duplicates: int = 0  # skipped: same row id earlier in this input
    completed: int = 0
    passed: int = 0
    failed_rows: Counter = field(default_factory=Counter)  # failure_code -> n (rows that could not be evaluated)
    rejected: int = 0  # invalid requests / unreadable rows
    issues: Counter = field(default_factory=Counter)  # "category/subcategory" -> n
    images: int = 0  # evaluated images (completed + failed rows whose image was decoded)
    # rows where every check that ran passed but an applicable one was skipped: no verdict
    # to trust, so neither passed nor failed (the CLI's INCOMPLETE)
    incomplete: int = 0
    # skipped checks: reason -> rows, and reason -> the judges it stopped
    skipped_rows: Counter = field(default_factory=Counter)
    skipped_judges: dict[str, list[str]] = field(default_factory=dict)
    missing_model_how_to: dict[str, str] = field(default_factory=dict)  # model -> how to supply it (once)
    input_issues: Counter = field(default_factory=Counter)  # "unknown task_type 'x' ..." -> rows
    started: float = field(default_factory=time.perf_counter)

    def add(self, record: Mapping[str, Any]) -> None:
        status = record.get("status")
        if status == "completed":
            self.completed += 1
            self.images += 1
            summary = record.get("check_summary") or {}
            if is_incomplete(record):
                self.incomplete += 1
            elif record.get("overall_passed"):
                self.passed += 1
            self._add_skipped(summary)
            for judge in record.get("judges") or []:
                for issue in judge.get("issues") or []:
                    self.issues[f"{issue.get('category')}/{issue.get('subcategory')}"] += 1
        elif status == "rejected":
            self.rejected += 1
        else:
            self.failed_rows[str(record.get("failure_code") or "unknown")] += 1

    def _add_skipped(self, summary: Mapping[str, Any]) -> None:
        reasons: dict[str, list[str]] = {}
        for skipped in summary.get("skipped_checks") or []:
            reasons.setdefault(str(skipped.get("reason")), []).append(str(skipped.get("judge")))
        for reason, judges in reasons.items():
            self.skipped_rows[reason] += 1
            known = self.skipped_judges.setdefault(reason, [])
            known += [j for j in judges if j not in known]
        for missing in summary.get("missing_models") or []:
            if missing.get("model") and missing.get("how_to"):
                self.missing_model_how_to.setdefault(str(missing["model"]), str(missing["how_to"]))
        for issue in summary.get("input_issues") or []:
            message = str(issue.get("message"))
            if message not in self.input_issues:  # warned once per distinct value, counted in the summary
                log.warning("%s (set [evaluation] strict = true to refuse such rows)", message)
            self.input_issues[message] += 1

    def add_many(self, records: Iterable[Mapping[str, Any]]) -> None:
        for r in records:
            self.add(r)

    @property
    def done(self) -> int:
        """Rows written in this run."""
        return self.completed + self.rejected + sum(self.failed_rows.values())

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.completed if self.completed else None

    @property
    def elapsed(self) -> float:
        return max(1e-9, time.perf_counter() - self.started)

    @property
    def rows_per_s(self) -> float:
        return self.done / self.elapsed

    @property
    def remaining(self) -> int | None:
        if self.total is None:
            return None
        return max(0, self.total - self.done - self.already_done - self.duplicates)

    @property
    def eta_s(self) -> float | None:
        rem = self.remaining
        if rem is None or self.done == 0:
            return None
        return rem / self.rows_per_s

    def as_dict(self, judge_seconds: Mapping[str, float] | None = None) -> dict[str, Any]:
        return {
            "rows_written": self.done,
            "already_done": self.already_done,
            "duplicates_skipped": self.duplicates,
            "completed": self.completed,
            "passed": self.passed,
            "incomplete": self.incomplete,
            "pass_rate": self.pass_rate,
            "skipped_checks": [
                {"judges": self.skipped_judges[reason], "reason": reason, "rows": n}
                for reason, n in self.skipped_rows.most_common()
            ],
            "failed_rows": dict(self.failed_rows),
            "rejected": self.rejected,
            "elapsed_s": round(self.elapsed, 3),
            "rows_per_s": round(self.rows_per_s, 3),
            "top_issues": self.issues.most_common(10),
            "judge_seconds": dict(judge_seconds or {}),
        }


def is_incomplete(record: Mapping[str, Any]) -> bool:
    """A completed row with a skipped applicable check and nothing that failed among the
    checks that ran: it has no verdict to trust (never counted as a pass)."""
    summary = record.get("check_summary") or {}
    if not summary.get("incomplete"):
        return False
    failed = bool(record.get("gate_failures")) or any(not j.get("passed") for j in record.get("judges") or [])
    return bool(record.get("overall_passed")) or not failed


def _and_list(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def skipped_banner(stats: BatchStats) -> list[str]:
    """One line per cause: "safety and prompt_adherence skipped on all 40 rows: model
    ViT-L-14:openai not available", then the how-to once per missing model."""
    lines = []
    for reason, n in stats.skipped_rows.most_common():
        scope = f"all {n}" if n == stats.completed else f"{n} of {stats.completed}"
        lines.append(f"{_and_list(stats.skipped_judges[reason])} skipped on {scope} rows: {reason}")
    for model, how in stats.missing_model_how_to.items():
        lines.append(f"how to supply {model}: {how} (see `imagejury models`)")
    return lines


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def status_line(stats: BatchStats) -> str:
    total = "?" if stats.total is None else str(stats.total)
    rate = "-" if stats.pass_rate is None else f"{stats.pass_rate:.1%}"
    failed = sum(stats.failed_rows.values()) + stats.rejected
    incomplete = f"  incomplete {stats.incomplete}" if stats.incomplete else ""
    return (
        f"{stats.done + stats.already_done}/{total} rows  pass {rate}{incomplete}  failed rows {failed}  "
        f"{stats.rows_per_s:.2f} img/s  ETA {_fmt_eta(stats.eta_s)}"
    )


class BatchProgress:
    """A live bar on a terminal; periodic log lines otherwise; nothing when disabled."""

    def __init__(self, stats: BatchStats, *, enabled: bool = True, log_every_s: float = 30.0) -> None:
        self.stats = stats
        self.enabled = enabled
        self.log_every_s = log_every_s
        self._last_log = time.perf_counter()
        self._live: Any = None
        self._progress: Any = None
        self._task: Any = None
        self._lock = threading.Lock()

    def __enter__(self) -> BatchProgress:
        if not self.enabled:
            return self
        from rich.console import Console

        console = Console(stderr=True)
        if console.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]batch"),
                BarColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=console,
                refresh_per_second=4,
            )
            self._task = self._progress.add_task(status_line(self.stats), total=self.stats.total)
            self._progress.start()
        return self

    def update(self) -> None:
        with self._lock:
            if self._progress is not None:
                self._progress.update(
                    self._task,
                    completed=self.stats.done + self.stats.already_done + self.stats.duplicates,
                    total=self.stats.total,
                    description=status_line(self.stats),
                )
            elif self.enabled and time.perf_counter() - self._last_log >= self.log_every_s:
                self._last_log = time.perf_counter()
                log.warning("progress: %s", status_line(self.stats))

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self.update()
            self._progress.stop()


def render_summary(stats: BatchStats, judge_seconds: Mapping[str, float] | None = None, *, top: int = 8) -> str:
    """The end-of-run summary: counts, pass rate, top issues, slowest judges."""
    lines = ["batch summary"]
    lines.append(f"  rows written this run : {stats.done}  ({stats.rows_per_s:.2f} rows/s over {stats.elapsed:.1f} s)")
    if stats.already_done:
        lines.append(f"  already in the output : {stats.already_done} (skipped)")
    if stats.duplicates:
        lines.append(f"  duplicate row ids     : {stats.duplicates} (skipped)")
    banner = skipped_banner(stats)
    if banner:
        lines.insert(0, "INCOMPLETE: some checks did not run")
        lines[1:1] = [f"  {line}" for line in banner]
    rate = "-" if stats.pass_rate is None else f"{stats.pass_rate:.1%}"
    failed = stats.completed - stats.passed - stats.incomplete
    incomplete = f"  incomplete {stats.incomplete}" if stats.incomplete else ""
    lines.append(
        f"  evaluated             : {stats.completed}  passed {stats.passed}  failed {failed}{incomplete}  pass rate {rate}"
    )
    if stats.incomplete:
        lines.append(
            f"  incomplete rows       : {stats.incomplete} passed the checks that ran, but a check was skipped"
        )
    for message, n in stats.input_issues.most_common(top):
        lines.append(f"  warning ({n} rows)     : {message}")
    for code, n in sorted(stats.failed_rows.items()):
        lines.append(f"  not evaluated ({code}) : {n}")
    if stats.rejected:
        lines.append(f"  invalid requests      : {stats.rejected}")
    if stats.issues:
        lines.append("  top issues:")
        for name, n in stats.issues.most_common(top):
            lines.append(f"    {n:>7}  {name}")
    if judge_seconds:
        lines.append("  slowest judges (total seconds, share):")
        total = sum(judge_seconds.values()) or 1.0
        for name, secs in sorted(judge_seconds.items(), key=lambda kv: -kv[1])[:top]:
            lines.append(f"    {secs:>9.2f} s  {secs / total:>6.1%}  {name}")
    return "\n".join(lines)


__all__ = ["BatchProgress", "BatchStats", "is_incomplete", "render_summary", "skipped_banner", "status_line"]
