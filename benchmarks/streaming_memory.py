"""Peak memory of ``Evaluator.evaluate_many`` for 100 and 1,000 requests (issue 13.5).

Each count runs in a fresh subprocess that feeds ``evaluate_many`` a generator of
requests, each carrying its own 1024×1024 PNG (random content, so nothing is shared), and
reports ``getrusage`` peak RSS. The judges are the cheap test judges of
``tests/support/pipeline_judges.py`` plus the real ``technical_signals`` (which keeps a
working copy per image in the feature cache), so the number is decode + working copies +
results — the part that used to grow with the number of requests.

Run: ``python benchmarks/streaming_memory.py [--counts 100 1000] [--batch-size 8]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import base64, io, json, resource, sys
import numpy as np
from PIL import Image
sys.path.insert(0, {root!r})
from imagejury.core.pipeline import Evaluator
from tests.support import pipeline_judges as pj
from imagejury.judges.technical_signals import TechnicalSignalsJudge

count, batch = int(sys.argv[1]), int(sys.argv[2])
registry = pj.make_registry(*pj.ALL, TechnicalSignalsJudge)
ev = Evaluator(pj.make_config(["t_redness", "technical_signals"], batch_size=batch), judges=registry)

def requests():
    rng = np.random.default_rng(0)
    for i in range(count):
        arr = rng.integers(0, 255, (1024, 1024, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "PNG", compress_level=1)
        yield {{"generated_image_url": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode(),
               "task_type": "image_generation"}}

out = ev.evaluate_many(requests())
print(json.dumps({{"n": len(out), "completed": sum(e.status == "completed" for e in out),
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def run(count: int, batch: int) -> dict:
    code = CHILD.format(root=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", code, str(count), str(batch)], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    print("| requests | batch size | completed | peak RSS MiB |")
    print("|---|---|---|---|")
    for count in args.counts:
        r = run(count, args.batch_size)
        print(f"| {count} | {args.batch_size} | {r['completed']}/{r['n']} | {r['peak_rss_mib']:.0f} |")


if __name__ == "__main__":
    main()
