"""Load test of ``imagejury serve`` on loopback: submissions/s, submit latency, completion rate.

Bounded in count (``--requests``) and time (``--max-seconds``), and loopback only: the
target must be 127.0.0.1 / ::1 / localhost (a load test is not to be pointed at anyone
else's service). By default it starts its own server on a free port with a fresh store
(``--allow-missing-models``, the tiny test CLIP when present), so the figures measure
the service — admission, SQLite, the worker loop, webhooks off — on this machine.

    python benchmarks/load_test.py --requests 200 --concurrency 8 --max-seconds 120
    python benchmarks/load_test.py --url http://127.0.0.1:8000 --token TOKEN   # a running server

Prints a table and writes ``benchmarks/results/load.md``.
"""

from __future__ import annotations

import argparse
import base64
import io
import logging
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "load.md"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
log = logging.getLogger("load_test")


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    codes: dict[int, int] = field(default_factory=dict)
    accepted: list[str] = field(default_factory=list)
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _png_data_uri(i: int) -> str:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (128, 128), (240, 240, 240))
    d = ImageDraw.Draw(img)
    colour = [(215, 25, 30), (30, 160, 50), (30, 70, 215)][i % 3]
    d.ellipse((24 + i % 16, 24, 104, 104 - i % 16), fill=colour)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(q / 100 * (len(s) - 1)))))
    return s[k]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    workdir: Path, queue_depth: int, batch_size: int, separate_worker: bool
) -> tuple[list[subprocess.Popen], str, str]:
    token = "load-test-token-0001"
    port = _free_port()
    cfg = workdir / "config.toml"
    cfg.write_text(f"[server]\nmax_queue_depth = {queue_depth}\nbatch_size = {batch_size}\nbatch_max_wait_s = 0.1\n")
    models = ["--allow-missing-models"]
    tiny = ROOT / "tests" / "assets" / "tiny_shapes_clip"
    if (tiny / "open_clip_config.json").exists():
        models += ["--clip", f"local-dir:{tiny}"]
    common = ["--db", str(workdir / "load.db"), "--config", str(cfg), *models]
    cmd = [
        sys.executable,
        "-m",
        "imagejury.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        *common,
    ]
    if separate_worker:
        cmd.append("--no-worker")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", IMAGEJURY_TOKENS=f"{token}=load")
    logf = (workdir / "server.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=logf, stderr=subprocess.STDOUT)
    procs = [proc]
    if separate_worker:
        wlog = (workdir / "worker.log").open("wb")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "imagejury.cli", "worker", *common],
                cwd=ROOT,
                env=env,
                stdout=wlog,
                stderr=subprocess.STDOUT,
            )
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: see {workdir / 'server.log'}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return procs, url, token
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    for p in procs:
        p.kill()
    raise SystemExit("server did not start within 120 s")


def run(url: str, token: str, n: int, concurrency: int, max_seconds: float) -> dict:
    host = urlparse(url).hostname or ""
    if host not in LOOPBACK:
        raise SystemExit(f"refusing to load-test {host!r}: loopback targets only (127.0.0.1, ::1, localhost)")
    images = [_png_data_uri(i) for i in range(16)]
    tally = Tally()
    t_start = time.monotonic()
    hard_stop = t_start + max_seconds
    headers = {"Authorization": f"Bearer {token}"}

    def submit(i: int) -> None:
        if time.monotonic() > hard_stop:
            return
        body = {
            "generated_image_url": images[i % len(images)],
            "task_type": "image_generation",
            "generation_prompt": "a coloured circle",
            "client_ref": f"load-{i}",
        }
        t0 = time.perf_counter()
        try:
            r = client.post("/v1/evaluations", json=body)
        except httpx.HTTPError:
            with tally.lock:
                tally.errors += 1
            return
        ms = (time.perf_counter() - t0) * 1000
        with tally.lock:
            tally.latencies_ms.append(ms)
            tally.codes[r.status_code] = tally.codes.get(r.status_code, 0) + 1
            if r.status_code == 202:
                tally.accepted.append(r.json()["id"])

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(base_url=url, headers=headers, timeout=30, limits=limits) as client:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(submit, range(n)))
        submit_s = time.monotonic() - t_start

        # completion: the queue is FIFO, so wait on each accepted evaluation in order (one
        # poll in flight at a time: the poller must not become the load)
        terminal: dict[str, dict] = {}
        for eid in tally.accepted:
            while time.monotonic() < hard_stop:
                body = client.get(f"/v1/evaluations/{eid}", params={"embed": "action"}).json()
                if body["status"] in ("completed", "failed"):
                    terminal[eid] = body
                    break
                time.sleep(0.1)
        total_s = time.monotonic() - t_start

    completed = [b for b in terminal.values() if b["status"] == "completed"]
    e2e = []
    for b in completed:
        created = datetime.fromisoformat(b["created_at"].replace("Z", "+00:00"))
        done = datetime.fromisoformat(b["completed_at"].replace("Z", "+00:00"))
        e2e.append((done - created).total_seconds())
    accepted = len(tally.accepted)
    return {
        "requests": n,
        "concurrency": concurrency,
        "sent": len(tally.latencies_ms) + tally.errors,
        "accepted": accepted,
        "rejected_429": tally.codes.get(429, 0),
        "other_codes": {c: k for c, k in tally.codes.items() if c not in (202, 429)},
        "transport_errors": tally.errors,
        "submit_seconds": submit_s,
        "accepted_per_s": accepted / submit_s if submit_s else float("nan"),
        "submit_p50_ms": _percentile(tally.latencies_ms, 50),
        "submit_p99_ms": _percentile(tally.latencies_ms, 99),
        "completed": len(completed),
        "failed": len(terminal) - len(completed),
        "unfinished": accepted - len(terminal),
        "completion_rate": len(completed) / accepted if accepted else float("nan"),
        "completed_per_s": len(completed) / total_s if total_s else float("nan"),
        "e2e_p50_s": statistics.median(e2e) if e2e else float("nan"),
        "e2e_p99_s": _percentile(e2e, 99),
        "wall_seconds": total_s,
    }


