"""Wall time of the commands a user types first: ``--help``, ``models`` and a technical-only
``evaluate`` (no CLIP judge, so no CLIP should load).

Each command runs in a fresh process ``--runs`` times; the table shows the median and the
fastest run in seconds. ``--before DIR`` also times an older checkout of the repository
(run there as ``python -m evaluator.cli`` from the checkout, the pre-package layout), so
one run prints before and after side by side on the same machine.

    python benchmarks/startup.py --runs 5 [--before /tmp/old-checkout]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from imagejury.judges.registry import judge_registry

REPO = Path(__file__).resolve().parents[1]
IMAGE = REPO / "examples" / "coffee.jpg"
#: every judge but the pixel-only one (technical_quality runs CLIP-IQA too)
OFF_JUDGES = tuple(n for n in judge_registry.names() if n != "technical_signals")


def technical_only_config(folder: Path) -> Path:
    """A config that leaves only ``technical_signals`` on (no model weights at all)."""
    path = folder / "technical_only.toml"
    path.write_text("".join(f"[judges.{name}]\nenabled = false\n" for name in OFF_JUDGES))
    return path


def commands(config: Path) -> dict[str, list[str]]:
    return {
        "imagejury --help": ["--help"],
        "imagejury models": ["models", "--json"],
        "imagejury evaluate (technical only)": [
            "evaluate",
            str(IMAGE),
            "--job-class",
            "quick",
            "--config",
            str(config),
        ],
    }


def time_runs(argv: list[str], cwd: Path, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
        )
        out.append(time.perf_counter() - t0)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr[-800:]}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--before", type=Path, help="an older checkout to time as well (pre-package layout)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cmds = commands(technical_only_config(Path(tmp)))
        rows = []
        for label, tail in cmds.items():
            after = time_runs([sys.executable, "-m", "imagejury", *tail], Path(tmp), args.runs)
            before = (
                time_runs([sys.executable, "-m", "evaluator.cli", *tail], args.before, args.runs)
                if args.before
                else None
            )
            rows.append((label, before, after))
    print("| command | before median (min) s | after median (min) s |\n|---|---|---|")
    for label, before, after in rows:
        b = f"{statistics.median(before):.2f} ({min(before):.2f})" if before else "—"
        print(f"| {label} | {b} | {statistics.median(after):.2f} ({min(after):.2f}) |")


if __name__ == "__main__":
    main()
