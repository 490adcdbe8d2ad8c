"""``imagejury serve`` (the API, with an embedded worker by default) and ``imagejury worker``.

    imagejury serve --host 127.0.0.1 --port 8000 --db imagejury.db [model flags] [--config FILE]
    imagejury worker --db imagejury.db [model flags]      # more workers on the same store

Server settings come from ``[server]`` in the config file and the environment
(``IMAGEJURY_TOKENS``, ``IMAGEJURY_WEBHOOK_SECRET``); flags here win over both.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imagejury.errors import ImagejuryError

log = logging.getLogger("imagejury.server")


def _server_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("service")
    g.add_argument(
        "--db", type=Path, help="SQLite store (created on first start; default imagejury.db or [server].db_path)"
    )
    g.add_argument("--asset-dir", type=Path, help="uploaded assets (default: <db>.assets)")
    g.add_argument("--batch-size", type=int, help="max jobs per worker batch")
    g.add_argument("--batch-max-wait", type=float, help="seconds to wait for a batch to fill")
    g.add_argument("--lease-seconds", type=float, help="job lease; a dead worker's jobs return after it")
    g.add_argument("--job-timeout", type=float, help="seconds from submission after which a job ends timed_out")
    g.add_argument("--max-queue-depth", type=int, help="pending jobs past which submissions get 429")
    g.add_argument(
        "--allow-loopback-callbacks",
        action="store_true",
        default=None,
        help="testing only: allow callback_url on 127.0.0.0/8 / ::1 (plain http included)",
    )
    g.add_argument(
        "--allow-loopback-urls",
        action="store_true",
        default=None,
        help="testing only: allow image URLs on 127.0.0.0/8 / ::1 (plain http included)",
    )


def _config_source(args: argparse.Namespace) -> str:
    return str(getattr(args, "config", None) or os.environ.get("IMAGEJURY_CONFIG") or "the config file")


def _settings(args: argparse.Namespace, config: Any, **extra: Any) -> Any:
    from imagejury.service.settings import ServerSettings

    return ServerSettings.load(
        config.server,
        source=_config_source(args),
        db_path=args.db,
        asset_dir=args.asset_dir,
        batch_size=args.batch_size,
        batch_max_wait_s=args.batch_max_wait,
        lease_seconds=args.lease_seconds,
        job_timeout_s=args.job_timeout,
        max_queue_depth=args.max_queue_depth,
        allow_loopback_callbacks=args.allow_loopback_callbacks,
        **extra,
    )


def _config(args: argparse.Namespace) -> Any:
    """The evaluator config of ``serve``/``worker``; a bad file or flag is a ``ConfigError``
    (one sentence naming the key and the file, never a value)."""
    from imagejury.core.options import config_from_args

    config = config_from_args(args)
    if args.allow_loopback_urls:
        config = config.model_copy(update={"media": config.media.model_copy(update={"allow_loopback_urls": True})})
    return config


def _setup_error(exc: Exception) -> int:
    """A setup problem as one line on stderr (exit 2): the messages name keys, never values."""
    print(f"error: {exc}", file=sys.stderr)
    return 2


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from imagejury.service.app import create_app
    from imagejury.service.timeouts import header_timeout_protocol
    from imagejury.service.webhooks import refuse_without_secret

    try:
        config = _config(args)
        settings = _settings(args, config, embedded_worker=False if args.no_worker else None)
        app = create_app(config, settings)
        refuse_without_secret(app.state.store, settings)
    except (ImagejuryError, ValueError, OSError) as exc:  # a bad [server] section, flag or unusable db path
        return _setup_error(exc)
    log.info("serving on http://%s:%d (db %s)", args.host, args.port, settings.db_path)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=args.access_log,
        http=header_timeout_protocol(settings.request_header_timeout_s),
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from imagejury.service.metrics import Metrics, serve_metrics
    from imagejury.service.store import Store
    from imagejury.service.webhooks import WebhookSender, refuse_without_secret
    from imagejury.service.worker import Worker

    try:
        config = _config(args)
        settings = _settings(args, config)
        store = Store(settings.db_path, synchronous=settings.sqlite_synchronous, pool_size=settings.sqlite_pool_size)
        refuse_without_secret(store, settings)
    except (ImagejuryError, ValueError, OSError) as exc:
        return _setup_error(exc)
    metrics = Metrics(store.status_counts)
    if args.metrics_port:
        serve_metrics(metrics, args.metrics_host, args.metrics_port)
    sender = WebhookSender(store, settings, metrics)
    worker = Worker(store, settings, config, metrics=metrics, on_result=sender.wake)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sender.start()
    worker.start()
    log.info("worker %s on %s", worker.id, settings.db_path)
    stop.wait()
    log.info("stopping: unfinished jobs go back to the queue")
    worker.stop()
    sender.stop()
    store.close()
    return 0


def register(sub: Any, add_model_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    sp = sub.add_parser("serve", help="run the evaluation API (HTTP) with an embedded worker")
    sp.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: local only)")
    sp.add_argument("--port", type=int, default=8000)
    sp.add_argument("--no-worker", action="store_true", help="API only; run `imagejury worker` processes separately")
    sp.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    sp.add_argument("--access-log", action="store_true", help="log every request")
    _server_flags(sp)
    add_model_flags(sp)
    sp.set_defaults(func=cmd_serve)

    wp = sub.add_parser("worker", help="run a standalone worker against a serve store")
    wp.add_argument("--metrics-port", type=int, help="expose Prometheus metrics on this port")
    wp.add_argument("--metrics-host", default="127.0.0.1")
    _server_flags(wp)
    add_model_flags(wp)
    wp.set_defaults(func=cmd_worker)
