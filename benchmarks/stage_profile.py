"""Where a request's time goes: per image and per stage, for a ``standard`` and a ``quick``
request in one run (issue 13, item 4).

The stages are timed on the real code paths, not re-implemented: the script wraps, for
the duration of the run,

- ``Evaluator.prepare`` (request parsing + decode; decode is ``PreparedItem.decode_ms``),
- every ``FeatureCache.get_or_compute`` computation — CLIP image, CLIP text, faces (detect +
  embed), the shared working copy (shrink, grey, half-size), and each pixel measure
  (``signals``, ``niqe``, ``piqe``, ``brisque_pypi``), keyed by the cache's feature name,
- ``Evaluator._plan_all`` (planning), ``Evaluator._run_judge`` (the judges' own logic is
  its time minus the feature computations nested in it), ``Evaluator._finish``
  (aggregation, action, API object) and ``Evaluation.model_dump_json`` (JSON).

Times are exclusive (a nested stage's time is not counted again in its parent). Each
request is judged alone (batch size 1) after one warm-up request per preset and job class,
so models are loaded and the fixed texts (safety concepts, aesthetic pairs) are warm; each
request has its own prompt, so its prompt texts are encoded cold. CLIP weights are random
(``random:ViT-L-14`` for standard, ``random:ViT-B-32`` for quick): speed depends on the
architecture, not the weights. Faces: dlib (the default analyser).

Usage::

    .venv/bin/python benchmarks/stage_profile.py                     # 1024 px, 2 images per row
    .venv/bin/python benchmarks/stage_profile.py --size 128 --images 1 --standard-clip random:ViT-B-32
    .venv/bin/python benchmarks/stage_profile.py --before /tmp/old   # + the pixel measures of an older checkout

``--before DIR`` also times an older checkout's pixel measures (the ones this issue
changed) against this version's on each row's own images, alone and interleaved, and
gives each version's share of the request: this version's measured in the request, the
older one's derived (its time alone scaled by this version's in-request/alone ratio and
swapped into the same request, which assumes the other stages did not change).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import machine  # noqa: E402
from benchmarks.naive_baseline import fresh_embedder, preregister_embedder  # noqa: E402
from benchmarks.pixel_speed import (  # noqa: E402
    MEASURES,
    PixelSet,
    interleaved,
    is_checkout,
    job_measures,
    pixel_sets,
    pixel_sets_of_checkout,
)
from benchmarks.throughput import PromptSource, make_headshots, make_images, make_requests  # noqa: E402
from imagejury.core.config import EvaluatorConfig  # noqa: E402
from imagejury.core.pipeline import Evaluator  # noqa: E402
from imagejury.judges.features import FeatureCache  # noqa: E402
from imagejury.models import quality  # noqa: E402
from imagejury.models.provider import ModelSet  # noqa: E402
from imagejury.models.quality import working  # noqa: E402
from imagejury.models.registry import ModelRegistry  # noqa: E402

log = logging.getLogger("stage_profile")

STAGE_ORDER = (
    "decode",
    "request parsing (rest of prepare)",
    "resize / working copy",
    "CLIP image",
    "CLIP text",
    "face detect + embed",
    *(f"pixel: {m}" for m in MEASURES),
    "planning",
    "judges' own logic",
    "aggregation + verdict",
    "JSON",
)


def feature_stage(feature: str, model_key: str) -> str:
    """The profile's name for one FeatureCache computation."""
    if feature == "quality":
        return f"pixel: {model_key}"
    return {
        "clip_image": "CLIP image",
        "clip_text": "CLIP text",
        "faces": "face detect + embed",
        "working_copy": "resize / working copy",
    }.get(feature, f"feature: {feature}")


