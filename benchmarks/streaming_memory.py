"""Peak memory of ``Evaluator.evaluate_many`` for 100 and 1,000 requests (issue 13.5).

Each count runs in a fresh subprocess that feeds ``evaluate_many`` a generator of
requests, each carrying its own PNG (``--size`` px square, default 256; random content,
so nothing is shared), and reports ``getrusage`` peak RSS and the wall time. The judges are the cheap test judges of
``tests/support/pipeline_judges.py`` plus the real ``technical_signals`` (which keeps a
working copy per image in the feature cache), so the number is decode + working copies +
results — the part that used to grow with the number of requests.

At 1024 px the 1,000-request run took over 30 minutes on a loaded 2-core machine (the
signals dominate); 256 px keeps it to minutes, and the property measured — memory does
not grow with the number of requests — does not depend on the image size (only the
per-batch plateau does).

``--iter`` consumes ``evaluate_iter`` instead and keeps no result, which separates the
working set from the returned list.

Run: ``python benchmarks/streaming_memory.py [--counts 100 1000] [--batch-size 8] [--size 256] [--iter]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import base64, io, json, resource, sys, time
import numpy as np
from PIL import Image
sys.path.insert(0, {root!r})
from imagejury.core.pipeline import Evaluator
from tests.support import pipeline_judges as pj
from imagejury.judges.technical_signals import TechnicalSignalsJudge

count, batch, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
__import__("torch").set_num_threads(2)
registry = pj.make_registry(*pj.ALL, TechnicalSignalsJudge)
ev = Evaluator(pj.make_config(["t_redness", "technical_signals"], batch_size=batch), judges=registry)

def requests():
    rng = np.random.default_rng(0)
    for i in range(count):
        arr = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "PNG", compress_level=1)
        yield {{"generated_image_url": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode(),
               "task_type": "image_generation"}}

t0 = time.perf_counter()
if sys.argv[4] == "iter":  # keep no result: a count of each status only
    n = completed = 0
    for e in ev.evaluate_iter(requests()):
        n, completed = n + 1, completed + (e.status == "completed")
else:
    out = ev.evaluate_many(requests())
    n, completed = len(out), sum(e.status == "completed" for e in out)
print(json.dumps({{"n": n, "completed": completed, "seconds": time.perf_counter() - t0,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def run(count: int, batch: int, size: int, api: str = "many") -> dict:
    code = CHILD.format(root=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", code, str(count), str(batch), str(size), api],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--size", type=int, default=256, help="side of each request's square PNG")
    ap.add_argument(
        "--iter",
        action="store_true",
        help="consume evaluate_iter and keep no results (evaluate_many returns all of them, which grows)",
    )
    args = ap.parse_args(argv)
    api = "iter" if args.iter else "many"
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print("| requests | image px | batch size | call | completed | wall s | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    for count in args.counts:
        r = run(count, args.batch_size, args.size, api)
        print(
            f"| {count} | {args.size} | {args.batch_size} | evaluate_{api} | {r['completed']}/{r['n']} "
            f"| {r['seconds']:.0f} | {r['peak_rss_mib']:.0f} |"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
