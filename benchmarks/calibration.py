"""Does ``imagejury calibrate`` make verdicts agree better with people's labels, and is rescore fast?

Why: a threshold should come from labels on the user's own content, measured on items it
was not fitted on. Each labelled set is built here with a real judge, its truth known by
construction, and the judge is run with its threshold *deliberately shifted* (and, for
identity, also at its documented default). The items are split in two, stratified by
label: ``calibrate`` fits on the calibration half (its own 5-fold CV figures are printed
too), ``rescore`` re-judges the held-out half under the fitted overlay, and the table
compares the held-out agreement (accuracy and balanced accuracy of the judge's vote with
the labels) before and after.

Sets:
- **identity (dlib)**: eight people (scikit-image's astronaut, the six faces of
  insightface's ``t1.jpg``, insightface's Tom Hanks crop), each as the reference and in
  graded variants (flip, rescale, JPEG, blur, noise) as the image; label = same person.
- **prompt adherence (tiny shapes CLIP)**: coloured shapes under noise and low contrast
  (so the probabilities spread), with the right caption or a wrong-colour/shape one;
  label = the caption describes the image.

Judges that do not yet record ``measurements`` get one built here from their ``score``
and ``threshold`` (both higher-is-better); the table says how many votes that
measurement reproduces.

``--speed-rows N`` also times ``rescore`` over N synthetic rows (six judges each).

Usage::

    .venv/bin/python benchmarks/calibration.py                 # both sets + 100k-row rescore timing
    .venv/bin/python benchmarks/calibration.py --speed-rows 0  # accuracy only
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import logging
import os
import sys
import tempfile
import time
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from PIL import Image, ImageEnhance  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.machine import describe  # noqa: E402
from imagejury.calibrate.overlay import Overlay  # noqa: E402
from imagejury.calibrate.rescore import rescore_file  # noqa: E402
from imagejury.cli import main as imagejury_main  # noqa: E402
from imagejury.core.presets import PRESETS  # noqa: E402
from imagejury.core.schema import EvaluationRequest  # noqa: E402
from imagejury.core.verdict.action import decide_action  # noqa: E402
from imagejury.core.verdict.aggregate import aggregate  # noqa: E402
from imagejury.core.verdict.result import EvaluationMeta, build_evaluation  # noqa: E402
from imagejury.judges.features import FeatureCache  # noqa: E402
from imagejury.judges.types import JudgeItem, JudgeResult, Measurement, Reference  # noqa: E402

log = logging.getLogger("calibration_benchmark")
TINY = ROOT / "tests" / "assets" / "tiny_shapes_clip"


@dataclass
class Labelled:
    """One judge's results on one labelled set."""

    name: str
    judge: str
    task_type: str
    results: list[JudgeResult]
    truth: np.ndarray
    synthesized: int = 0  # results whose measurement was built here from score/threshold
    reproduced: int = 0  # of those, votes the measurement reproduces


def key(im: Image.Image) -> str:
    return hashlib.sha256(f"{im.size}".encode() + im.tobytes()).hexdigest()[:32]


def ensure_measurement(r: JudgeResult, name: str, units: str, model: str, ds: Labelled) -> None:
    """Attach a measurement from score/threshold when the judge did not record one."""
    if r.measurements or r.score is None or r.threshold is None:
        return
    m = Measurement(name, float(r.score), float(r.threshold), True, units, model)
    r.measurements = [m]
    ds.synthesized += 1
    ds.reproduced += int(m.passed == r.passed)


# -- the labelled sets -----------------------------------------------------------------------
def identity_set(threshold: float | None) -> Labelled:
    from imagejury.judges.identity import IdentityJudge
    from tests.support import faces as F

    judge = IdentityJudge({} if threshold is None else {"threshold": threshold})
    cache = FeatureCache()
    group = F.group_photo()
    found = cache.faces(judge._analyzer(), [F.content_key(group)], [group])[0]
    people = [F.astronaut(), F.tom_hanks()] + [F.crop_box(group, f.box, margin=0.6) for f in found]
    variants = {
        "flip": F.flip,
        "half": lambda im: F.rescale(im, 0.5),
        "jpeg15": lambda im: F.jpeg(im, 15),
        "blur2": lambda im: F.blur(im, 2.0),
        "noise20": lambda im: F.noise(im, 20.0),
        "double": lambda im: F.rescale(im, 2.0),
    }
    items, truth = [], []
    for p, ref in enumerate(people):
        reference = Reference(kind="identity", image=ref, key=key(ref))
        for q, person in enumerate(people):
            for vname, fn in variants.items():
                im = fn(person)
                items.append(
                    JudgeItem(
                        item_id=f"{p}-{q}-{vname}", image=im, image_key=key(im), references=[reference], features=cache
                    )
                )
                truth.append(p == q)
    results = judge.judge(items)
    kind = "default" if threshold is None else f"shifted to {threshold}"
    ds = Labelled(f"identity, dlib, threshold {kind}", "identity", "headshot", results, np.array(truth))
    for r in results:
        ensure_measurement(r, "similarity", "dlib similarity (1 - distance)", "dlib", ds)
    return ds


