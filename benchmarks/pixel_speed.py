"""Per-image cost of the pixel measures against one CLIP image forward.

One process, 1024×1024 photo-like input (scikit-image's astronaut, enlarged), torch
threads as given. Times, per image: the working copy (shrink, tensor, grey), the shared
planes, the signals, NIQE, PIQE and brisque_pypi on that copy; and one image forward
of ``random:ViT-B-32`` and ``random:ViT-L-14`` (random weights: speed only). The shared
planes (local mean and deviation under the MSCN window; the half-size grey and its own) are timed
on their own rows; each measure's row is its own work on a copy that already has them,
so the rows add up to what a ``standard`` request pays. Prints the
table and the two ratios issue 13 sets targets for: all ``standard`` pixel measures ≤ 15%
of a ViT-L-14 forward, the ``quick`` signals ≤ 25% of a ViT-B-32 forward.

``--before DIR`` times an older checkout's pixel measures (whole ``standard`` and
``quick`` sets, working copy included) in the same interleaved rounds, for a before/after
in one run; the checkout must have this layout (``evaluator/``, ``judges/``, ``models/``).

``--size N`` times an N×N input instead (the targets are set at 1024; 512 shows what
measuring on a half-size copy would cost, which ``graphics_quality.py --half`` shows the
verdicts of).

Run: ``python benchmarks/pixel_speed.py [--threads 2] [--repeats 9] [--device cpu] [--size 1024] [--before DIR]``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from imagejury.models.quality import NSS_SCORERS, create_scorer  # noqa: E402
from imagejury.models.quality.working import make_working_copies  # noqa: E402
from tests.support import photos  # noqa: E402


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def interleaved(stages: dict[str, Callable[[], object]], rounds: int, device: str) -> dict[str, float]:
    """Median ms of each stage over ``rounds`` rounds, every round timing every stage once
    in turn: this box's speed drifts by tens of percent over seconds, and interleaving
    makes the drift hit every stage alike, so the ratios between them hold."""
    for fn in stages.values():  # warm-up
        fn()
    runs: dict[str, list[float]] = {name: [] for name in stages}
    for _ in range(rounds):
        for name, fn in stages.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            runs[name].append((time.perf_counter() - t0) * 1000)
    return {name: statistics.median(v) for name, v in runs.items()}


def clip_forward(source: str, img: Image.Image, device: str) -> Callable[[], object]:
    from imagejury.models.provider import ModelSet
    from imagejury.models.registry import ModelRegistry
    from imagejury.models.settings import ModelSettings

    embedder = ModelSet(ModelSettings(clip=source, device=device), registry=ModelRegistry()).embedder()
    return lambda: embedder.encode_images([img])


class _TreeFinder:
    """Resolves ``imagejury`` and its sub-packages inside another checkout of this
    repository (the same folder → package mapping as ``pyproject.toml``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def find_spec(self, name: str, path: object = None, target: object = None) -> ModuleSpec | None:
        parts = name.split(".")
        if parts[0] != "imagejury":
            return None
        top = parts[1] if len(parts) > 1 and parts[1] in ("judges", "models") else None
        base = self.root / top / Path(*parts[2:]) if top else self.root / "evaluator" / Path(*parts[1:])
        if (base / "__init__.py").is_file():
            return importlib.util.spec_from_file_location(
                name, base / "__init__.py", submodule_search_locations=[str(base)]
            )
        if base.with_suffix(".py").is_file():
            return importlib.util.spec_from_file_location(name, base.with_suffix(".py"))
        # never fall through to the installed package: that would time our code as "before"
        raise ModuleNotFoundError(f"{name} is not in the checkout {self.root}", name=name)


COPY, MEAN_DEV, HALF = (
    "working copy (shrink, tensor, grey)",
    "shared plane: local mean + deviation",
    "shared plane: half-size grey + its local mean/deviation",
)
QUICK_MEASURES = ("signals",)
MEASURES = (*QUICK_MEASURES, *NSS_SCORERS)  # a standard request's
PIXEL_ROWS = (COPY, MEAN_DEV, HALF, *MEASURES)  # every stage a standard request pays
B32, L14 = "CLIP ViT-B-32 image forward", "CLIP ViT-L-14 image forward"
BEFORE_STD, BEFORE_QUICK = "before: standard pixel measures (all)", "before: quick pixel signals (all)"


PixelSet = Callable[[Image.Image], None]


def job_measures(job_class: str) -> tuple[str, ...]:
    """The pixel measures a request of ``job_class`` runs (``quick``: the signals only)."""
    return MEASURES if job_class == "standard" else QUICK_MEASURES


def pixel_sets(quality: Any, working: Any, device: str) -> tuple[PixelSet, PixelSet]:
    """The ``standard`` and ``quick`` pixel measures of one version of the package (its
    ``models.quality`` and ``working`` modules), each a callable that measures an image
    from scratch (working copy included)."""

    def measuring(job_class: str) -> PixelSet:
        scorers = [quality.create_scorer(n, device=device) for n in job_measures(job_class)]

        def run(img: Image.Image) -> None:
            copy = working.make_working_copies([img], device=device)[0]
            for scorer in scorers:
                scorer.score([copy])

        return run

    return measuring("standard"), measuring("quick")


def pixel_sets_of_checkout(root: Path, device: str) -> tuple[PixelSet, PixelSet]:
    """``pixel_sets`` of another checkout (``--before``). Its modules are imported under
    the same names in a swapped-out module table, so both versions live in one process."""
    ours = {k: v for k, v in sys.modules.items() if k == "imagejury" or k.startswith("imagejury.")}
    for k in ours:
        del sys.modules[k]
    finder = _TreeFinder(root)
    sys.meta_path.insert(0, finder)
    try:
        quality = importlib.import_module("imagejury.models.quality")
        working = importlib.import_module("imagejury.models.quality.working")
        return pixel_sets(quality, working, device)
    finally:
        sys.meta_path.remove(finder)
        for k in [k for k in sys.modules if k == "imagejury" or k.startswith("imagejury.")]:
            del sys.modules[k]
        sys.modules.update(ours)


def is_checkout(root: Path) -> bool:
    return (root / "models" / "quality" / "__init__.py").is_file()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=9, help="interleaved rounds")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=1024, help="side of the square input (default 1024)")
    ap.add_argument("--no-clip", action="store_true", help="skip the CLIP forwards")
    ap.add_argument("--before", type=Path, help="an older checkout whose pixel measures to time in the same rounds")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    if args.size < 16:
        ap.error("--size must be at least 16")
    if args.before and not is_checkout(args.before):
        ap.error(f"--before {args.before}: not a checkout of this repository (no models/quality/ there)")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: torch sees no CUDA device here")
    torch.set_num_threads(args.threads)
    img = photos.photo("astronaut").resize((args.size, args.size), Image.Resampling.BICUBIC)
    copy = make_working_copies([img], device=args.device)[0]

    def fresh(plane: str) -> Callable[[], object]:
        """Time one shared plane alone: drop it from the copy's cache and recompute it."""

        def run() -> object:
            copy._planes.pop(plane, None)
            return copy.canvas_stats() if plane == "canvas" else copy.half_stats()

        return run

    stages: dict[str, Callable[[], object]] = {
        COPY: lambda: make_working_copies([img], device=args.device),
        MEAN_DEV: fresh("canvas"),
        HALF: fresh("half"),
    }
    for name in MEASURES:
        scorer = create_scorer(name, device=args.device)
        stages[name] = lambda s=scorer: s.score([copy])
    if args.before:
        before_standard, before_quick = pixel_sets_of_checkout(args.before, args.device)
        stages[BEFORE_STD], stages[BEFORE_QUICK] = lambda: before_standard(img), lambda: before_quick(img)
    if not args.no_clip:
        stages[B32] = clip_forward("random:ViT-B-32", img, args.device)
        stages[L14] = clip_forward("random:ViT-L-14", img, args.device)
    ms = interleaved(stages, args.repeats, args.device)
    standard = sum(ms[k] for k in PIXEL_ROWS)
    quick = sum(ms[k] for k in (COPY, MEAN_DEV, *QUICK_MEASURES))
    side = f"{args.size}×{args.size}"
    print(f"device {args.device}, torch threads {args.threads}, {side} input, median of {args.repeats} rounds\n")
    print("| stage | ms / image |\n|---|---|")
    for k in PIXEL_ROWS:
        print(f"| {k} | {ms[k]:.1f} |")
    print(f"| **standard pixel measures (all above)** | **{standard:.1f}** |")
    print(f"| **quick pixel signals (copy + local mean/deviation + signals)** | **{quick:.1f}** |")
    if args.before:
        print(f"| {BEFORE_STD} | {ms[BEFORE_STD]:.1f} |\n| {BEFORE_QUICK} | {ms[BEFORE_QUICK]:.1f} |")
    if not args.no_clip:
        print(f"| {B32} | {ms[B32]:.1f} |\n| {L14} | {ms[L14]:.1f} |")
        at = "" if args.size == 1024 else " at 1024 px"  # the targets are set for 1024² inputs
        print(f"\nstandard pixel measures / ViT-L-14 forward: {standard / ms[L14]:.1%} (target ≤ 15%{at})")
        print(f"quick signals / ViT-B-32 forward: {quick / ms[B32]:.1%} (target ≤ 25%{at})")
        if args.before:
            print(
                f"before ({args.before}): standard {ms[BEFORE_STD] / ms[L14]:.1%}, quick {ms[BEFORE_QUICK] / ms[B32]:.1%}"
            )


if __name__ == "__main__":
    main()
