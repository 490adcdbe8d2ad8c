"""Start a REAL ``imagejury serve`` (or ``worker``) in a subprocess on 127.0.0.1, for tests.

The server runs as users run it — ``python -m imagejury.cli serve --port P --db D
--config C`` — with a throw-away store, a TOML config whose ``[server]`` section the
test chooses, and the environment's tokens and webhook secret. ``start()`` waits for
``/healthz``; ``kill()`` sends SIGKILL (a crash), ``restart()`` starts again on the
same store. Logs go to files in the test's folder and are shown when a start fails.

Models: ``--allow-missing-models`` always; the tiny shapes CLIP of
``tests/assets/tiny_shapes_clip`` is used when present (else the CLIP judges are
listed as skipped), so no test downloads anything.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
TINY_CLIP = ROOT / "tests" / "assets" / "tiny_shapes_clip"
TOKENS = {"tok-alpha-0001": "alpha", "tok-bravo-0002": "bravo"}
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"imagejury-test-secret-32-bytes!!").decode()
STARTUP_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return json.dumps(str(v))


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def model_flags() -> list[str]:
    flags = ["--allow-missing-models", "--threads", "1"]
    if (TINY_CLIP / "open_clip_config.json").exists():
        flags += ["--clip", f"local-dir:{TINY_CLIP}"]
    return flags


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        IMAGEJURY_TOKENS=",".join(f"{t}={o}" for t, o in TOKENS.items()),
        IMAGEJURY_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )
    env.pop("IMAGEJURY_CONFIG", None)
    env.update(extra or {})
    return env


@dataclass
class ServerProcess:
    """One ``imagejury serve`` child process and how to reach it."""

    workdir: Path
    server: dict[str, Any] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen | None = None
    starts: int = 0
    #: model flags instead of ``model_flags()`` (e.g. no CLIP at all: a model missing offline)
    model_args: list[str] | None = None

    @property
    def db(self) -> Path:
        return self.workdir / "store.db"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"server-{self.starts}.log"

    def command(self) -> list[str]:
        cfg = write_config(self.workdir / "config.toml", {"server": self.server} if self.server else {})
        return [
            sys.executable,
            "-m",
            "imagejury.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--db",
            str(self.db),
            "--config",
            str(cfg),
            "--log-level",
            "warning",
            *(model_flags() if self.model_args is None else self.model_args),
            *self.extra_args,
        ]

    def start(self) -> ServerProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.starts += 1
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.command(), cwd=ROOT, env=child_env(self.env), stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.base_url + "/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer /healthz within {STARTUP_TIMEOUT_S:g} s:\n{self.log_tail()}")

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up (a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> ServerProcess:
        self.stop()
        return self.start()

    def client(self, token: str | None = "tok-alpha-0001", **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(kw.pop("headers", {}))
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30.0, **kw)

    def wait_terminal(self, client: httpx.Client, evaluation_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """Poll GET until completed/failed (the way a client would)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = client.get(f"/v1/evaluations/{evaluation_id}")
            r.raise_for_status()
            body = r.json()
            if body["status"] in ("completed", "failed"):
                return body
            time.sleep(0.15)
        raise AssertionError(f"evaluation {evaluation_id} not terminal after {timeout:g} s:\n{self.log_tail()}")


def start_worker(workdir: Path, db: Path, server: dict[str, Any] | None = None) -> subprocess.Popen:
    """A standalone ``imagejury worker`` on ``db`` (stop it with .terminate())."""
    cfg = write_config(workdir / "worker.toml", {"server": server} if server else {})
    log = (workdir / "worker.log").open("wb")
    cmd = [sys.executable, "-m", "imagejury.cli", "worker", "--db", str(db), "--config", str(cfg), *model_flags()]
    return subprocess.Popen(cmd, cwd=ROOT, env=child_env(), stdout=log, stderr=subprocess.STDOUT)


# ---------------------------------------------------------------- images
def png_bytes(color: str = "red", shape: str = "circle", size: int = 128, seed: int = 0) -> bytes:
    import numpy as np

    from tests.support.shapes import render

    img = render(color, shape, np.random.default_rng(seed), size=size)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def data_uri(png: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(png).decode()


def example_request(image_url: str, **overrides: Any) -> dict[str, Any]:
    """A request shaped like docs/api/request.example.json, every field filled."""
    req: dict[str, Any] = {
        "generated_image_url": image_url,
        "task_type": "image_generation",
        "task_description": "a simple flat illustration of one shape",
        "generation_prompt": "a red circle",
        "evaluation_instructions": "prioritise the colour; ignore the background",
        "input_attributes": {"style": "flat"},
        "reference_images": [],
        "run_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
        "client_ref": "test-client-ref",
        "job_class": "standard",
    }
    req.update(overrides)
    return req


# ---------------------------------------------------------------- little loopback servers
@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float


class HookReceiver:
    """A webhook receiver on 127.0.0.1 that records each POST; ``fail_first`` answers 500 first."""

    def __init__(self, fail_first: int = 0) -> None:
        self.received: list[Received] = []
        self.fail_first = fail_first
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n)
                with outer._lock:
                    outer.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body, time.time()))
                    fail = len(outer.received) <= outer.fail_first
                self.send_response(500 if fail else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def for_evaluation(self, evaluation_id: str) -> list[Received]:
        with self._lock:
            out = []
            for r in self.received:
                try:
                    if json.loads(r.body)["data"]["id"] == evaluation_id:
                        out.append(r)
                except (ValueError, KeyError, TypeError):
                    continue
            return out

    def wait_for(self, evaluation_id: str, count: int = 1, timeout: float = 60.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.for_evaluation(evaluation_id)
            if len(got) >= count:
                return got
            time.sleep(0.1)
        raise AssertionError(f"no webhook for {evaluation_id} within {timeout:g} s (got {len(self.received)} in all)")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Redirector:
    """A loopback HTTP server that answers every GET with a redirect to ``target``."""

    def __init__(self, target: str) -> None:
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer.hits += 1
                self.send_response(302)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str = "/image.png") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