def render(res: dict, note: str) -> str:
    rows = [
        ("submissions sent / accepted (202) / 429", f"{res['sent']} / {res['accepted']} / {res['rejected_429']}"),
        ("concurrency", str(res["concurrency"])),
        ("accepted submissions/s", f"{res['accepted_per_s']:.1f}"),
        ("submit latency p50 / p99 (ms)", f"{res['submit_p50_ms']:.1f} / {res['submit_p99_ms']:.1f}"),
        (
            "end-to-end completion rate",
            f"{res['completion_rate']:.1%} ({res['completed']} completed, "
            f"{res['failed']} failed, {res['unfinished']} unfinished)",
        ),
        ("completed evaluations/s (whole run)", f"{res['completed_per_s']:.2f}"),
        ("submit→completed p50 / p99 (s)", f"{res['e2e_p50_s']:.2f} / {res['e2e_p99_s']:.2f}"),
        ("wall time (s)", f"{res['wall_seconds']:.1f}"),
    ]
    if res["other_codes"] or res["transport_errors"]:
        rows.append(("other answers / transport errors", f"{res['other_codes']} / {res['transport_errors']}"))
    width = max(len(r[0]) for r in rows)
    lines = ["| measure | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    text = "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
    print(text)
    return "\n".join(lines) + "\n\n" + note + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="a running loopback server (default: start one)")
    p.add_argument("--token", help="bearer token for --url")
    p.add_argument("--requests", type=int, default=200, help="submissions to send (max 5000)")
    p.add_argument("--concurrency", type=int, default=8, help="parallel clients (max 64)")
    p.add_argument("--max-seconds", type=float, default=120.0, help="hard cap on the whole run (max 900)")
    p.add_argument("--queue-depth", type=int, default=1000, help="max_queue_depth of the started server")
    p.add_argument("--batch-size", type=int, default=16, help="worker batch size of the started server")
    p.add_argument(
        "--separate-worker",
        action="store_true",
        help="API-only server plus a separate `imagejury worker` process (default: embedded worker)",
    )
    p.add_argument("--output", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    n = min(max(1, args.requests), 5000)
    conc = min(max(1, args.concurrency), 64)
    max_s = min(max(1.0, args.max_seconds), 900.0)

    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="imagejury-load-") as tmp:
        if args.url:
            if not args.token:
                raise SystemExit("--token is required with --url")
            url, token = args.url.rstrip("/"), args.token
        else:
            procs, url, token = start_server(Path(tmp), args.queue_depth, args.batch_size, args.separate_worker)
        try:
            res = run(url, token, n, conc, max_s)
        finally:
            for proc in procs:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPU(s) visible (load average {load} at the end: "
        f"shared with other work), Python {platform.python_version()}, {platform.system()}"
    )
    note = (
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {machine}; "
        f"{'own server, ' if procs else 'given server, '}"
        f"{'separate worker process' if args.separate_worker else 'embedded worker'}, `--allow-missing-models`, CPU, "
        f"128x128 PNG data URIs, {n} requests, concurrency {conc}, cap {max_s:g} s. "
        "Judging time dominates completion; submit latency is admission only (validation + one SQLite "
        "transaction with synchronous=FULL)."
    )
    title = "separate worker process" if args.separate_worker else "embedded worker"
    section = f"## {title}\n\n" + render(res, note)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    header = "# Load test: `imagejury serve` on loopback\n\n"
    old = args.output.read_text() if args.output.exists() else header
    parts = [p for p in old.split("\n## ") if p and not p.startswith("# ") and not p.startswith(title)]
    args.output.write_text(header + "".join("## " + p.rstrip() + "\n\n" for p in parts) + section)
    log.info("wrote %s", args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
