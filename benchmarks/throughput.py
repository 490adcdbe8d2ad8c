"""How fast: end-to-end throughput and latency, per-judge time, decode time, memory, and
the naive baseline side by side in one run.

What it measures, on the same decoded images (scikit-image sample photos saved as JPEG
files, so ``Evaluator.prepare`` really decodes them):

1. **Pipeline** — ``Evaluator.prepare`` + ``run_prepared`` per preset × job class × batch
   size: images/s, p50/p99 request latency (a request's latency is its batch's decode +
   judging time; with few images p99 is the maximum), decode ms per image, per-judge
   seconds per image (``Evaluator.judge_seconds``), CLIP image forward passes per image.
2. **Naive baseline** (``benchmarks/naive_baseline.py``) — the same checks, each with its
   own model instance and its own forward passes; and the variant whose prompt check is
   a torchmetrics-style CLIPScore. Ratio = baseline seconds / pipeline seconds.
3. **Pipeline overhead** — the raw model forward passes the pipeline needed (one CLIP
   image pass per image, the text passes for the texts it encoded, the quality scorers,
   the face analyser) timed on their own, as a fraction of the end-to-end time.
4. **GPU** (only when ``torch.cuda.is_available()``) — ``quick`` (ViT-B-32) and
   ``standard`` (ViT-L-14 + face + quality) images/s in float16/bfloat16 and the achieved
   fraction of the chip's peak FLOP/s, FLOPs counted with
   ``torch.utils.flop_counter.FlopCounterMode``.

CLIP weights are random (``random:ARCH``, see ``naive_baseline.random_embedder``): speed
depends on the architecture, not the weights. On CPU both job classes use ``--arch``
(default ViT-B-32) so the comparison is like for like.

Prompts: with ``--prompts distinct`` (default) every image has its own prompt and every
trial starts from an emptied text cache plus one warm-up request, so prompt texts and their
foils are encoded cold (fixed texts — safety concepts, aesthetic pairs, CLIP-IQA prompts —
are warm after the warm-up request, in both pipeline and baseline). Every batch size and
repeat of a configuration uses the same requests. ``--prompts shared`` gives every image the same prompt, as when
one prompt is rendered with many seeds; texts are then encoded once per run.

Usage::

    .venv/bin/python benchmarks/throughput.py                       # short CPU run (few minutes on 2 cores)
    .venv/bin/python benchmarks/throughput.py --images 32 --batch-sizes 1,8,32 --threads 8
    .venv/bin/python benchmarks/throughput.py --images 4 --batch-sizes 1,4 --presets image_generation --no-baseline
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import machine  # noqa: E402
from benchmarks.naive_baseline import NaiveBaseline, clip_source, fresh_embedder, preregister_embedder  # noqa: E402
from imagejury.core.config import EvaluatorConfig  # noqa: E402
from imagejury.core.pipeline import Evaluator, PreparedItem  # noqa: E402
from imagejury.core.planning import plan_item  # noqa: E402
from imagejury.models.registry import ModelRegistry  # noqa: E402

log = logging.getLogger("throughput")

# -- request generation -------------------------------------------------------------------
COLOURS = ("red", "blue", "green", "yellow", "orange", "purple", "pink", "brown", "black", "white")
OBJECTS = ("cup", "vase", "clock", "umbrella", "guitar", "book", "bottle", "lamp", "candle", "camera")
SETTINGS = ("beach", "forest", "city", "mountain", "desert", "office", "kitchen", "park")
STYLES = ("watercolor painting", "oil painting", "photograph", "pencil sketch", "anime", "3d render")
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


class PromptSource:
    """Deterministic prompt/instructions/attributes triples, never repeating across calls."""

    def __init__(self) -> None:
        self._combos = itertools.product(
            range(len(STYLES)), range(len(SETTINGS)), range(len(OBJECTS)), range(len(COLOURS))
        )

    def next(self) -> dict[str, Any]:
        s, g, o, c = next(self._combos)
        colour, obj, setting, style = COLOURS[c], OBJECTS[o], SETTINGS[g], STYLES[s]
        return {
            "generation_prompt": f"a {colour} {obj} on a wooden table in a {setting}, {style}",
            "evaluation_instructions": f"The {obj} must be {colour}. No text or watermark in the image.",
            "input_attributes": {"style": style, "colour": colour, "setting": setting},
            "headshot": {
                "generation_prompt": f"professional headshot of a woman wearing a {colour} jacket in a {setting}, {style}",
                "evaluation_instructions": f"The jacket must be {colour}. No text or watermark in the image.",
            },
        }


def make_images(folder: Path, n: int, size: int) -> list[Path]:
    """``n`` distinct JPEG files cut from the scikit-image sample photos (no downloads)."""
    from tests.support.photos import photo

    paths = []
    for i in range(n):
        im = photo(PHOTOS[i % len(PHOTOS)])
        k = i // len(PHOTOS)
        w, h = im.size
        im = im.crop((k % 7, k % 5, w - (k % 3), h - (k % 11)))  # distinct content hashes
        im.thumbnail((size, size), Image.LANCZOS)
        p = folder / f"img{i:04d}.jpg"
        im.save(p, quality=92)
        paths.append(p)
    return paths


def make_headshots(folder: Path, n: int) -> tuple[list[Path], Path]:
    """``n`` distinct astronaut head-and-shoulders crops and one identity reference."""
    from tests.support.faces import astronaut

    base = astronaut()
    ref = folder / "reference.jpg"
    base.save(ref, quality=92)
    paths = []
    for i in range(n):
        dx, dy = (i * 3) % 40, (i * 7) % 30
        crop = base.crop((100 + dx, 10 + dy, 340 + dx, 270 + dy))
        p = folder / f"head{i:04d}.jpg"
        crop.save(p, quality=92)
        paths.append(p)
    return paths, ref


def make_requests(
    preset: str, job_class: str, images: list[Path], ref: Path | None, prompts: PromptSource, mode: str
) -> list[dict]:
    shared = prompts.next() if mode == "shared" else None
    out = []
    for p in images:
        fields = copy.deepcopy(shared or prompts.next())
        head = fields.pop("headshot")
        req = {"generated_image_url": str(p), "task_type": preset, "job_class": job_class, **fields}
        if preset == "headshot":
            req.update(head)
            req["reference_images"] = [{"url": str(ref), "kind": "identity"}]
            req.pop("input_attributes")
        out.append(req)
    return out


# -- measurement --------------------------------------------------------------------------
@dataclass
class RunResult:
    preset: str
    job_class: str
    batch: int
    images: int
    seconds: float
    latencies_ms: list[float]
    decode_ms: list[float]
    judge_seconds: dict[str, float]
    image_passes: int
    text_passes: int
    judges: list[str] = field(default_factory=list)
    peak_rss_mib: float = 0.0
    repeats: list[float] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def run_pipeline(
    ev: Evaluator, embedder: Any, requests: list[dict], batch: int, preset: str, job_class: str
) -> tuple[RunResult, list[PreparedItem], list[str]]:
    """Decode + judge ``requests`` in batches of ``batch``; returns timings, the prepared items
    and the texts the run encoded (for the overhead measurement)."""
    ev.config.evaluation.batch_size = batch
    before_js = dict(ev.judge_seconds)
    img0, txt0 = embedder.image_forward_calls, embedder.text_forward_calls
    texts_before = set(embedder._text_cache)
    latencies: list[float] = []
    decode: list[float] = []
    prepared_all: list[PreparedItem] = []
    start = time.perf_counter()
    for i in range(0, len(requests), batch):
        t0 = time.perf_counter()
        prepared = [ev.prepare(r) for r in requests[i : i + batch]]
        evaluations = ev.run_prepared(prepared)
        done = (time.perf_counter() - t0) * 1000
        for p, e in zip(prepared, evaluations):
            if p.item is None or getattr(e, "failure_code", None):
                raise RuntimeError(f"benchmark request failed: {p.failure_detail or getattr(e, 'failure_detail', e)}")
        latencies += [done] * len(prepared)
        decode += [p.decode_ms for p in prepared]
        prepared_all += prepared
    seconds = time.perf_counter() - start
    js = {k: v - before_js.get(k, 0.0) for k, v in ev.judge_seconds.items() if v - before_js.get(k, 0.0) > 0}
    new_texts = [t for t in embedder._text_cache if t not in texts_before]
    res = RunResult(
        preset,
        job_class,
        batch,
        len(requests),
        seconds,
        latencies,
        decode,
        js,
        embedder.image_forward_calls - img0,
        embedder.text_forward_calls - txt0,
        peak_rss_mib=machine.peak_rss_mib(),
    )
    return res, prepared_all, new_texts


def planned_judges(ev: Evaluator, prepared: list[PreparedItem]) -> list[str]:
    names: list[str] = []
    for p in prepared:
        assert p.item is not None
        pool = ev.pool(p.item.job_class)
        for pj in plan_item(p.item, pool).judges:
            if pj.judge.name not in names:
                names.append(pj.judge.name)
    return names


def raw_forward_seconds(
    ev: Evaluator, embedder: Any, prepared: list[PreparedItem], texts: list[str], judges: list[str], batch: int
) -> dict[str, float]:
    """The model forward passes the pipeline needed, timed alone (no judges, no caches)."""
    items = [p.item for p in prepared if p.item is not None]
    images = [it.image for it in items]
    out: dict[str, float] = {}
    with torch.inference_mode(), embedder._autocast():
        t0 = time.perf_counter()
        for i in range(0, len(images), embedder.batch_size):
            pix = embedder._image_tensor([im.convert("RGB") for im in images[i : i + embedder.batch_size]]).to(
                embedder.device
            )
            embedder._image_features(pix)
        out["clip image"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(0, len(texts), embedder.text_batch_size):
            embedder._text_features(texts[i : i + embedder.text_batch_size])
        out[f"clip text ({len(texts)} texts)"] = time.perf_counter() - t0
    ms = ev.model_set(items[0].job_class)
    scorers: list[str] = []
    if "technical_signals" in judges or "technical_quality" in judges:
        scorers.append("signals")  # the pixel statistics both technical judges share (one pass per image)
    if "technical_quality" in judges:
        scorers += ["brisque_pypi", "niqe", "piqe"]
    for name in scorers:
        scorer = ms.quality_scorer(name)
        t0 = time.perf_counter()
        for i in range(0, len(images), batch):
            scorer.score(images[i : i + batch])
        out[name] = time.perf_counter() - t0
    if "identity" in judges or "headshot" in judges:
        analyzer = ms.face_analyzer()
        refs = {r.key: r.image for it in items for r in it.references}
        t0 = time.perf_counter()
        analyzer.analyze(images + list(refs.values()))
        out["face (dlib)"] = time.perf_counter() - t0
    return out


# -- tables ---------------------------------------------------------------------------------
def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(x) for x in r) + " |")
    return "\n".join(lines)


def f(x: float, nd: int = 2) -> str:
    return "n/a" if x != x else f"{x:.{nd}f}"


# -- GPU ------------------------------------------------------------------------------------
# Dense (no sparsity) tensor-core peaks in FLOP/s for 16-bit inputs, from the vendors' data sheets:
# NVIDIA H100 SXM5 and H200 SXM: 989.4 TFLOP/s BF16/FP16 dense (1,979 with 2:4 sparsity);
# A100 SXM: 312 TFLOP/s; L4: 121; A10G: 125 (NVIDIA product data sheets).
PEAK_16BIT = {"H200": 989.4e12, "H100": 989.4e12, "A100": 312e12, "L4": 121e12, "A10G": 125e12}


def chip_peak(name: str) -> tuple[float | None, str]:
    for key, value in PEAK_16BIT.items():
        if key in name:
            return value, f"{key} dense 16-bit {value / 1e12:.0f} TFLOP/s (NVIDIA data sheet)"
    return None, f"no peak figure for '{name}' in the table"


def image_flops(embedder: Any, n: int = 8) -> float:
    """FLOPs of the image tower per image, counted by FlopCounterMode on a batch of ``n``."""
    from torch.utils.flop_counter import FlopCounterMode

    size = getattr(embedder.model.visual, "image_size", 224)
    size = (size, size) if isinstance(size, int) else tuple(size)
    pix = torch.zeros((n, 3, *size), device=embedder.device)
    with torch.inference_mode(), embedder._autocast(), FlopCounterMode(display=False) as counter:
        embedder._image_features(pix)
    return counter.get_total_flops() / n


def text_flops(embedder: Any, n: int = 8) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), embedder._autocast(), FlopCounterMode(display=False) as counter:
        embedder._text_features(["a photo of a red cup on a table"] * n)
    return counter.get_total_flops() / n


def gpu_section(args: argparse.Namespace, folder: Path) -> str:
    """The accelerator table; ``--gpu-section-on-cpu`` runs the same code on the CPU (a code check, not a figure)."""
    device = "cuda"
    if not torch.cuda.is_available():
        if not args.gpu_section_on_cpu:
            msg = "GPU section skipped: torch.cuda.is_available() is False on this machine."
            print(msg)
            return f"## GPU\n\n{msg}\n"
        device = "cpu"
    cuda = device == "cuda"
    name = torch.cuda.get_device_name(0) if cuda else "CPU (code check only)"
    peak, peak_src = chip_peak(name)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    archs = (
        (("quick", "ViT-B-32"), ("standard", "ViT-L-14")) if cuda else (("quick", args.arch), ("standard", args.arch))
    )
    rows = []
    for (job_class, arch), n_images in zip(archs, (args.gpu_images, args.gpu_standard_images)):
        sub = folder / f"gpu-{job_class}"
        sub.mkdir(exist_ok=True)
        images = make_images(sub, n_images, args.size)
        heads, ref = make_headshots(sub, n_images)
        for dtype in args.gpu_dtypes.split(","):
            registry = ModelRegistry()
            batch = min(args.gpu_batch, n_images)
            cfg = EvaluatorConfig.model_validate(
                {
                    "models": {
                        "clip": clip_source(arch),
                        "device": device,
                        "dtype": dtype,
                        "torch_threads": args.threads,
                    },
                    "evaluation": {"batch_size": batch},
                }
            )
            emb = fresh_embedder(arch, device=device, dtype=dtype, batch_size=batch)
            preregister_embedder(registry, cfg.models.settings(), emb, job_class)
            ev = Evaluator(cfg, registry=registry)
            problems = ev.warmup([job_class])
            if problems:
                log.warning("GPU warmup problems: %s", problems)
            fi, ft = image_flops(emb), text_flops(emb)
            for preset in [p.strip() for p in args.gpu_presets.split(",") if p.strip()]:
                imgs = heads if preset == "headshot" else images
                prompts = PromptSource()
                run_pipeline(
                    ev,
                    emb,
                    make_requests(preset, job_class, imgs[: min(8, n_images)], ref, prompts, "shared"),
                    batch,
                    preset,
                    job_class,
                )
                sync()
                if cuda:
                    torch.cuda.reset_peak_memory_stats()
                reqs = make_requests(preset, job_class, imgs, ref, prompts, args.prompts)
                res, prepared, _ = run_pipeline(ev, emb, reqs, batch, preset, job_class)
                sync()
                pix_imgs = [p.item.image for p in prepared if p.item is not None]
                t0 = time.perf_counter()
                emb.encode_images(pix_imgs)  # the image tower alone on the same decoded images
                sync()
                tower_s = time.perf_counter() - t0
                achieved = (fi * res.images + ft * res.text_passes) / res.seconds
                rows.append(
                    [
                        preset,
                        job_class,
                        arch,
                        dtype,
                        res.images,
                        batch,
                        f(res.images_per_s, 1),
                        f(len(pix_imgs) / tower_s, 1),
                        f"{fi / 1e9:.3g}",
                        res.text_passes,
                        f"{achieved / 1e12:.3g}",
                        f(100 * achieved / peak, 2) + "%" if peak else "n/a",
                        f(100 * fi * len(pix_imgs) / tower_s / peak, 2) + "%" if peak else "n/a",
                        f(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else "n/a",
                        f(statistics.mean(res.decode_ms), 1),
                        ", ".join(
                            f"{k} {v / res.images * 1000:.2f}"
                            for k, v in sorted(res.judge_seconds.items(), key=lambda kv: -kv[1])[:4]
                        ),
                    ]
                )
                print(f"GPU {preset}/{job_class}/{dtype}: {res.images_per_s:.1f} img/s", flush=True)
            del ev, emb, registry
            if cuda:
                torch.cuda.empty_cache()
    header = [
        "preset",
        "job class",
        "CLIP",
        "dtype",
        "images",
        "batch",
        "pipeline img/s",
        "image tower alone img/s (preprocess incl.)",
        "GFLOP/image (image tower)",
        "text passes",
        "achieved TFLOP/s (pipeline)",
        "pipeline of peak",
        "image tower of peak",
        "max GPU mem GiB",
        "decode ms/img",
        "top judges ms/img",
    ]
    note = (
        f"Device: {name}; peak: {peak_src}. Achieved FLOP/s = (image-tower FLOPs × images + text-tower FLOPs × text "
        "passes) / end-to-end seconds; dlib face and BRISQUE/NIQE/PIQE run on the CPU and count no FLOPs. "
        "Prompts: " + args.prompts + ". Planned targets on one H200: ≥ 1,000 img/s standard, ≥ 4,000 quick."
    )
    return "## GPU\n\n" + table(header, rows) + "\n\n" + note + "\n"


# -- main -------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=4, help="images per configuration")
    ap.add_argument("--batch-sizes", default="1,4", help="comma-separated evaluation batch sizes")
    ap.add_argument("--job-classes", default="quick,standard")
    ap.add_argument("--presets", default="image_generation,headshot", help="image_generation, headshot")
    ap.add_argument(
        "--arch",
        default="ViT-B-32",
        help="open_clip architecture (random weights) for both job classes on CPU, or a full CLIP source "
        "(local-dir:PATH, ViT-B-32:openai, ...) to time real weights",
    )
    ap.add_argument("--size", type=int, default=512, help="longer side of the test images")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--prompts", choices=("distinct", "shared"), default="distinct")
    ap.add_argument(
        "--repeats", type=int, default=1, help="measure each configuration this many times; report the fastest"
    )
    ap.add_argument("--no-baseline", action="store_true", help="skip the naive baseline")
    ap.add_argument("--gpu-images", type=int, default=1024, help="images for the quick job class on GPU")
    ap.add_argument(
        "--gpu-standard-images",
        type=int,
        default=128,
        help="images for the standard job class on GPU (its dlib and BRISQUE/NIQE/PIQE run on the CPU)",
    )
    ap.add_argument("--gpu-presets", default="image_generation,headshot")
    ap.add_argument(
        "--gpu-section-on-cpu", action="store_true", help="run the GPU section's code on the CPU with --arch (tests)"
    )
    ap.add_argument("--gpu-batch", type=int, default=256)
    ap.add_argument("--gpu-dtypes", default="float16,bfloat16")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "throughput.md"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    info = machine.describe()
    batch_sizes = sorted({int(b) for b in args.batch_sizes.split(",")})
    job_classes = [j.strip() for j in args.job_classes.split(",") if j.strip()]
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    unknown = set(presets) - {"image_generation", "headshot"}
    if unknown:
        ap.error(f"unsupported preset(s) {sorted(unknown)}: choose image_generation, headshot")
    command = "python benchmarks/throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])

    tmp = tempfile.TemporaryDirectory(prefix="imagejury-bench-")
    folder = Path(tmp.name)
    images = make_images(folder, args.images, args.size)
    heads, ref = make_headshots(folder, args.images)

    # -- the pipeline: one CLIP instance shared by every judge and both job classes ------------
    rss0 = machine.rss_mib()
    t0 = time.perf_counter()
    registry = ModelRegistry()
    cfg = EvaluatorConfig.model_validate({"models": {"clip": clip_source(args.arch), "torch_threads": args.threads}})
    embedder = fresh_embedder(args.arch)
    for jc in job_classes:
        preregister_embedder(registry, cfg.models.settings(), embedder, jc)
    ev = Evaluator(cfg, registry=registry)
    problems = ev.warmup(job_classes)
    if problems:
        log.warning("warmup problems (those judges will fail the run): %s", problems)
    ours_load_s, ours_load_mib = time.perf_counter() - t0, machine.rss_mib() - rss0

    prompts = PromptSource()
    warm_fields = {
        pr: make_requests(pr, "quick", (heads if pr == "headshot" else images)[:1], ref, prompts, "shared")[0]
        for pr in presets
    }

    def warm_request(preset: str, jc: str) -> dict:
        return {**warm_fields[preset], "job_class": jc}

    baseline: NaiveBaseline | None = None
    base_load_s = base_load_mib = 0.0
    if not args.no_baseline:
        # the judges any configuration plans (planned on one prepared request each)
        all_judges: list[str] = []
        for preset in presets:
            for jc in job_classes:
                all_judges += [
                    j for j in planned_judges(ev, [ev.prepare(warm_request(preset, jc))]) if j not in all_judges
                ]
        rss1 = machine.rss_mib()
        t0 = time.perf_counter()
        baseline = NaiveBaseline(
            all_judges, cfg.models.settings(), "standard", lambda: fresh_embedder(args.arch), clipscore=True
        )
        base_load_s, base_load_mib = time.perf_counter() - t0, machine.rss_mib() - rss1

    def baseline_trial(
        preset: str, jc: str, res: RunResult, prepared: list[PreparedItem]
    ) -> tuple[dict[str, float], int]:
        """One baseline run on the pipeline run's decoded items, from the same cache state."""
        assert baseline is not None
        items = [p.item for p in prepared if p.item is not None]
        warm = [p.item for p in [ev.prepare(warm_request(preset, jc))] if p.item is not None]
        names = list(res.judges) + (["clipscore"] if "prompt_adherence" in res.judges else [])
        baseline.clear_text_caches()
        baseline.run(warm, names)  # the same warm-up request the pipeline had
        baseline.reset_timings()
        img_before = baseline.image_passes()
        baseline.run(items, names)
        return {n: baseline.timings[n].seconds for n in names}, baseline.image_passes() - img_before

    results: list[RunResult] = []
    last: dict[tuple[str, str], tuple[RunResult, list[PreparedItem], list[str]]] = {}
    base_trials: dict[tuple[str, str], list[tuple[dict[str, float], int]]] = {}
    for preset in presets:
        imgs = heads if preset == "headshot" else images
        for jc in job_classes:
            # the same requests for every batch size and repeat: with the text cache emptied before each
            # trial, batch sizes then differ only in batching, not in which prompts they drew
            reqs = make_requests(preset, jc, imgs, ref, prompts, args.prompts)
            for b in batch_sizes:
                runs = []
                for _ in range(args.repeats):
                    # same cache state before every measured run, pipeline and baseline alike: empty text
                    # cache, then one warm-up request (fixed label texts, lazy imports); not measured
                    embedder.clear_text_cache()
                    run_pipeline(ev, embedder, [warm_request(preset, jc)], 1, preset, jc)
                    res, prepared, texts = run_pipeline(ev, embedder, reqs, b, preset, jc)
                    res.judges = planned_judges(ev, prepared)
                    runs.append((res, prepared, texts))
                    if baseline is not None and b == batch_sizes[-1]:
                        # interleaved with the pipeline's trials, so both see the same background load
                        base_trials.setdefault((preset, jc), []).append(baseline_trial(preset, jc, res, prepared))
                res, prepared, texts = min(
                    runs, key=lambda t: t[0].seconds
                )  # the run least disturbed by other processes
                res.repeats = [round(r.seconds, 3) for r, _, _ in runs]
                results.append(res)
                last[(preset, jc)] = (res, prepared, texts)
                print(f"{preset}/{jc} batch {b}: {res.images_per_s:.2f} img/s (runs: {res.repeats} s)", flush=True)

    # -- the pipeline's raw forward passes (overhead) ------------------------------------------
    overhead_rows = []
    for (preset, jc), (res, prepared, texts) in last.items():
        raws = [raw_forward_seconds(ev, embedder, prepared, texts, res.judges, res.batch) for _ in range(args.repeats)]
        raw = min(raws, key=lambda d: sum(d.values()))
        total_raw = sum(raw.values())
        overhead_rows.append(
            [
                preset,
                jc,
                res.batch,
                f(res.seconds, 2),
                f(total_raw, 2),
                f(100 * total_raw / res.seconds, 1) + "%",
                ", ".join(f"{k} {v:.2f}" for k, v in raw.items()),
            ]
        )

    # -- the naive baseline, side by side ---------------------------------------------------------
    compare_rows: list[list[Any]] = []
    baseline_note = ""
    if baseline is not None:
        for (preset, jc), (res, prepared, _) in last.items():
            trials = base_trials[(preset, jc)]
            per_check, img_passes = min(trials, key=lambda t: sum(v for k, v in t[0].items() if k != "clipscore"))
            per_check = dict(per_check)
            clip_s = per_check.pop("clipscore", 0.0)
            img_passes -= res.images if clip_s else 0  # the CLIPScore check's passes belong to the other variant
            decode_s = sum(res.decode_ms) / 1000
            ours = res.seconds
            base_same = sum(per_check.values()) + decode_s
            base_clip = base_same - per_check.get("prompt_adherence", 0.0) + clip_s
            compare_rows.append(
                [
                    preset,
                    jc,
                    res.images,
                    res.batch,
                    f(ours / res.images, 3),
                    f(base_same / res.images, 3),
                    f(base_same / ours, 2) + "×",
                    f(base_clip / res.images, 3),
                    f(base_clip / ours, 2) + "×",
                    f"{res.image_passes / res.images:.1f} vs {img_passes / res.images:.1f}",
                    ", ".join(f"{k} {v / res.images:.2f}" for k, v in sorted(per_check.items(), key=lambda kv: -kv[1]))
                    + (f"; clipscore {clip_s / res.images:.2f}" if clip_s else ""),
                ]
            )
        baseline_note = (
            f"Model loading: pipeline {ours_load_s:.1f} s / +{ours_load_mib:.0f} MiB RSS (1 CLIP instance shared by all judges "
            f"and both job classes, 1 dlib, one set of quality scorers); baseline {base_load_s:.1f} s / +{base_load_mib:.0f} MiB "
            f"RSS ({baseline.model_instances()} model instances: one per check). Process peak RSS after everything: "
            f"{machine.peak_rss_mib():.0f} MiB."
        )

    # -- write ------------------------------------------------------------------------------------
    rows = []
    for r in results:
        rows.append(
            [
                r.preset,
                r.job_class,
                r.batch,
                r.images,
                f(r.images_per_s, 2),
                f(pct(r.latencies_ms, 50), 0),
                f(pct(r.latencies_ms, 99), 0),
                f(statistics.mean(r.decode_ms), 1),
                f"{r.image_passes / r.images:.1f}",
                f"{r.text_passes / r.images:.1f}",
                f(r.peak_rss_mib, 0),
            ]
        )
    judge_rows = []
    for (preset, jc), (res, _, _) in last.items():
        for name, sec in sorted(res.judge_seconds.items(), key=lambda kv: -kv[1]):
            judge_rows.append(
                [preset, jc, res.batch, name, f(1000 * sec / res.images, 1), f(100 * sec / res.seconds, 1) + "%"]
            )

    parts = [
        "# Throughput (CPU)\n",
        f"Command: `{command}`  \n{machine.markdown(info)}  \n"
        f"CLIP: `{clip_source(args.arch)}` for both job classes (random: = random weights, speed only); prompts: {args.prompts}; "
        f"images: {args.images} per configuration, {args.size} px JPEG from scikit-image sample photos.\n",
        "## Pipeline: images/s, latency, decode, memory\n",
        table(
            [
                "preset",
                "job class",
                "batch",
                "images",
                "images/s",
                "p50 latency ms",
                "p99 latency ms",
                "decode ms/img",
                "CLIP image passes/img",
                "CLIP text passes/img",
                "process peak RSS MiB (so far)",
            ],
            rows,
        ),
        "\nLatency of a request = decode + judging of the batch it is in (all of a batch finish together). "
        "With few images p99 is the maximum. Peak RSS is `getrusage` maxrss of the process so far (torch included).\n",
        "## Per-judge time (largest batch)\n",
        table(["preset", "job class", "batch", "judge", "ms/img", "share of wall"], judge_rows),
        "\n## Pipeline overhead: raw model forward passes vs end-to-end (largest batch)\n",
        table(
            [
                "preset",
                "job class",
                "batch",
                "end-to-end s",
                "raw forwards s",
                "raw / end-to-end (target ≥ 85%)",
                "raw parts (s)",
            ],
            overhead_rows,
        ),
        "\nRaw forwards: one CLIP image pass per image, the text-tower passes for exactly the texts the run encoded, "
        "the pixel signal metrics, BRISQUE/NIQE/PIQE (standard) and dlib on every image and reference, each timed alone with no judge logic (values a little over 100% are timing noise). "
        "The rest of end-to-end is decode, planning, judge logic and result building.\n",
    ]
    if compare_rows:
        parts += [
            "## Pipeline vs naive baseline (same images, same run, largest batch)\n",
            table(
                [
                    "preset",
                    "job class",
                    "images",
                    "batch",
                    "pipeline s/img",
                    "naive, same checks s/img",
                    "ratio",
                    "naive, CLIPScore for prompt s/img",
                    "ratio",
                    "CLIP image passes/img (pipeline vs naive)",
                    "naive per check s/img",
                ],
                compare_rows,
            ),
            "\nNaive, same checks: every judge as a separate check with its own model instance (own CLIP for prompt "
            "adherence, instructions, attributes, aesthetics, safety and technical_quality's CLIP-IQA; own BRISQUE/NIQE/PIQE; "
            "own dlib for identity and for headshot) and its own forward passes; same decoded images (decode time added "
            "once, as the pipeline pays it). Naive, CLIPScore for prompt: the same, but the prompt check is a "
            "torchmetrics-style CLIPScore (own CLIP, image + prompt per call) instead of the contrastive prompt-adherence "
            "judge — cheaper per image (1 text instead of the prompt, its parts and their foils) but it answers less. "
            "Each baseline trial runs right after a pipeline trial on the same decoded items from the same text-cache "
            "state (empty, then one warm-up request); with --repeats the fastest of each side is kept. Each baseline check "
            "processes all the images in one call. Ratio = naive / pipeline (> 1: the pipeline is faster). Target: ≥ 2× for a request with prompt, "
            "instructions, attributes and quality checks.\n",
            baseline_note + "\n",
        ]
    parts.append("\n" + gpu_section(args, folder))
    text = "\n".join(parts)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    (out.with_suffix(".json")).write_text(
        json.dumps({"command": command, "machine": info, "runs": [r.__dict__ for r in results]}, indent=1, default=str)
    )
    print(text)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
