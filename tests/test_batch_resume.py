"""Proof: a few hundred generated images, the CLI killed part-way with SIGKILL, resumed —
every row exactly once, the same results as a run that was never interrupted, and the
corrupt files and missing paths as failed rows."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.test_batch_support import (
    REPO,
    cli_command,
    cli_env,
    corrupt_and_missing,
    make_images,
    model_flags,
    records,
    verdicts,
    write_jsonl,
)

N_IMAGES = 300


def _count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_killed_batch_resumes_to_the_same_results(tmp_path: Path) -> None:
    rows = make_images(tmp_path / "img", N_IMAGES, seed=7)
    rows += corrupt_and_missing(tmp_path / "img")
    manifest = write_jsonl(tmp_path / "m.jsonl", rows, ["{this line is not json"])
    total = len(rows) + 1
    args = ["--no-progress", "--batch-size", "8", "--workers", "2", *model_flags()]

    # the reference: one uninterrupted run
    ref = tmp_path / "ref.jsonl"
    done = subprocess.run(
        cli_command(str(manifest), "-o", str(ref), *args),
        env=cli_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(records(ref)) == total

    # the same command, killed once some batches are written
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        cli_command(str(manifest), "-o", str(out), *args),
        env=cli_env(),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while _count_lines(out) < 24 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    written = _count_lines(out)
    assert 24 <= written < total, f"the kill should land part-way ({written} of {total} rows written)"
    # a kill can tear the last line; make sure one is torn so the repair is exercised too
    with out.open("ab") as fh:
        fh.write(b'{"id": "torn-by-the-test", "status": "compl')

    resumed = subprocess.run(
        cli_command(str(manifest), "-o", str(out), *args),
        env=cli_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "partial line" in resumed.stderr
    assert f"already in the output : {written}" in resumed.stderr

    got, want = verdicts(out), verdicts(ref)  # verdicts() also asserts each id appears once
    assert len(got) == total
    assert got == want

    by_ref = {r.get("client_ref"): r for r in records(out)}
    for name in ("corrupt.jpg", "truncated.jpg", "text.png", "does_not_exist.jpg"):
        rec = by_ref[f"bad-{name}"]
        assert rec["status"] == "failed" and rec["failure_code"] == "invalid_media", rec
    statuses = [r["status"] for r in records(out)]
    assert statuses.count("completed") == N_IMAGES and statuses.count("rejected") == 1
    verdict_values = {r["overall_passed"] for r in records(out) if r["status"] == "completed"}
    assert verdict_values == {True, False}, "the generated set should give both verdicts"
