"""Soak: does memory stay flat over hundreds of evaluations while a model is missing?

A missing model is the normal offline state (no CLIP weights in the cache). Before the
fix, the model registry cached one ``ModelUnavailableError`` and re-raised that same
instance for every batch; each raise chained the batch's frames onto its traceback, so
every batch's decoded images and feature cache stayed alive: RSS grew by the size of
each round's images, for good.

Method: the Evaluator with the default judges, offline, with a CLIP that is not on this
machine (``--clip ViT-L-14:openai`` with ``HF_HUB_OFFLINE=1``; any source that is missing
works). Every round evaluates ``--per-round`` fresh PNGs (512² by default); the process's resident
set size is printed after each round (after ``gc.collect()``).

- ``library``: ``Evaluator.evaluate_many`` on the requests of the round.
- ``batch``: ``LocalBatch`` (the engine behind ``imagejury batch``) over a manifest of the
  round's images into a new results file, in the same process.

Both run with and without ``allow_missing_models`` (skipped checks vs failed rows).
Nothing is asserted (tests never assert on memory); read the table: a flat RSS column
after round 1 is the pass, a column that climbs by roughly the round's image bytes is
the leak.

    .venv/bin/python benchmarks/soak_missing_model.py --rounds 8 --per-round 25

Prints one Markdown table per mode.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from benchmarks.machine import markdown, rss_mib  # noqa: E402

log = logging.getLogger("soak_missing_model")


def make_images(folder: Path, n: int, size: int, seed: int) -> list[str]:
    """``n`` noisy PNGs (noise: no codec shortcut makes them small in memory or on disk)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = []
    for i in range(n):
        arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        name = f"r{seed}_{i:04d}.png"
        Image.fromarray(arr).save(folder / name, compress_level=1)
        names.append(name)
    return names


def config(clip: str, allow_missing: bool):
    from imagejury.core.config import EvaluatorConfig

    cfg = EvaluatorConfig().with_overrides(clip=clip, torch_threads=2)
    return cfg.model_copy(
        update={"evaluation": cfg.evaluation.model_copy(update={"allow_missing_models": allow_missing})}
    )


def soak(mode: str, allow_missing: bool, args: argparse.Namespace, work: Path) -> list[tuple[int, float, str]]:
    from imagejury.batch.engine import BatchOptions, LocalBatch
    from imagejury.batch.manifest import open_manifest
    from imagejury.core.pipeline import Evaluator
    from imagejury.models.registry import default_registry

    default_registry().clear()
    ev = Evaluator(config(args.clip, allow_missing), allow_local_paths=True)
    rows: list[tuple[int, float, str]] = []
    for r in range(1, args.rounds + 1):
        folder = work / f"{mode}-{allow_missing}-{r}"
        names = make_images(folder, args.per_round, args.size, seed=r)
        requests = [
            {"generated_image_url": n, "task_type": "image_generation", "generation_prompt": "a red circle"}
            for n in names
        ]
        if mode == "library":
            outcome = [str(getattr(e.status, "value", e.status)) for e in ev.evaluate_many(requests, base_dir=folder)]
        else:
            manifest = folder / "m.jsonl"
            manifest.write_text("".join(json.dumps(q) + "\n" for q in requests))
            out = folder / "out.jsonl"
            opts = BatchOptions(batch_size=args.batch_size, workers=2, progress=False)
            LocalBatch(ev, open_manifest(manifest), out, opts).run()
            outcome = [json.loads(line)["status"] for line in out.read_text().splitlines()]
        for f in folder.glob("*.png"):
            f.unlink()
        gc.collect()
        statuses = ", ".join(f"{s} {outcome.count(s)}" for s in sorted(set(outcome)))
        rows.append((r * args.per_round, rss_mib(), statuses))
        print(f"  {mode} allow_missing={allow_missing} round {r}: RSS {rows[-1][1]:.0f} MiB ({statuses})", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--per-round", type=int, default=25)
    ap.add_argument("--size", type=int, default=512, help="image side in pixels")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--clip", default="ViT-L-14:openai", help="a CLIP source that is NOT on this machine")
    ap.add_argument("--modes", default="library,batch")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="soak-missing-") as tmp:
        for mode in args.modes.split(","):
            for allow in (False, True):
                rows = soak(mode, allow, args, Path(tmp))
                print(f"\n{mode}, allow_missing_models={allow}, {args.size}² PNGs\n")
                print("| evaluations | RSS MiB | outcome |\n|---:|---:|---|")
                for n, rss, statuses in rows:
                    print(f"| {n} | {rss:.0f} | {statuses} |")
                print(f"\ngrowth after round 1: {rows[-1][1] - rows[0][1]:+.0f} MiB\n", flush=True)
    print(markdown())
    print(f"wall {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
