"""No-reference IQA scores on scikit-image photos under graded distortions.

The measurements behind technical_quality's thresholds (see each Config field's
description). Run: ``python benchmarks/iqa_levels.py [--photos astronaut coffee]``;
writes ``benchmarks/results/iqa_levels.md``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imagejury.models.quality import create_scorer  # noqa: E402
from tests.support import photos  # noqa: E402

log = logging.getLogger("iqa_levels")
KINDS = {
    "blur σ": photos.BLUR_SIGMAS,
    "noise σ": photos.NOISE_SIGMAS,
    "JPEG q": photos.JPEG_QUALITIES,
    "exposure ×": photos.EXPOSURE_FACTORS,
}
KIND_KEY = {"blur σ": "blur", "noise σ": "noise", "JPEG q": "jpeg", "exposure ×": "exposure"}
SIGNALS = ("edge_sharpness", "noise_sigma", "blockiness", "bright_fraction")


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}"


def measure(names: list[str]) -> list[str]:
    scorers = {n: create_scorer(n) for n in ("brisque_pypi", "niqe", "piqe", "signals")}
    lines = [
        "| photo | distortion (levels) | brisque_pypi ↓ | NIQE ↓ | PIQE ↓ | " + " | ".join(SIGNALS) + " |",
        "|---|---|---|---|---|" + "---|" * len(SIGNALS),
    ]
    for name in names:
        img = photos.photo(name)
        for kind, levels in KINDS.items():
            imgs = photos.graded(img, KIND_KEY[kind])
            cells = []
            for n in ("brisque_pypi", "niqe", "piqe"):
                cells.append("/".join(f"{s.value:.1f}" for s in scorers[n].score(imgs)))
            sig = scorers["signals"].score(imgs)
            for f in SIGNALS:
                cells.append("/".join(_fmt(getattr(s.details["report"], f)) for s in sig))
            lines.append(f"| {name} | {kind} {'/'.join(f'{v:g}' for v in levels)} | " + " | ".join(cells) + " |")
            log.info("%s %s done", name, kind)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--photos", nargs="+", default=list(photos.PHOTO_NAMES))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "iqa_levels.md"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO)
    table = measure(args.photos)
    text = (
        "# IQA scores under graded distortions\n\nCommand: `python benchmarks/iqa_levels.py`\n\n"
        + "\n".join(table)
        + "\n"
    )
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