def shapes_set(threshold: float | None, n_images: int) -> Labelled:
    from imagejury.judges.prompt_adherence import PromptAdherenceJudge
    from imagejury.models.provider import ModelSet
    from imagejury.models.settings import ModelSettings
    from tests.support import shapes

    ms = ModelSet(ModelSettings(clip=f"local-dir:{TINY}"))
    vocab = {"colour": list(shapes.COLORS), "shape": list(shapes.SHAPES)}
    config: dict = {"vocabulary": vocab} if threshold is None else {"vocabulary": vocab, "threshold": threshold}
    judge = PromptAdherenceJudge(config, model_set=ms)
    cache, rng = FeatureCache(), np.random.default_rng(11)
    items, truth = [], []
    for i, s in enumerate(shapes.dataset(n_images, seed=9303, templates=False)):
        arr = np.asarray(ImageEnhance.Contrast(s.image).enhance(0.6), dtype=np.float32)
        arr = np.clip(arr + rng.normal(0, 15, arr.shape), 0, 255).astype(np.uint8)
        im = Image.fromarray(arr)
        wrong_colour = [c for c in shapes.COLORS if c != s.color][i % (len(shapes.COLORS) - 1)]
        wrong_shape = [x for x in shapes.SHAPES if x != s.shape][i % (len(shapes.SHAPES) - 1)]
        for caption, ok in (
            (shapes.caption(s.color, s.shape), True),
            (shapes.caption(wrong_colour, s.shape), False),
            (shapes.caption(s.color, wrong_shape), False),
        ):
            items.append(
                JudgeItem(item_id=f"{i}-{caption}", image=im, image_key=key(im), prompt=caption, features=cache)
            )
            truth.append(ok)
    results = judge.judge(items)
    kind = "default (0.5, chosen on clean shapes)" if threshold is None else f"shifted to {threshold}"
    ds = Labelled(
        f"prompt adherence, tiny shapes CLIP, low contrast + noise, threshold {kind}",
        "prompt_adherence",
        "image_generation",
        results,
        np.array(truth),
    )
    for r in results:
        # the judge's score is the share of sub-points found; the probability it decided on is the whole prompt's
        whole = r.sub_point_results.get("whole prompt") or {}
        if not r.measurements and "score" in whole:
            r.score = float(whole["score"])
        ensure_measurement(r, "probability", "probability over foils", "tiny_shapes_clip", ds)
    return ds


# -- records, split, calibrate, rescore -------------------------------------------------------------
def record(r: JudgeResult, task_type: str, ref: str) -> dict:
    preset = PRESETS[task_type]
    r.weight = preset.weights.get(r.name, 1.0)
    r.critical = r.name in preset.critical
    verdict = aggregate([r], pass_threshold=preset.pass_threshold)
    verdict.check_summary["preset"] = preset.name
    action = decide_action(verdict, [r], None)
    req = EvaluationRequest(generated_image_url="https://example.com/x.png", task_type=task_type, client_ref=ref)
    return build_evaluation(req, EvaluationMeta.new(), [r], verdict, action, time.perf_counter()).to_api()


