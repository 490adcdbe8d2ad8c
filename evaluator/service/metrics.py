"""Prometheus metrics of the service: queue depth, batch sizes, latencies, outcomes.

Each app (and each standalone worker) owns its own ``CollectorRegistry``, so tests can
build several apps in one process. Queue depth and status counts are read from the
store at scrape time: they describe the shared queue, whichever process fills it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# seconds; from a millisecond API answer to a 10-minute job timeout
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class _QueueCollector(Collector):
    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = GaugeMetricFamily("imagejury_evaluations", "evaluations in the store by status", labels=["status"])
        depth = GaugeMetricFamily("imagejury_queue_depth", "evaluations waiting for a worker (pending)")
        try:
            counts = self._counts()
        except Exception:  # noqa: BLE001 - a scrape must not fail because the db is busy
            log.exception("could not read queue counts for /metrics")
            counts = {}
        for status in ("pending", "running", "completed", "failed"):
            g.add_metric([status], counts.get(status, 0))
        depth.add_metric([], counts.get("pending", 0))
        yield g
        yield depth


class Metrics:
    """The metric objects, bound to one registry."""

    def __init__(self, status_counts: Callable[[], dict[str, int]] | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_latency = Histogram(
            "imagejury_http_request_seconds",
            "API request latency",
            ["method", "route", "status"],
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        self.submissions = Counter(
            "imagejury_submissions_total", "POST /v1/evaluations by outcome", ["outcome"], registry=r
        )
        self.batch_size = Histogram("imagejury_batch_size", "jobs per worker batch", registry=r, buckets=_BATCH_BUCKETS)
        self.batch_seconds = Histogram(
            "imagejury_batch_seconds", "decode + judge time of one worker batch", registry=r, buckets=_LATENCY_BUCKETS
        )
        self.job_seconds = Histogram(
            "imagejury_job_seconds",
            "submission to terminal state, per evaluation",
            ["job_class"],
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        self.outcomes = Counter(
            "imagejury_evaluations_finished_total",
            "terminal evaluations by status and failure code",
            ["status", "failure_code"],
            registry=r,
        )
        self.lost_leases = Counter(
            "imagejury_lost_leases_total", "results discarded because another worker owned the job by then", registry=r
        )
        self.webhooks = Counter(
            "imagejury_webhook_attempts_total", "webhook delivery attempts by outcome", ["outcome"], registry=r
        )
        if status_counts is not None:
            r.register(_QueueCollector(status_counts))

    def outcome(self, status: str, failure_code: str | None, job_class: str, seconds: float) -> None:
        self.outcomes.labels(status=status, failure_code=failure_code or "").inc()
        self.job_seconds.labels(job_class=job_class).observe(max(0.0, seconds))

    def webhook(self, outcome: str) -> None:
        self.webhooks.labels(outcome=outcome).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def serve_metrics(metrics: Metrics, host: str, port: int) -> Any:
    """Expose a standalone worker's metrics on their own port (the API process has /metrics)."""
    from prometheus_client import start_http_server

    return start_http_server(port, addr=host, registry=metrics.registry)
