"""Accuracy of the text judges on the tiny shapes CLIP, and how the pass threshold was chosen.

Why: the prompt-adherence threshold for a model should come from a measurement, and
contrastive scoring should be shown to beat the raw-cosine rule users of CLIPScore ask
about. Images come from ``tests/support/shapes.py`` (one coloured shape each) so the
truth is known exactly; seeds differ from the ones the tiny CLIP was trained on.

Cases per image: the right caption ("a red circle"), a wrong-colour caption ("a blue
circle") and a wrong-shape caption ("a red square"). A case is right when the judge passes
the right caption and fails the wrong ones.

1. **Calibration split**: sweep the pass threshold of the contrastive probability and,
   as the baseline, of the raw cosine (CLIPScore style: pass when cos > t); choose each by
   balanced accuracy (mean of pass rate on right captions and fail rate on wrong ones).
2. **Test split**: accuracy at the chosen thresholds — for the whole prompt, for the
   object sub-point inside longer templated prompts ("a drawing of a red circle"), and
   end to end through ``PromptAdherenceJudge`` (including whether the issue names the
   sub-point with the right code), plus the attributes and instructions judges.

Usage::

    .venv/bin/python benchmarks/text_judges_accuracy.py            # writes benchmarks/results/text_judges.md
    .venv/bin/python benchmarks/text_judges_accuracy.py --n-cal 200 --n-test 300
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageEnhance, ImageFilter  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from imagejury.judges.attributes import AttributesJudge  # noqa: E402
from imagejury.judges.features import FeatureCache  # noqa: E402
from imagejury.judges.instructions import InstructionsJudge  # noqa: E402
from imagejury.judges.prompt_adherence import THRESHOLDS, WHOLE, PromptAdherenceJudge  # noqa: E402
from imagejury.judges.types import JudgeItem  # noqa: E402
from imagejury.models.provider import ModelSet  # noqa: E402
from imagejury.models.settings import ModelSettings  # noqa: E402
from tests.support import shapes  # noqa: E402

log = logging.getLogger("text_judges_accuracy")
TINY = ROOT / "tests" / "assets" / "tiny_shapes_clip"
VOCAB = {"colour": list(shapes.COLORS), "shape": list(shapes.SHAPES)}
CAL_SEED, TEST_SEED = 7101, 7202  # not the trainer's seeds (0, 1001, 2002)


@dataclass
class Case:
    image_idx: int
    prompt: str
    truth: bool  # the prompt describes the image
    kind: str  # right | wrong_colour | wrong_shape
    target: str  # the sub-point text that should be named when it fails


def make_items(n: int, seed: int, cache: FeatureCache) -> tuple[list[JudgeItem], list[shapes.Sample]]:
    samples = shapes.dataset(n, seed=seed, templates=False)
    items = []
    for i, s in enumerate(samples):
        key = hashlib.sha256(s.image.tobytes()).hexdigest()
        items.append(JudgeItem(item_id=f"{seed}-{i}", image=s.image, image_key=key, features=cache))
    return items, samples


SHIFTS: dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]] = {
    "gaussian blur sigma 2": lambda im, rng: im.filter(ImageFilter.GaussianBlur(2.0)),
    "noise sigma 25": lambda im, rng: Image.fromarray(
        np.clip(np.asarray(im, dtype=np.float32) + rng.normal(0, 25, (im.height, im.width, 3)), 0, 255).astype(np.uint8)
    ),
    "contrast x0.55": lambda im, rng: ImageEnhance.Contrast(im).enhance(0.55),
}


def shifted(
    items: list[JudgeItem], fn: Callable[[Image.Image, np.random.Generator], Image.Image], cache: FeatureCache
) -> list[JudgeItem]:
    """The same images under a distortion the thresholds were not calibrated on."""
    rng = np.random.default_rng(3)
    out = []
    for it in items:
        im = fn(it.image, rng)
        out.append(
            JudgeItem(
                item_id=it.item_id + "~", image=im, image_key=hashlib.sha256(im.tobytes()).hexdigest(), features=cache
            )
        )
    return out


def make_cases(samples: list[shapes.Sample], seed: int, templated: bool) -> list[Case]:
    rng = np.random.default_rng(seed + 1)
    cases = []
    for i, s in enumerate(samples):
        colours = [c for c in shapes.COLORS if c != s.color]
        others = [x for x in shapes.SHAPES if x != s.shape]
        wc, ws = colours[int(rng.integers(len(colours)))], others[int(rng.integers(len(others)))]
        t = int(rng.integers(len(shapes.TEMPLATES))) if templated else 0
        for color, shape, truth, kind in (
            (s.color, s.shape, True, "right"),
            (wc, s.shape, False, "wrong_colour"),
            (s.color, ws, False, "wrong_shape"),
        ):
            cases.append(Case(i, shapes.caption(color, shape, t), truth, kind, shapes.caption(color, shape, 0)))
    return cases


def with_prompts(items: list[JudgeItem], cases: list[Case]) -> list[JudgeItem]:
    out = []
    for c in cases:
        base = items[c.image_idx]
        out.append(
            JudgeItem(
                item_id=f"{base.item_id}:{c.kind}",
                image=base.image,
                image_key=base.image_key,
                prompt=c.prompt,
                features=base.features,
            )
        )
    return out


def scores(
    judge: PromptAdherenceJudge, items: list[JudgeItem], cases: list[Case], batch: int = 96
) -> dict[str, np.ndarray]:
    """Per case: whole-prompt probability and cosine, object sub-point probability and cosine."""
    judged = with_prompts(items, cases)
    res = []
    for k in range(0, len(judged), batch):
        res += judge.judge(judged[k : k + batch])
    whole_p, whole_c, sub_p, sub_c, whole_m = [], [], [], [], []
    for c, r in zip(cases, res):
        w = r.sub_point_results[WHOLE]
        s = next(v for v in r.sub_point_results.values() if v.get("kind") == "subject")  # the shape's noun phrase
        whole_p.append(w["score"]), whole_c.append(w["cosine"]), sub_p.append(s["score"]), sub_c.append(s["cosine"])
        whole_m.append(w["margin"])
    cols = {"whole_p": whole_p, "whole_cos": whole_c, "sub_p": sub_p, "sub_cos": sub_c, "whole_margin": whole_m}
    return {k: np.array(v) for k, v in cols.items()}


def balanced(truth: np.ndarray, passed: np.ndarray) -> float:
    return 0.5 * (passed[truth].mean() + (~passed[~truth]).mean())


def accuracy(truth: np.ndarray, passed: np.ndarray) -> float:
    return float((passed == truth).mean())


def sweep(values: np.ndarray, truth: np.ndarray, grid: np.ndarray) -> tuple[float, float, list[tuple[float, float]]]:
    rows = [(float(t), balanced(truth, values >= t)) for t in grid]
    best = max(rows, key=lambda r: (r[1], -abs(r[0] - np.median(grid))))
    return best[0], best[1], rows


def _band(rows: list[tuple[float, float]], level: float = 0.95) -> str:
    ok = [t for t, b in rows if b >= level]
    return f"{min(ok):.3f} to {max(ok):.3f} ({len(ok)}/{len(rows)} grid points)" if ok else "none"


def judge_end_to_end(judge: PromptAdherenceJudge, items: list[JudgeItem], cases: list[Case]) -> dict[str, float]:
    judged = with_prompts(items, cases)
    res = []
    for k in range(0, len(judged), 96):
        res += judge.judge(judged[k : k + 96])
    right, named, by_kind = [], [], {"right": [], "wrong_colour": [], "wrong_shape": []}
    for c, r in zip(cases, res):
        ok = r.passed == c.truth
        if not c.truth and not r.passed:
            want = "wrong_attribute" if c.kind == "wrong_colour" else "missing_element"
            hit = any(i.target == c.target and i.subcategory == want for i in r.issues)
            named.append(hit)
            ok = ok and hit
        right.append(ok)
        by_kind[c.kind].append(ok)
    return {
        "all": float(np.mean(right)),
        "named": float(np.mean(named)) if named else float("nan"),
        **{k: float(np.mean(v)) for k, v in by_kind.items()},
    }


def attributes_accuracy(ms: ModelSet, items: list[JudgeItem], samples: list[shapes.Sample], threshold: float) -> float:
    judge = AttributesJudge({"vocabulary": VOCAB, "threshold": threshold}, model_set=ms)
    rng = np.random.default_rng(11)
    judged, truth = [], []
    for it, s in zip(items, samples):
        wrong = [c for c in shapes.COLORS if c != s.color][int(rng.integers(len(shapes.COLORS) - 1))]
        for colour, t in ((s.color, True), (wrong, False)):
            judged.append(
                JudgeItem(
                    item_id=it.item_id,
                    image=it.image,
                    image_key=it.image_key,
                    attributes={"color": colour},
                    features=it.features,
                )
            )
            truth.append(t)
    res = judge.judge(judged)
    return accuracy(np.array(truth), np.array([r.passed for r in res]))


def instructions_accuracy(
    ms: ModelSet, items: list[JudgeItem], samples: list[shapes.Sample], threshold: float
) -> tuple[float, int]:
    judge = InstructionsJudge({"vocabulary": VOCAB, "threshold": threshold}, model_set=ms)
    judged = [
        JudgeItem(
            item_id=it.item_id,
            image=it.image,
            image_key=it.image_key,
            instructions="No blue shapes.",
            features=it.features,
        )
        for it in items
    ]
    res = judge.judge(judged)
    truth = np.array([s.color != "blue" for s in samples])
    return accuracy(truth, np.array([r.passed for r in res])), int((~truth).sum())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-cal", type=int, default=240)
    ap.add_argument("--n-test", type=int, default=360)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "text_judges.md"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    if not (TINY / "open_clip_config.json").is_file():
        raise SystemExit(f"tiny shapes CLIP not found at {TINY}; build it with scripts/train_tiny_clip.py")
    t0 = time.time()
    ms = ModelSet(ModelSettings(clip=f"local-dir:{TINY}"))
    emb = ms.embedder()
    cache = FeatureCache()
    probe = PromptAdherenceJudge(
        {"vocabulary": VOCAB, "threshold": 0.5}, model_set=ms
    )  # threshold unused for raw scores

    cal_items, cal_samples = make_items(args.n_cal, CAL_SEED, cache)
    test_items, test_samples = make_items(args.n_test, TEST_SEED, cache)
    cal_cases = make_cases(cal_samples, CAL_SEED, templated=False)
    test_cases = make_cases(test_samples, TEST_SEED, templated=False)
    test_tmpl = make_cases(test_samples, TEST_SEED + 5, templated=True)
    cal_truth = np.array([c.truth for c in cal_cases])
    test_truth = np.array([c.truth for c in test_cases])
    tmpl_truth = np.array([c.truth for c in test_tmpl])

    cal = scores(probe, cal_items, cal_cases)
    test = scores(probe, test_items, test_cases)
    tmpl = scores(probe, test_items, test_tmpl)
    log.info("scored %d calibration and %d + %d test cases", len(cal_cases), len(test_cases), len(test_tmpl))

    p_grid = np.round(np.arange(0.05, 0.951, 0.05), 2)
    lo, hi = float(np.quantile(cal["whole_cos"], 0.01)), float(np.quantile(cal["whole_cos"], 0.99))
    c_grid = np.round(np.linspace(lo, hi, 41), 3)
    t_p, bal_p, rows_p = sweep(cal["whole_p"], cal_truth, p_grid)
    t_c, bal_c, rows_c = sweep(cal["whole_cos"], cal_truth, c_grid)
    t_sub_c, _, _ = sweep(cal["sub_cos"], cal_truth, c_grid)
    shift_rows = []
    for name, fn in SHIFTS.items():
        sh = scores(probe, shifted(test_items, fn, FeatureCache()), test_cases)
        shift_rows.append((f"whole prompt, test images under {name}", sh["whole_p"], sh["whole_cos"], test_truth, t_c))
    log.info("scored %d distribution shifts", len(SHIFTS))

    table = [
        ("whole prompt, 'a red circle'", test["whole_p"], test["whole_cos"], test_truth, t_c),
        (
            "object sub-point inside templated prompts ('a drawing of a red circle')",
            tmpl["sub_p"],
            tmpl["sub_cos"],
            tmpl_truth,
            t_sub_c,
        ),
        ("whole templated prompt", tmpl["whole_p"], tmpl["whole_cos"], tmpl_truth, t_c),
        *shift_rows,
    ]
    final = PromptAdherenceJudge({"vocabulary": VOCAB, "threshold": t_p}, model_set=ms)
    e2e = judge_end_to_end(final, test_items, test_cases)
    e2e_full = judge_end_to_end(PromptAdherenceJudge({"threshold": t_p}, model_set=ms), test_items, test_cases)
    attr_acc = attributes_accuracy(ms, test_items, test_samples, t_p)
    instr_acc, n_blue = instructions_accuracy(ms, test_items, test_samples, t_p)
    shipped = THRESHOLDS.lookup(f"local-dir:{TINY}")
    beats = float((tmpl["whole_margin"][tmpl_truth] > 0).mean())
    elapsed = time.time() - t0

    lines = [
        "# Text judges: accuracy on the tiny shapes CLIP",
        "",
        f"Generated by `benchmarks/text_judges_accuracy.py` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{platform.machine()}, torch {torch.__version__}, {args.threads} threads, {elapsed:.0f} s). "
        f"Model: `{emb.key.replace(str(ROOT) + '/', '')}` (logit scale {emb.logit_scale:.1f}). Images: `tests/support/shapes.py`, one coloured shape each, "
        f"calibration seed {CAL_SEED} ({args.n_cal} images), test seed {TEST_SEED} ({args.n_test} images); "
        "the trainer used seeds 0 / 1001 / 2002. Vocabulary narrowed to the model's 6 colours and 4 shapes, "
        "so each caption has 5 colour foils and 3 shape foils (chance = 1/9 = 0.11).",
        "",
        "Cases per image: the right caption, a wrong-colour caption, a wrong-shape caption (1 : 2 right : wrong).",
        "",
        "## How the pass threshold was chosen",
        "",
        f"Swept on the calibration split ({len(cal_cases)} cases), criterion balanced accuracy "
        "(mean of pass rate on right captions and fail rate on wrong ones):",
        "",
        "| threshold on contrastive probability | balanced accuracy (calibration) |",
        "|---|---|",
        *[f"| {t:.2f}{' **(chosen)**' if t == t_p else ''} | {b:.3f} |" for t, b in rows_p],
        "",
        "The raw-cosine baseline, swept the same way over the 1st–99th percentile of calibration cosines "
        "(every second grid point shown):",
        "",
        "| threshold on raw cosine | balanced accuracy (calibration) |",
        "|---|---|",
        *[f"| {t:.3f}{' **(chosen)**' if t == t_c else ''} | {b:.3f} |" for t, b in rows_c[::2]],
        "",
        f"Contrastive thresholds that keep calibration balanced accuracy >= 0.95: "
        f"{_band(rows_p)}; raw-cosine thresholds that do: {_band(rows_c)}.",
        "",
        f"Chosen: **{t_p:.2f}** (calibration balanced accuracy {bal_p:.3f}; ties are broken toward the middle of the grid)."
        f" Raw-cosine baseline threshold chosen the same "
        f"way on the same split: cos > **{t_c:.3f}** (balanced accuracy {bal_c:.3f}); for the sub-point rows {t_sub_c:.3f}.",
        f"Value shipped in `judges/prompt_adherence.py` THRESHOLDS for this model: {shipped.value:.2f}"
        + (
            " (matches)."
            if abs(shipped.value - t_p) < 1e-9
            else f" — **differs from this run's {t_p:.2f}; update THRESHOLDS**."
        ),
        "",
        "## Accuracy on the test split",
        "",
        "| what | cases | contrastive (p >= chosen) | raw cosine (cos > t) |",
        "|---|---|---|---|",
    ]
    for name, pv, cv, truth, tc in table:
        lines.append(f"| {name} | {len(truth)} | {accuracy(truth, pv >= t_p):.3f} | {accuracy(truth, cv > tc):.3f} |")
    lines += [
        "",
        "## End to end through the judges (test split, chosen threshold)",
        "",
        "| judge / case | accuracy |",
        "|---|---|",
        f"| prompt_adherence, all cases (a wrong case counts only if the issue names the sub-point with the right code) | {e2e['all']:.3f} |",
        f"| prompt_adherence, right caption passes | {e2e['right']:.3f} |",
        f"| prompt_adherence, wrong colour fails as `wrong_attribute` on that sub-point | {e2e['wrong_colour']:.3f} |",
        f"| prompt_adherence, wrong shape fails as `missing_element` on that sub-point | {e2e['wrong_shape']:.3f} |",
        f"| prompt_adherence, failing wrong captions whose issue names the right sub-point and code | {e2e['named']:.3f} |",
        f"| prompt_adherence with the full shipped vocabulary (foils include words this model never saw: pink, heart, ...) | {e2e_full['all']:.3f} |",
        f'| attributes `{{"color": right}}` passes / `{{"color": wrong}}` fails ({2 * args.n_test} cases) | {attr_acc:.3f} |',
        f'| instructions "No blue shapes.": fails on blue ({n_blue} images), passes otherwise ({args.n_test} cases) | {instr_acc:.3f} |',
        "",
        "What contrastive scoring buys, read honestly: on this tiny model raw cosine separates right from wrong "
        "captions about as well (its cosines are near-binary: ~0.98 for the right caption), and under distortions "
        "both degrade alike. The gain is that the contrastive threshold has a model-independent meaning — chance "
        "is 1/(k+1) and 0.5 means 'more than all foils together' — so one documented value carries across models and "
        "prompts, while the cosine cut chosen here is specific to this model (OpenAI CLIP ViT-B/32 gives matching "
        "pairs cosines of roughly 0.25–0.35, which is why CLIPScore rescales by w = 2.5) and must be re-fitted for "
        "each model; and the foils say *what* is wrong (colour vs shape), which a single cosine cannot.",
        "",
        'Notes: with one shape per image the whole prompt "a red circle" and its only sub-point are the same text; they '
        'differ in foils only. The templated rows embed the sub-point in a longer prompt ("a photo of ...", "... on a plain '
        'background"); there the whole prompt also carries parts the tiny model never learned to tell apart '
        '("a photo of", "a drawing of" and "on a plain background" were trained as interchangeable wrappers), so its '
        'foils "a photograph of ..." / "a line drawing of ..." are about as good as the right text, which then shares the '
        f"probability with them and falls under 0.5 (yet {beats:.0%} of the right templated prompts still beat every foil, "
        "margin > 0). Those three templates are the misses in that row; the sub-point view of the same prompts is unaffected — one reason to score parts separately. For real CLIP models the "
        "threshold is not measured here (no labelled real set ships offline): see the chance-level reasoning in "
        "`judges/prompt_adherence.py`.",
        "",
    ]
    text = "\n".join(lines)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
