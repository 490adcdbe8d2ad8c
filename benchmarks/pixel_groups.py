"""Operations per image when same-size images are measured as one group.

On an accelerator the pixel measures are launch-bound: each is hundreds of small tensor
operations, and each operation is one kernel launch (~5–10 µs from Python) whatever the
image size. ``working.measuring_groups`` therefore measures all same-size copies of a
batch as one group there. This script counts, with ``torch.profiler``, the kernel-level
operations (an ATen operation counts once unless operations below it do the work; views,
allocations and no-op conversions count nothing) that a ``quick`` (signals) and a
``standard`` (signals, NIQE, PIQE, brisque_pypi) request's pixel measures run for groups
of 1, 8 and 16 images, and times them. On CUDA it also counts the device
synchronisations (``torch.cuda.set_sync_debug_mode``); on CPU there are none to count.

On CPU the accelerator's grouping is forced and the images are walked in one band, as on
an accelerator, so the counts are what a GPU would launch (a slight over-count: NIQE's
per-image 36×36 covariance is CPU-side bookkeeping there).
The CPU times are not a GPU estimate. With ``--device cuda`` nothing is forced and the
times are the device's own.

Run: ``python benchmarks/pixel_groups.py [--size 512] [--groups 1 8 16] [--device cpu]``.
The table goes to stdout; ``torch.profiler``'s own start/stop (and, without a GPU,
device-count) log lines go to stderr (``2>/dev/null`` hides them).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from benchmarks.pixel_speed import job_measures  # noqa: E402
from imagejury.models.quality import create_scorer, nss, working  # noqa: E402
from imagejury.models.quality.working import make_working_copies  # noqa: E402
from tests.support import photos  # noqa: E402

# operations that launch no kernel of their own: views, allocations, dtype queries, and
# a ``to`` / ``detach`` that changes nothing (one that copies has a ``copy_`` below it)
_NO_KERNEL = frozenset(
    "aten::" + name
    for name in (
        "view", "_reshape_alias", "reshape", "_unsafe_view", "slice", "select", "as_strided", "as_strided_", "narrow",
        "unsqueeze", "squeeze", "permute", "transpose", "t", "numpy_T", "expand", "expand_as", "view_as", "alias",
        "unbind", "split", "chunk", "detach", "detach_", "lift_fresh", "resolve_conj", "resolve_neg", "flatten",
        "empty", "empty_like", "empty_strided", "resize_", "result_type", "to", "is_nonzero", "item",
        "_local_scalar_dense",
    )
)  # fmt: skip
SETS = {job_class: job_measures(job_class) for job_class in ("quick", "standard")}


@contextlib.contextmanager
def accelerator_grouping(device: str) -> Iterator[None]:
    """On CPU, measure as an accelerator does (same-size copies together, one band);
    both settings are put back afterwards."""
    if device != "cpu":
        yield
        return
    saved = nss.BAND_VALUES, working.GROUP_ON_CPU
    nss.BAND_VALUES, working.GROUP_ON_CPU = 1 << 40, True
    try:
        yield
    finally:
        nss.BAND_VALUES, working.GROUP_ON_CPU = saved


def _kernels(event: Any) -> int:
    """Kernels under one profiler event: its ATen children's, or one of its own when none
    of them launches anything (so ``to`` → ``_to_copy`` → ``copy_`` is one kernel, and an
    ``index`` whose children are only views is one too)."""
    below = sum(_kernels(c) for c in event.cpu_children if c.name.startswith("aten::"))
    return below or int(event.name not in _NO_KERNEL)


@contextlib.contextmanager
def counting_syncs(device: str) -> Iterator[list[int]]:
    """Count the device synchronisations inside the block (CUDA's sync debug mode warns on
    each); yields a one-element list that holds the count afterwards (0 off CUDA)."""
    found = [0]
    if not device.startswith("cuda"):
        yield found
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield found
        finally:
            torch.cuda.set_sync_debug_mode("default")
    found[0] = sum("synchroniz" in str(w.message) for w in caught)


def count_and_time(images: list, names: Sequence[str], device: str) -> tuple[int, int, float]:
    """Kernel-level operations, device synchronisations (CUDA only) and wall seconds of
    scoring ``images`` as one batch."""
    scorers = [create_scorer(n, device=device) for n in names]

    def run() -> None:
        copies = make_working_copies(images, device=device)
        for scorer in scorers:
            scorer.score(copies)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    run()  # warm-up: one-time uploads and caches are not counted below
    t0 = time.perf_counter()
    run()
    seconds = time.perf_counter() - t0
    # the counted run is not timed: the profiler and the sync warnings both cost time
    with profile(activities=[ProfilerActivity.CPU]) as prof, counting_syncs(device) as syncs:
        run()
    roots = [e for e in prof.events() if e.name.startswith("aten::") and not _under_aten(e)]
    return sum(_kernels(e) for e in roots), syncs[0], seconds


def _under_aten(event: Any) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::"):
            return True
        parent = parent.cpu_parent
    return False


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=512, help="square image side, px")
    ap.add_argument("--groups", type=int, nargs="+", default=[1, 8, 16], help="group sizes")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: torch sees no CUDA device here")
    if min(args.groups) < 1 or args.size < 16:
        ap.error("--groups must be ≥ 1 and --size ≥ 16")
    torch.set_num_threads(args.threads)
    base = photos.photo("astronaut")
    images = [photos.noise(base, 1.0 + i, seed=i).resize((args.size, args.size)) for i in range(max(args.groups))]
    print(f"device {args.device}, {args.size}×{args.size} images, one group per run\n")
    print("| set | group of | operations | per image | device syncs | ms per image |")
    print("|---|---|---|---|---|---|")
    with accelerator_grouping(args.device):
        for label, names in SETS.items():
            for n in args.groups:
                ops, syncs, seconds = count_and_time(images[:n], names, args.device)
                print(f"| {label} | {n} | {ops} | {ops / n:.0f} | {syncs} | {1000 * seconds / n:.1f} |")


if __name__ == "__main__":
    main()
