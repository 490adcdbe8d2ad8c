"""The batch summary never reads a skipped check as a pass: counts, a banner, the how-to once."""

from __future__ import annotations

from imagejury.batch.progress import BatchStats, render_summary

HOW = "model 'ViT-L-14:openai' is not available: looked in X. To supply it: Y"


def _row(passed: bool, judges_passed: bool = True, skipped: bool = True) -> dict:
    skipped_checks = [
        {"judge": j, "reason": "model ViT-L-14:openai not available", "detail": "see", "model": "ViT-L-14:openai"}
        for j in ("safety", "prompt_adherence")
    ]
    return {
        "status": "completed",
        "overall_passed": passed,
        "judges": [{"name": "technical_signals", "passed": judges_passed, "issues": []}],
        "gate_failures": [],
        "check_summary": {
            "incomplete": skipped,
            "skipped_checks": skipped_checks if skipped else [],
            "missing_models": [{"model": "ViT-L-14:openai", "judges": ["safety", "prompt_adherence"], "how_to": HOW}]
            if skipped
            else [],
        },
    }


def test_rows_with_skipped_checks_are_counted_incomplete_not_passed():
    stats = BatchStats()
    stats.add_many([_row(True) for _ in range(40)])
    text = render_summary(stats)
    assert stats.passed == 0 and stats.incomplete == 40 and stats.pass_rate == 0.0
    assert text.startswith("INCOMPLETE")
    assert "safety and prompt_adherence skipped on all 40 rows: model ViT-L-14:openai not available" in text
    assert text.count("To supply it") == 1
    assert "pass rate 100" not in text


def test_a_failing_row_stays_failed_and_a_complete_pass_stays_passed():
    stats = BatchStats()
    stats.add_many([_row(False, judges_passed=False), _row(True, skipped=False), _row(True)])
    assert (stats.passed, stats.incomplete, stats.completed) == (1, 1, 3)
    text = render_summary(stats)
    assert "passed 1  failed 1  incomplete 1" in text
    assert "skipped on 2 of 3 rows" in text


def test_unknown_values_are_warned_once_and_counted(caplog):
    stats = BatchStats()
    row = _row(True, skipped=False)
    message = "unknown task_type 'headsot': treated as 'image_generation'; did you mean 'headshot'?"
    row["check_summary"]["input_issues"] = [{"field": "task_type", "value": "headsot", "message": message}]
    with caplog.at_level("WARNING"):
        stats.add_many([row, row, row])
    assert sum(message in r.getMessage() for r in caplog.records) == 1
    assert f"warning (3 rows)     : {message}" in render_summary(stats)