def split(truth: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified halves: (calibration indices, held-out indices)."""
    rng = np.random.default_rng(seed)
    cal, held = [], []
    for cls in (True, False):
        idx = np.flatnonzero(truth == cls)
        rng.shuffle(idx)
        cal += list(idx[: len(idx) // 2])
        held += list(idx[len(idx) // 2 :])
    return np.array(sorted(cal)), np.array(sorted(held))


def agreement(votes: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    acc = float(np.mean(votes == truth))
    bacc = 0.5 * (float(np.mean(votes[truth])) + float(np.mean(~votes[~truth])))
    return acc, bacc


def evaluate_set(ds: Labelled, work: Path, extra: tuple[str, ...] = ()) -> dict:
    cal, held = split(ds.truth)
    recs = [record(r, ds.task_type, f"{ds.judge}-{i}") for i, r in enumerate(ds.results)]
    cal_path, held_path, labels = work / "cal.jsonl", work / "held.jsonl", work / "labels.csv"
    cal_path.write_text("".join(json.dumps(recs[i]) + "\n" for i in cal))
    held_path.write_text("".join(json.dumps(recs[i]) + "\n" for i in held))
    with labels.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "passed", "judge"])
        w.writerows([f"{ds.judge}-{i}", int(ds.truth[i]), ds.judge] for i in cal)
    overlay = work / "calibrated.toml"
    printed = io.StringIO()
    with redirect_stdout(printed):
        code = imagejury_main(["calibrate", str(cal_path), "--labels", str(labels), "-o", str(overlay), *extra])
    if code != 0:
        raise SystemExit(f"calibrate failed on {ds.name}")
    rescore_file(held_path, Overlay.from_file(overlay), work / "held_rescored.jsonl")
    before = np.array([_vote(json.loads(line), ds.judge) for line in held_path.read_text().splitlines()])
    after = np.array(
        [_vote(json.loads(line), ds.judge) for line in (work / "held_rescored.jsonl").read_text().splitlines()]
    )
    truth = ds.truth[held]
    line = [x for x in printed.getvalue().splitlines() if x.startswith(ds.judge)][0]
    return {
        "set": ds.name + (f" ({' '.join(extra)})" if extra else ""),
        "n": f"{len(cal)} / {len(held)}",
        "pos": int(ds.truth.sum()),
        "before": agreement(before, truth),
        "after": agreement(after, truth),
        "far": (float(np.mean(before[~truth])), float(np.mean(after[~truth]))),
        "calibrate": line,
        "synth": f"{ds.reproduced}/{ds.synthesized}" if ds.synthesized else "judge's own",
    }


def _vote(rec: dict, judge: str) -> bool:
    return next(j["passed"] for j in rec["judges"] if j["name"] == judge)


# -- rescore speed --------------------------------------------------------------------------------------
def speed(rows: int, work: Path, workers: int = 1) -> dict:
    rng = np.random.default_rng(5)
    names = ("identity", "prompt_adherence", "technical_signals", "technical_quality", "aesthetics", "safety")
    templates = []
    for t in range(256):
        results = []
        for name in names:
            higher = name != "safety"
            value = float(rng.uniform(0, 1))
            m = Measurement("score", value, 0.5 if higher else 0.35, higher, "u", "m")
            results.append(JudgeResult(name, "c", bool(m.passed), 0.8, 1.0, f"{name} {value:.3f}", measurements=[m]))
        templates.append(record_multi(results, t))
    src = work / "speed.jsonl"
    with src.open("w") as fh:
        for i in range(rows):
            rec = templates[i % len(templates)]
            fh.write(json.dumps({**rec, "client_ref": f"row-{i}"}) + "\n")
    overlay = work / "speed.toml"
    overlay.write_text(
        "[judges.identity.calibration]\nscore = 0.6\n[judges.prompt_adherence.calibration]\nscore = 0.45\n"
    )
    t0 = time.perf_counter()
    stats = rescore_file(src, Overlay.from_file(overlay), work / "speed_out.jsonl", workers=workers)
    seconds = time.perf_counter() - t0
    return {
        "rows": rows,
        "MB": src.stat().st_size / 1e6,
        "seconds": seconds,
        "flips": sum(stats.flips.values()),
        "verdicts": sum(stats.verdict_flips.values()),
    }


def record_multi(results: list[JudgeResult], t: int) -> dict:
    preset = PRESETS["image_generation"]
    verdict = aggregate(results, pass_threshold=preset.pass_threshold)
    verdict.check_summary["preset"] = preset.name
    action = decide_action(verdict, results, "a prompt")
    req = EvaluationRequest(
        generated_image_url="https://example.com/x.png", task_type="image_generation", generation_prompt="a prompt"
    )
    return build_evaluation(req, EvaluationMeta.new(), results, verdict, action, time.perf_counter()).to_api()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", type=int, default=160, help="shape images (three captions each)")
    ap.add_argument("--speed-rows", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    log.setLevel(logging.INFO)
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.time()
    shapes_default = shapes_set(None, args.shapes)
    runs: list[tuple[Labelled, tuple[str, ...]]] = [
        (identity_set(None), ()),
        (identity_set(0.25), ()),
        (identity_set(0.55), ()),
        (shapes_default, ()),
        (shapes_default, ("--max-false-accept", "0.05")),
        (shapes_set(0.9, args.shapes), ()),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, (ds, extra) in enumerate(runs):
            work = Path(tmp) / str(n)
            work.mkdir()
            rows.append(evaluate_set(ds, work, extra))
            log.info("%s %s done", ds.name, " ".join(extra))
        speed_row = speed(args.speed_rows, Path(tmp)) if args.speed_rows else None
    print(
        "| set | labels (pass) | cal / held-out | held-out accuracy before → after | balanced accuracy before → after | measurement |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        n_all = sum(int(x) for x in r["n"].split(" / "))
        print(
            f"| {r['set']} | {n_all} ({r['pos']}) | {r['n']} | {r['before'][0]:.3f} → {r['after'][0]:.3f} "
            f"| {r['before'][1]:.3f} → {r['after'][1]:.3f} | {r['far'][0]:.3f} → {r['far'][1]:.3f} | {r['synth']} |"
        )
    print(
        "\n`imagejury calibrate` on each calibration half (threshold before → after; its own 5-fold CV, 95% bootstrap):\n"
    )
    print("```")
    for r in rows:
        print(r["set"].split(",")[0], "|", " ".join(r["calibrate"].split()))
    print("```")
    if speed_row:
        print("\n| rescore rows | input MB | seconds | rows/s | judge votes flipped | verdicts flipped |")
        print("|---|---|---|---|---|---|")
        s = speed_row
        print(
            f"| {s['rows']} | {s['MB']:.0f} | {s['seconds']:.1f} | {s['rows'] / s['seconds']:.0f} | {s['flips']} | {s['verdicts']} |"
        )
    info = describe()
    print(
        f"\nMachine: {info.get('cpu')}, {info.get('nproc')} CPUs (load {info.get('load_avg_1_5_15')}), "
        f"Python {info.get('python')}, torch threads {args.threads}; {time.time() - t0:.0f} s in all."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
