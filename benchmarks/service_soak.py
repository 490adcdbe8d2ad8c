"""Soak ``imagejury serve``: rounds of evaluations, the server's RSS and open fds per round.

Two leaks this watches for (issue 15, findings 1 and 4):
- memory that grows with every batch while a model is missing (the normal offline state):
  by default the server runs with ``--allow-missing-models`` and a CLIP that is not in
  the cache, so every batch meets the missing model;
- file descriptors that grow with every burst of requests (a store connection per
  short-lived server thread, never closed).

Each round submits ``--per-round`` evaluations from ``--clients`` concurrent clients,
each on its own fresh connection (so the server sees new threads), waits until all are
terminal, waits ``--pause`` seconds (long enough for the server's idle threads to be
retired, so every round meets new threads), then reads ``/proc/<pid>/status`` (VmRSS)
and ``/proc/<pid>/fd``.

    python benchmarks/service_soak.py --rounds 6 --per-round 100
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.server import ServerProcess, data_uri, example_request, png_bytes  # noqa: E402

# no --clip: the default CLIPs (ViT-L-14 / ViT-B-32, openai) are not in an offline cache
MISSING_CLIP = ["--allow-missing-models", "--threads", "1"]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def one(base_url: str, token: str, body: dict) -> str:
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        r = c.post("/v1/evaluations", json=body)
        r.raise_for_status()
        return r.json()["id"]


def wait_all(srv: ServerProcess, ids: list[str], timeout: float) -> dict[str, int]:
    outcomes: dict[str, int] = {}
    with srv.client() as c:
        for eid in ids:
            ev = srv.wait_terminal(c, eid, timeout=timeout)
            key = ev["status"] if ev["status"] == "completed" else f"failed:{ev['failure_code']}"
            outcomes[key] = outcomes.get(key, 0) + 1
    return outcomes


def run_round(srv: ServerProcess, n: int, clients: int, seed: int) -> tuple[float, dict[str, int]]:
    bodies = [example_request(data_uri(png_bytes("red", "circle", size=96, seed=seed * 10_000 + i))) for i in range(n)]
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(clients) as pool:
        ids = list(pool.map(lambda b: one(srv.base_url, "tok-alpha-0001", b), bodies))
    outcomes = wait_all(srv, ids, timeout=600)
    return time.perf_counter() - t0, outcomes


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--per-round", type=int, default=100)
    p.add_argument("--clients", type=int, default=16, help="concurrent clients, each request on a fresh connection")
    p.add_argument("--with-model", action="store_true", help="use the tiny test CLIP instead of a missing one")
    p.add_argument(
        "--pause",
        type=float,
        default=12.0,
        help="idle seconds after each round: AnyIO retires idle server threads after 10 s, so the next "
        "round runs on new threads (a per-thread leak shows only then)",
    )
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="imagejury-soak-"))
    srv = ServerProcess(
        work,
        server={"max_queue_depth": 100_000, "batch_max_wait_s": 0.05},
        model_args=None if args.with_model else MISSING_CLIP,
    ).start()
    try:
        assert srv.proc is not None
        pid = srv.proc.pid
        print(f"server pid {pid}; model: {'tiny test CLIP' if args.with_model else 'CLIP missing (offline)'}")
        print("| round | evaluations so far | seconds | RSS MB | open fds | outcomes |")
        print("|---:|---:|---:|---:|---:|---|")
        print(f"| 0 | 0 | - | {rss_mb(pid):.0f} | {open_fds(pid)} | (after start) |")
        for r in range(1, args.rounds + 1):
            secs, outcomes = run_round(srv, args.per_round, args.clients, r)
            time.sleep(args.pause)
            done = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
            print(
                f"| {r} | {r * args.per_round} | {secs:.1f} | {rss_mb(pid):.0f} | {open_fds(pid)} | {done} |",
                flush=True,
            )
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
