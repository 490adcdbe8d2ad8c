"""Do the technical judges pass clean graphics and fail clearly degraded ones?

The generated set of ``tests/support/graphics.py`` (eight kinds of non-photo content, each
with blur, noise, JPEG, banding, over- and under-exposure at a "clear" level), on the
calibration split (seeds 0–5; the thresholds were chosen looking at it) and the held-out
split (seeds 100–111; never looked at while tuning). Prints, per split and judge: the
share of clean images that pass and, per degradation, the share of degraded images that
fail, plus the clean images that failed and why.

``--size N`` draws the graphics at N px instead of 512 (the size the thresholds were
calibrated at; generated images are often 1024). ``--half`` hands the judges every image
(clean and degraded) halved by a 2×2 box filter: what measuring the pixel signals on a
half-size copy would do to the verdicts — the cheaper way to meet issue 13's ``quick``
speed target, measured here rather than assumed.

With ``--photos``: the graded distortions of the sample photos instead
(``tests/support/photos.py``, calibration astronaut/coffee/chelsea, held out rocket and
motorcycle), one row per distortion and level: which photos ``technical_signals`` fails
and the defects it names — the check that a change for graphics did not make photos worse.

Run: ``python benchmarks/graphics_quality.py [--split held_out] [--seeds N] [--size N] [--half] [--photos]``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imagejury.judges.features import FeatureCache, content_key  # noqa: E402
from imagejury.judges.technical_quality import TechnicalQualityJudge  # noqa: E402
from imagejury.judges.technical_signals import TechnicalSignalsConfig, TechnicalSignalsJudge  # noqa: E402
from imagejury.judges.types import JudgeItem  # noqa: E402
from imagejury.models.provider import ModelSet  # noqa: E402
from imagejury.models.registry import ModelRegistry  # noqa: E402
from imagejury.models.settings import ModelSettings  # noqa: E402
from tests.support import graphics, photos  # noqa: E402

log = logging.getLogger("graphics_quality")


def judges() -> list:
    ms = ModelSet(ModelSettings(clip="local-dir:/nonexistent/clip"), registry=ModelRegistry())
    tq = TechnicalQualityJudge(config={"use_clip_iqa": False}, model_set=ms)
    tq.warmup()
    return [TechnicalSignalsJudge(), tq]


def evaluate(split: str, seeds: int | None, size: int = graphics.SIZE, half: bool = False) -> tuple[dict, list[str]]:
    """{(judge, condition): [n_as_expected, n]} and the clean failures, on graphics drawn
    at ``size`` px (degraded at that size), judged as they are or, with ``half``, halved."""
    counts: dict = defaultdict(lambda: [0, 0])
    clean_failures: list[str] = []
    js = judges()
    chosen = graphics.split(split)[:seeds] if seeds else graphics.split(split)
    for seed in chosen:
        for kind in graphics.KINDS:
            clean = graphics.graphic(kind, seed, size)
            cases = [("clean", clean)] + [(d, graphics.degraded(clean, d)) for d in graphics.degradations_for(kind)]
            if half:
                cases = [(c, im.reduce(2)) for c, im in cases]
            cache = FeatureCache()
            items = [
                JudgeItem(item_id=f"{kind}/{seed}/{c}", image=im, image_key=content_key(im), features=cache)
                for c, im in cases
            ]
            for judge in js:
                for (cond, _), r in zip(cases, judge.judge(items)):
                    ok = r.passed if cond == "clean" else not r.passed
                    counts[(judge.name, cond)][0] += int(ok)
                    counts[(judge.name, cond)][1] += 1
                    if cond == "clean" and not r.passed:
                        clean_failures.append(f"{judge.name} {kind}/{seed}: {r.reasoning}")
        log.info("%s seed %s done", split, seed)
    return counts, clean_failures


def table(split: str, counts: dict, seen_as: str = f"{graphics.SIZE} px") -> list[str]:
    conds = ["clean"] + list(graphics.DEGRADATIONS)
    lines = [
        f"Split: **{split}**, judged at {seen_as}. Cells: clean → share that PASS; degraded → share that FAIL.",
        "",
        "| judge | " + " | ".join(conds) + " | all degraded |",
        "|---|" + "---|" * (len(conds) + 1),
    ]
    for judge in dict.fromkeys(j for j, _ in counts):  # the judges that ran, in order
        cells = []
        for c in conds:
            ok, n = counts[(judge, c)]
            cells.append(f"{ok / n:.0%} ({ok}/{n})" if n else "–")
        ok = sum(counts[(judge, c)][0] for c in conds[1:])
        n = sum(counts[(judge, c)][1] for c in conds[1:])
        lines.append(f"| {judge} | " + " | ".join(cells) + f" | {ok / n:.0%} ({ok}/{n}) |")
    return lines


PHOTO_LEVELS = {
    "blur": photos.BLUR_SIGMAS,
    "noise": photos.NOISE_SIGMAS,
    "jpeg": photos.JPEG_QUALITIES,
    "exposure": photos.EXPOSURE_FACTORS,
}


def photo_table() -> list[str]:
    """technical_signals on every photo's graded distortions: the failing photos and defects."""
    names = list(photos.CALIBRATION_PHOTOS) + list(photos.HELD_OUT_PHOTOS)
    judge = TechnicalSignalsJudge()
    lines = [
        "| distortion | level | fail | failing photos (defects) |",
        "|---|---|---|---|",
    ]
    for kind, levels in PHOTO_LEVELS.items():
        graded = {n: photos.graded(photos.photo(n), kind) for n in names}
        for i, level in enumerate(levels):
            items = [
                JudgeItem(item_id=n, image=graded[n][i], image_key=content_key(graded[n][i]), features=FeatureCache())
                for n in names
            ]
            failed = [
                f"{n} ({', '.join(sorted({x.subcategory for x in r.issues}))})"
                for n, r in zip(names, judge.judge(items))
                if not r.passed
            ]
            lines.append(f"| {kind} | {level:g} | {len(failed)}/{len(names)} | {'; '.join(failed) or '–'} |")
        log.info("photos %s done", kind)
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=("calibration", "held_out", "both"), default="both")
    ap.add_argument("--seeds", type=int, default=None, help="use only the first N seeds of each split")
    ap.add_argument("--size", type=int, default=graphics.SIZE, help="draw the graphics at N px (default 512)")
    ap.add_argument("--half", action="store_true", help="judge every graphic halved (2×2 box)")
    ap.add_argument("--photos", action="store_true", help="the sample photos' graded distortions instead")
    args = ap.parse_args(argv)
    if args.size < 32:
        ap.error("--size must be at least 32")
    if args.photos and (args.half or args.size != graphics.SIZE):
        ap.error("--size and --half apply to the graphics; the photos are judged at their own size")
    logging.basicConfig(level=logging.INFO)
    if args.photos:
        print("\n".join(photo_table()))
        return
    judged = args.size // 2 if args.half else args.size
    seen_as = f"{judged} px (drawn at {args.size}, halved)" if args.half else f"{args.size} px"
    if judged < (floor := TechnicalSignalsConfig().min_short_side):
        print(
            f"Note: judged at {judged} px, under the judges' low-resolution floor of {floor} px: every image "
            "fails as low-resolution, so the clean column says nothing about the pixel checks.\n"
        )
    for split in ("calibration", "held_out") if args.split == "both" else (args.split,):
        counts, failures = evaluate(split, args.seeds, args.size, args.half)
        print("\n".join(table(split, counts, seen_as)))
        print("\nClean images that failed:" if failures else "\nNo clean image failed.")
        for f in failures:
            print(f"- {f}")
        print()


if __name__ == "__main__":
    main()
