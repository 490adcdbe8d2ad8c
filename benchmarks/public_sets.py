"""Loaders for public human-judgement sets, for when the user has the files locally.

Nothing is downloaded: each loader reads files the user already has and checks their
columns, failing with a message that names the file, what it expected and where the
set comes from. Each yields ``Judged`` rows: an image path, its prompt, and a human score
(higher = better) or a binary label.

| set | file | source |
|---|---|---|
| TIFA v1.0 | ``human_annotations_with_scores.json`` (+ the 800 images) | github.com/Yushi-Hu/tifa, ``human_annotations/`` |
| TIFA160 Likert | ``tifa160-likert-anns.csv`` (+ images) | github.com/j-min/DSG, ``data/`` |
| SeeTRUE | ``SeeTRUE`` CSVs with ``image, text, label`` | Yarom et al. 2023, "What You See is What You Read?" |
| AGIQA-3K | ``data.csv`` with ``name, prompt, mos_quality, mos_align`` | Li et al. 2023, AGIQA-3K |

Published reference points (for the tables): on TIFA v1.0, CLIPScore ViT-B/32 reaches
Spearman ρ ≈ 0.33 with the human average (Hu et al. 2023, Table 3) — and the TIFA file
carries those CLIPScores itself (``clipscore_vitb32``), so ``tifa_reference_correlation``
reproduces the published figure from the file alone, without images or models.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


class DatasetFormatError(ValueError):
    """A local dataset file is missing or not in the documented format."""


@dataclass
class Judged:
    item_id: str
    image: Path
    prompt: str
    human: float  # human score (higher is better) or label 0/1
    extra: dict = field(default_factory=dict)


def _need_file(path: Path, what: str, source: str) -> Path:
    if not path.is_file():
        raise DatasetFormatError(f"{what} not found at {path}; get it from {source} (nothing is downloaded)")
    return path


def _need_columns(header: list[str] | None, needed: set[str], path: Path) -> None:
    missing = needed - set(header or [])
    if missing:
        raise DatasetFormatError(f"{path}: missing column(s) {sorted(missing)}; found {header}")


def load_tifa_v1(annotations: Path, image_dir: Path) -> Iterator[Judged]:
    """TIFA v1.0: 800 images × (text, 2 human Likert scores, published metric scores)."""
    path = _need_file(Path(annotations), "TIFA v1.0 human_annotations_with_scores.json", "github.com/Yushi-Hu/tifa")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetFormatError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise DatasetFormatError(f"{path}: expected an object keyed by image id")
    for key, row in data.items():
        for need in ("image_path", "text", "human_avg"):
            if need not in row:
                raise DatasetFormatError(f"{path}: entry '{key}' lacks '{need}'")
        yield Judged(
            item_id=key,
            image=Path(image_dir) / row["image_path"],
            prompt=row["text"],
            human=float(row["human_avg"]),
            extra={k: v for k, v in row.items() if k not in ("image_path", "text", "human_avg", "human_scores")},
        )


def load_tifa160_likert(annotations: Path, image_dir: Path, prompts: dict[str, str] | None = None) -> Iterator[Judged]:
    """TIFA160 Likert (DSG repo): one row per (t2i_model, item_id, worker); averaged per image.

    Images are looked up as ``{item_id}_{t2i_model}.*`` or ``{t2i_model}/{item_id}.*`` in
    ``image_dir``; ``prompts`` maps item_id → text when the CSV has no ``text`` column.
    """
    path = _need_file(Path(annotations), "tifa160-likert-anns.csv", "github.com/j-min/DSG")
    scores: dict[tuple[str, str], list[float]] = defaultdict(list)
    texts: dict[str, str] = dict(prompts or {})
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        _need_columns(reader.fieldnames, {"t2i_model", "item_id"}, path)
        score_col = next((c for c in ("answer", "likert", "score", "rating") if c in (reader.fieldnames or [])), None)
        if score_col is None:
            raise DatasetFormatError(f"{path}: no score column (answer/likert/score/rating) in {reader.fieldnames}")
        for row in reader:
            try:
                scores[(row["t2i_model"], row["item_id"])].append(float(row[score_col]))
            except ValueError:
                continue  # blank or non-numeric answers are not votes
            if row.get("text"):
                texts.setdefault(row["item_id"], row["text"])
    for (model, item), votes in sorted(scores.items()):
        if item not in texts:
            raise DatasetFormatError(f"{path}: no prompt text for item '{item}' (pass prompts=...)")
        image = _find_image(Path(image_dir), [f"{item}_{model}", f"{model}/{item}"])
        yield Judged(f"{item}_{model}", image, texts[item], sum(votes) / len(votes), {"t2i_model": model})


def load_seetrue(csv_path: Path, image_dir: Path) -> Iterator[Judged]:
    """SeeTRUE: binary text–image alignment labels (1 aligned, 0 not)."""
    path = _need_file(Path(csv_path), "SeeTRUE CSV", "Yarom et al. 2023 (SeeTRUE)")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        _need_columns(reader.fieldnames, {"image", "text", "label"}, path)
        for n, row in enumerate(reader):
            yield Judged(f"{path.stem}-{n}", Path(image_dir) / row["image"], row["text"], float(row["label"]))


def load_agiqa3k(csv_path: Path, image_dir: Path, target: str = "mos_align") -> Iterator[Judged]:
    """AGIQA-3K: 2,982 AI-generated images with quality and alignment MOS."""
    if target not in ("mos_align", "mos_quality"):
        raise ValueError("target must be mos_align or mos_quality")
    path = _need_file(Path(csv_path), "AGIQA-3K data.csv", "Li et al. 2023 (AGIQA-3K)")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        _need_columns(reader.fieldnames, {"name", "prompt", target}, path)
        for row in reader:
            yield Judged(
                row["name"],
                Path(image_dir) / row["name"],
                row["prompt"],
                float(row[target]),
                {k: row[k] for k in ("mos_quality", "mos_align") if k in row},
            )


def _find_image(root: Path, stems: list[str]) -> Path:
    for stem in stems:
        for ext in (".jpg", ".jpeg", ".png", ".webp"):
            p = root / f"{stem}{ext}"
            if p.is_file():
                return p
    return root / f"{stems[0]}.jpg"  # reported missing when read


def spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    if len(a) != len(b) or len(a) < 3:
        raise ValueError("spearman needs two equal-length lists of at least 3 values")
    return float(spearmanr(a, b).statistic)


def tifa_reference_correlation(annotations: Path, metric: str = "clipscore_vitb32") -> tuple[int, float]:
    """Spearman ρ between TIFA's human average and a metric stored in the file itself."""
    rows = [r for r in load_tifa_v1(annotations, Path(".")) if metric in r.extra]
    if not rows:
        raise DatasetFormatError(f"{annotations}: no '{metric}' scores in the file")
    return len(rows), spearman([r.human for r in rows], [float(r.extra[metric]) for r in rows])
