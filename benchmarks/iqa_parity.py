"""Parity of imagejury's NSS measures with the reference implementations' published scores.

Reads a folder laid out like ``../shared/reference/iqa-calibration``: images plus
``official_scores.csv`` (first column the method, then one column per image file).
Prints, per measure: our score and the reference on each image, the largest absolute
difference and Spearman's rank correlation. ``brisque_pypi`` is compared with the
authors' BRISQUE for rank agreement only (its SVR is the brisque package's, not LIVE's).

Run: ``python benchmarks/iqa_parity.py --data DIR`` (research data: not shipped).
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from imagejury.models.quality import create_scorer  # noqa: E402

log = logging.getLogger("iqa_parity")
# our scorer -> the reference row it must match, and whether parity (within 0.5) is claimed
PAIRS = (("niqe", "niqe", True), ("piqe", "piqe", True), ("brisque_pypi", "brisque", False))
TOLERANCE = 0.5


def read_reference(folder: Path) -> tuple[list[str], dict[str, list[float]]]:
    with open(folder / "official_scores.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    names = rows[0][1:]
    table = {}
    for row in rows[1:]:
        try:
            table[row[0]] = [float(v) for v in row[1:]]
        except ValueError:
            log.debug("skipping non-numeric row %s", row[0])
    return names, table


def parity_table(folder: Path) -> list[str]:
    names, ref = read_reference(folder)
    images = [Image.open(folder / n).convert("RGB") for n in names]
    lines = [
        "| measure | reference row | "
        + " | ".join(f"{n} ours / ref" for n in names)
        + " | max abs diff | Spearman | verdict |",
        "|---|---|" + "---|" * len(names) + "---|---|---|",
    ]
    for ours, row, parity in PAIRS:
        if row not in ref:
            log.warning("no '%s' row in the reference file", row)
            continue
        values = [s.value for s in create_scorer(ours).score(images)]
        diffs = [abs(a - b) for a, b in zip(values, ref[row])]
        rho = float(spearmanr(values, ref[row]).statistic)
        if parity:
            verdict = "parity (every image within 0.5)" if max(diffs) <= TOLERANCE else "NOT within 0.5"
        else:
            verdict = "different model: rank agreement only"
        cells = " | ".join(f"{a:.2f} / {b:.2f}" for a, b in zip(values, ref[row]))
        lines.append(f"| {ours} | {row} | {cells} | {max(diffs):.2f} | {rho:.2f} | {verdict} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="folder with the images and official_scores.csv")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO)
    print("\n".join(parity_table(Path(args.data))))


if __name__ == "__main__":
    main()
