"""Per-image cost of the pixel measures against one CLIP image forward (issue 13.3).

One process, 1024×1024 photo-like input (scikit-image's astronaut, enlarged), torch
threads as given. Times, per image: the shared working copy (shrink, tensor, grey,
half-size), the signals, NIQE, PIQE and brisque_pypi on that copy; and one image forward
of ``random:ViT-B-32`` and ``random:ViT-L-14`` (random weights: speed only). The shared
planes (local mean and deviation under the MSCN window, the half-size grey) are timed
on their own rows; each measure's row is its own work on a copy that already has them,
so the rows add up to what a ``standard`` request pays. Prints the
table and the two ratios the issue sets targets for: all ``standard`` pixel measures ≤ 15%
of a ViT-L-14 forward, the ``quick`` signals ≤ 25% of a ViT-B-32 forward.

Run: ``python benchmarks/pixel_speed.py [--threads 2] [--repeats 5] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from imagejury.models.quality import create_scorer  # noqa: E402
from imagejury.models.quality.working import make_working_copies  # noqa: E402
from tests.support import photos  # noqa: E402


def timed(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        runs.append((time.perf_counter() - t0) * 1000)
    return statistics.median(runs)


def clip_forward_ms(source: str, img: Image.Image, repeats: int, device: str) -> float:
    from imagejury.models.provider import ModelSet
    from imagejury.models.registry import ModelRegistry
    from imagejury.models.settings import ModelSettings

    embedder = ModelSet(ModelSettings(clip=source, device=device), registry=ModelRegistry()).embedder()
    return timed(lambda: embedder.encode_images([img]), repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-clip", action="store_true", help="skip the CLIP forwards")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    img = photos.photo("astronaut").resize((1024, 1024), Image.Resampling.BICUBIC)
    copy = make_working_copies([img], device=args.device)[0]

    def fresh(plane: str) -> Callable[[], object]:
        """Time one shared plane alone: drop it from the copy's cache and recompute it."""

        def run() -> object:
            copy._planes.pop(plane, None)
            return copy.canvas_stats() if plane == "canvas" else copy.half

        return run

    rows = {
        "working copy (shrink, tensor, grey)": timed(
            lambda: make_working_copies([img], device=args.device), args.repeats
        ),
        "shared plane: local mean + deviation": timed(fresh("canvas"), args.repeats),
        "shared plane: half-size grey": timed(fresh("half"), args.repeats),
    }
    for name in ("signals", "niqe", "piqe", "brisque_pypi"):
        scorer = create_scorer(name, device=args.device)
        rows[name] = timed(lambda s=scorer: s.score([copy]), args.repeats)
    standard = sum(rows.values())
    quick_rows = ("working copy (shrink, tensor, grey)", "shared plane: local mean + deviation", "signals")
    quick = sum(rows[k] for k in quick_rows)
    print(f"device {args.device}, torch threads {args.threads}, 1024×1024 input, median of {args.repeats}\n")
    print("| stage | ms / image |\n|---|---|")
    for k, v in rows.items():
        print(f"| {k} | {v:.1f} |")
    print(f"| **standard pixel measures (all above)** | **{standard:.1f}** |")
    print(f"| **quick pixel signals (copy + local stats + signals)** | **{quick:.1f}** |")
    if not args.no_clip:
        b32 = clip_forward_ms("random:ViT-B-32", img, args.repeats, args.device)
        l14 = clip_forward_ms("random:ViT-L-14", img, max(1, args.repeats // 2), args.device)
        print(f"| CLIP ViT-B-32 image forward | {b32:.1f} |\n| CLIP ViT-L-14 image forward | {l14:.1f} |")
        print(f"\nstandard pixel measures / ViT-L-14 forward: {standard / l14:.0%} (target ≤ 15%)")
        print(f"quick signals / ViT-B-32 forward: {quick / b32:.0%} (target ≤ 25%)")


if __name__ == "__main__":
    main()
