"""Helpers shared by the batch tests (no tests here): generated images, manifests, verdicts."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tests.support.shapes import CLASSES, caption, render

REPO = Path(__file__).resolve().parents[1]
TINY_CLIP = REPO / "tests" / "assets" / "tiny_shapes_clip"


def model_flags() -> list[str]:
    """Offline and quick: missing models are skipped; the tiny shapes CLIP when it is built."""
    flags = ["--allow-missing-models", "--threads", "1"]
    if (TINY_CLIP / "open_clip_config.json").is_file():
        flags += ["--clip", f"local-dir:{TINY_CLIP}"]
    return flags


def make_images(folder: Path, n: int, seed: int = 0, big_every: int = 4, prefix: str = "") -> list[dict[str, Any]]:
    """``n`` shape images as JPEG under ``folder``; every ``big_every``-th one 256 px (the
    others 64 px, which the resolution check fails), so verdicts come out mixed.
    Returns request rows with paths relative to ``folder``'s parent."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        color, shape = CLASSES[int(rng.integers(len(CLASSES)))]
        size = 256 if big_every and i % big_every == 0 else 64
        name = f"{prefix}{i:04d}.jpg"
        render(color, shape, rng, size=size).save(folder / name, quality=90)
        rows.append(
            {
                "generated_image_url": f"{folder.name}/{name}",
                "task_type": "image_generation",
                "generation_prompt": caption(color, shape),
                "job_class": "quick",
            }
        )
    return rows


def corrupt_and_missing(folder: Path) -> list[dict[str, Any]]:
    """Rows whose image is corrupt, truncated, not an image, or absent."""
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00garbage" * 20)
    good = next(folder.glob("*.jpg")).read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (folder / "text.png").write_text("not a png at all")
    names = ["corrupt.jpg", "truncated.jpg", "text.png", "does_not_exist.jpg"]
    return [
        {"generated_image_url": f"{folder.name}/{n}", "task_type": "image_generation", "client_ref": f"bad-{n}"}
        for n in names
    ]


def write_jsonl(path: Path, rows: list[dict[str, Any]], extra_lines: list[str] = ()) -> Path:
    lines = [json.dumps(r) for r in rows] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def verdicts(path: Path) -> dict[str, tuple]:
    """id -> what must not change between runs: status, code, verdict, rate, each judge's vote."""
    out = {}
    for r in records(path):
        assert r["id"] not in out, f"row {r['id']} written twice"
        out[r["id"]] = (
            r.get("status"),
            r.get("failure_code"),
            r.get("overall_passed"),
            None if r.get("weighted_pass_rate") is None else round(r["weighted_pass_rate"], 4),
            tuple((j["name"], j["passed"]) for j in r.get("judges") or []),
        )
    return out


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    )
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "imagejury.cli", "batch", *args]