class StageTimer:
    """Exclusive wall time per stage: a stage entered inside another is subtracted from
    its parent, so the stages add up to the time they cover."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._stack: list[list[float]] = []  # [start, time spent in children]

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        frame = [time.perf_counter(), 0.0]
        self._stack.append(frame)
        try:
            yield
        finally:
            self._stack.pop()
            total = time.perf_counter() - frame[0]
            self.seconds[name] += total - frame[1]
            if self._stack:
                self._stack[-1][1] += total

    def take(self) -> dict[str, float]:
        out, self.seconds = dict(self.seconds), defaultdict(float)
        return out


@contextlib.contextmanager
def instrumented(timer: StageTimer) -> Iterator[None]:
    """Wrap the real code paths with the timer for the duration of the block."""
    originals: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, attr: str, make: Callable[[Any], Any]) -> None:
        orig = owner.__dict__[attr]
        originals.append((owner, attr, orig))
        setattr(owner, attr, make(orig))

    def get_or_compute(orig: Any) -> Any:
        def wrapper(self: FeatureCache, feature: str, model_key: str, keys: Any, inputs: Any, compute: Any) -> Any:
            def timed(xs: list[Any]) -> Any:
                with timer.stage(feature_stage(feature, model_key)):
                    return compute(xs)

            return orig(self, feature, model_key, keys, inputs, timed)

        return wrapper

    def simple(name: str) -> Callable[[Any], Any]:
        def make(orig: Any) -> Any:
            def wrapper(*a: Any, **kw: Any) -> Any:
                with timer.stage(name):
                    return orig(*a, **kw)

            return wrapper

        return make

    wrap(FeatureCache, "get_or_compute", get_or_compute)
    wrap(Evaluator, "prepare", simple("request parsing (rest of prepare)"))
    wrap(Evaluator, "_plan_all", simple("planning"))
    wrap(Evaluator, "_run_judge", simple("judges' own logic"))
    wrap(Evaluator, "_finish", simple("aggregation + verdict"))
    try:
        yield
    finally:
        for owner, attr, orig in reversed(originals):
            setattr(owner, attr, orig)


def build_evaluator(job_class: str, clip: str, threads: int, device: str = "cpu") -> Evaluator:
    """An evaluator whose ``job_class`` CLIP is a fresh ``clip`` (random weights for ``random:``)."""
    registry = ModelRegistry()
    cfg = EvaluatorConfig.model_validate(
        {"models": {"clip": clip, "torch_threads": threads, "device": device}, "evaluation": {"batch_size": 1}}
    )
    dtype = ModelSet(cfg.models.settings(), registry, job_class).dtype  # what the registry key expects
    embedder = fresh_embedder(clip, device=device, dtype=dtype)
    preregister_embedder(registry, cfg.models.settings(), embedder, job_class)
    ev = Evaluator(cfg, registry=registry)
    problems = ev.warmup([job_class])
    if problems:
        log.warning("warmup problems (those judges will fail the run): %s", problems)
    return ev


def profile_requests(ev: Evaluator, requests: list[dict], timer: StageTimer) -> tuple[dict[str, float], float]:
    """Judge each request alone; the stage seconds summed over them, and the total wall time."""
    timer.take()
    decode = 0.0
    wall = 0.0
    for req in requests:
        t0 = time.perf_counter()
        prepared = ev.prepare(req)
        if prepared.item is None:
            raise RuntimeError(f"benchmark request failed to decode: {prepared.failure_detail}")
        (evaluation,) = ev.run_prepared([prepared])
        with timer.stage("JSON"):
            evaluation.model_dump_json()
        wall += time.perf_counter() - t0
        if getattr(evaluation, "failure_code", None):
            raise RuntimeError(f"benchmark request failed: {evaluation.failure_detail}")
        decode += prepared.decode_ms / 1000
    seconds = timer.take()
    # prepare's exclusive time contains the decode: split it out
    seconds["decode"] = decode
    seconds["request parsing (rest of prepare)"] = seconds.get("request parsing (rest of prepare)", 0.0) - decode
    return seconds, wall


def render(rows: dict[tuple[str, str], tuple[dict[str, float], float, int]], clips: dict[str, str]) -> str:
    """One table: ms per image and share of the request, per stage, per (preset, job class)."""
    cols = list(rows)
    header = ["stage"] + [f"{p} / {jc} ({clips[jc]}): ms/img · share" for p, jc in cols]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    names = list(STAGE_ORDER) + sorted({k for s, _, _ in rows.values() for k in s} - set(STAGE_ORDER))
    for name in names + ["other (unwrapped)", "**request total**"]:
        cells = []
        for col in cols:
            seconds, wall, n = rows[col]
            if name == "**request total**":
                v = wall
            elif name == "other (unwrapped)":
                v = wall - sum(seconds.values())
            else:
                v = seconds.get(name, 0.0)
            cells.append(f"{1000 * v / n:.1f} · {100 * v / wall:.1f}%")
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines)


def ratios(rows: dict[tuple[str, str], tuple[dict[str, float], float, int]]) -> list[str]:
    """The issue's targets: standard pixel measures vs one ViT-L-14 image forward, quick
    signals vs one ViT-B-32 forward (working copy counted with the pixel measures)."""
    out = []
    for (preset, jc), (seconds, _wall, n) in rows.items():
        clip = seconds.get("CLIP image", 0.0)
        measures = job_measures(jc)
        pixel = pixel_seconds(seconds, jc)
        target = 15 if jc == "standard" else 25
        share = 100 * pixel / clip if clip > 0 else float("nan")
        out.append(
            f"- {preset} / {jc}: working copy + {' + '.join(measures)} = {1000 * pixel / n:.1f} ms/img, "
            f"{share:.0f}% of its CLIP image forward ({1000 * clip / n:.1f} ms/img; target ≤ {target}%)"
        )
    return out


def time_pixel_sets(
    paths: list[Path], job_class: str, sets: dict[str, tuple[PixelSet, PixelSet]], rounds: int, device: str
) -> dict[str, float]:
    """Seconds per image of each version's pixel measures for ``job_class`` (``standard``:
    all four, ``quick``: the signals; working copy included) on the row's own images,
    the versions interleaved round by round (``pixel_speed.interleaved``: median of
    ``rounds`` after a warm-up)."""
    images = []
    for p in paths:
        with Image.open(p) as im:
            images.append(im.convert("RGB"))

    def measuring(pair: tuple[PixelSet, PixelSet]) -> Callable[[], None]:
        measure = pair[0] if job_class == "standard" else pair[1]

        def run() -> None:
            for img in images:
                measure(img)

        return run

    ms = interleaved({name: measuring(pair) for name, pair in sets.items()}, rounds, device)
    return {name: v / 1000 / len(images) for name, v in ms.items()}


def pixel_seconds(seconds: dict[str, float], job_class: str) -> float:
    """The request's own pixel stages: the working copy and the job class's measures."""
    measures = job_measures(job_class)
    return seconds.get("resize / working copy", 0.0) + sum(seconds.get(f"pixel: {m}", 0.0) for m in measures)


def render_before(
    rows: dict[tuple[str, str], tuple[dict[str, float], float, int]],
    pixels: dict[tuple[str, str], dict[str, float]],
    before: Path,
) -> str:
    """Pixel measures of this version and of ``before`` per request, and their share of
    the request. This version's share is measured inside the request; the older one's is
    derived: its time alone, scaled by this version's in-request/alone ratio, swapped
    into the same request (assuming the other stages did not change)."""
    lines = [
        "| preset / job class | now: alone · in the request, ms/img | before: alone · scaled to the request, ms/img "
        "| share of the request now (measured) | before (derived) |",
        "|---|---|---|---|---|",
    ]
    for (preset, jc), times in pixels.items():
        seconds, wall, n = rows[(preset, jc)]
        request, now_in = wall / n, pixel_seconds(seconds, jc) / n
        now, old = times["now"], times["before"]
        old_in = old * now_in / now
        lines.append(
            f"| {preset} / {jc} | {1000 * now:.1f} · {1000 * now_in:.1f} | {1000 * old:.1f} · {1000 * old_in:.1f} "
            f"| {100 * now_in / request:.1f}% | {100 * old_in / (request - now_in + old_in):.1f}% |"
        )
    return (
        f"Pixel measures before (`{before}`) and now, same images, timed alone and interleaved; shares of the "
        "request measured now, derived before:\n\n" + "\n".join(lines)
    )


def make_inputs(folder: Path, args: argparse.Namespace) -> dict[str, list[Path]]:
    images = make_images(folder, args.images, args.size)
    heads, ref = make_headshots(folder, args.images)
    # bring every image up to the profile's size: the sample photos and the headshot
    # crops are smaller, and ``make_images`` only ever shrinks
    for p in [*images, *heads, ref]:
        with Image.open(p) as im:
            w, h = im.size
            scale = args.size / max(w, h)
            im.convert("RGB").resize((round(w * scale), round(h * scale)), Image.Resampling.BICUBIC).save(p, quality=92)
    return {"image_generation": images, "headshot": heads, "_ref": [ref]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=2, help="requests per preset and job class")
    ap.add_argument("--size", type=int, default=1024, help="longer side of the test images")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu, cuda: where CLIP and the pixel measures run")
    ap.add_argument("--presets", default="image_generation,headshot")
    ap.add_argument("--job-classes", default="standard,quick")
    ap.add_argument("--standard-clip", default="random:ViT-L-14")
    ap.add_argument("--quick-clip", default="random:ViT-B-32")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "stage_profile.md"))
    ap.add_argument(
        "--before", type=Path, help="an older checkout: its pixel measures on the same images, for a before/after"
    )
    ap.add_argument("--before-rounds", type=int, default=3, help="interleaved rounds of the before/after timing")
    args = ap.parse_args(argv)
    if args.before and not is_checkout(args.before):
        ap.error(f"--before {args.before}: not a checkout of this repository (no models/quality/ there)")
    if args.before_rounds < 1:
        ap.error("--before-rounds must be at least 1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    job_classes = [j.strip() for j in args.job_classes.split(",") if j.strip()]
    clips = {"standard": args.standard_clip, "quick": args.quick_clip}
    load_before = os.getloadavg()[0]
    timer = StageTimer()
    rows: dict[tuple[str, str], tuple[dict[str, float], float, int]] = {}
    pixels: dict[tuple[str, str], dict[str, float]] = {}
    sets: dict[str, tuple[PixelSet, PixelSet]] = {}
    if args.before:
        sets = {
            "now": pixel_sets(quality, working, args.device),
            "before": pixel_sets_of_checkout(args.before, args.device),
        }
    with tempfile.TemporaryDirectory(prefix="imagejury-stages-") as tmp:
        inputs = make_inputs(Path(tmp), args)
        prompts = PromptSource()
        for jc in job_classes:
            ev = build_evaluator(jc, clips[jc], args.threads, args.device)
            for preset in presets:
                reqs = make_requests(preset, jc, inputs[preset], inputs["_ref"][0], prompts, "distinct")
                warm = make_requests(preset, jc, inputs[preset][:1], inputs["_ref"][0], prompts, "distinct")
                ev.evaluate(warm[0])  # models loaded, fixed texts warm
                with instrumented(timer):
                    seconds, wall = profile_requests(ev, reqs, timer)
                rows[(preset, jc)] = (seconds, wall, len(reqs))
                if args.before:
                    pixels[(preset, jc)] = time_pixel_sets(inputs[preset], jc, sets, args.before_rounds, args.device)
            del ev
    load_after = os.getloadavg()[0]
    info = machine.describe()
    command = "python benchmarks/stage_profile.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = (
        f"Command: `{command}`\n\nMachine: {info['nproc']} cores ({info['cpu']}), torch {info.get('torch', '?')}; torch threads {args.threads}, device {args.device}; "
        f"1-minute load average {load_before:.2f} before, {load_after:.2f} after. "
        f"{args.images} request(s) per column, {args.size} px JPEG, batch size 1, warm models.\n\n"
        + render(rows, clips)
        + "\n\nPixel measures against the CLIP image forward of the same request:\n\n"
        + "\n".join(ratios(rows))
        + "\n"
        + (f"\n{render_before(rows, pixels, args.before)}\n" if args.before else "")
    )
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
