"""The portal's Prometheus figures, and how a scrape is answered. Nothing here imports Flask.

Counters and histograms are counted where things happen (requests, deliveries, gateway calls,
processor events, receipts). Under gunicorn set ``PROMETHEUS_MULTIPROC_DIR`` (an empty folder,
wiped at start by ``portal/gunicorn_conf.py``) before Python starts: every process then writes
its figures there and any worker answers a scrape with the sum of all of them.

The outbox's own state (messages pending and dead, the age of the oldest pending, per kind) is
not counted anywhere: :class:`OutboxCollector` asks the database at scrape time, so it is right
whichever process queued or delivered the messages.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE_LATEST", "exposition"]

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # prometheus_client writes each process's figures there from the first metric on; a command
    # run before gunicorn ever started (portal db upgrade) must not fail for want of the folder.
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

# Page and API latencies: most answers take milliseconds; uploads and receipts take longer.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

HTTP_REQUESTS = Counter(
    "portal_http_requests_total", "HTTP requests answered, by route and status.", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "portal_http_request_duration_seconds",
    "Time to answer an HTTP request, by route.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
RATE_LIMIT_REFUSALS = Counter("portal_rate_limit_refusals_total", "Requests refused by a rate limit (429).", ["route"])
OUTBOX_DELIVERIES = Counter(
    "portal_outbox_deliveries_total",
    "Delivery attempts of outbox messages, by outcome (sent, retry, dead).",
    ["channel", "kind", "outcome"],
)
OUTBOX_DELIVERY_TIME = Histogram(
    "portal_outbox_delivery_duration_seconds",
    "Time to render and deliver one outbox message.",
    ["channel"],
    buckets=LATENCY_BUCKETS,
)
OUTBOX_ROUND = Gauge(
    "portal_outbox_worker_last_round_timestamp_seconds",
    "When the outbox worker last finished looking for due messages (Unix time).",
    multiprocess_mode="max",
)
OUTBOX_DATABASE_ERRORS = Counter(
    "portal_outbox_worker_database_errors_total",
    "Rounds of the outbox worker cut short because the database did not answer.",
)
GATEWAY_REFUNDS = Counter(
    "portal_gateway_refunds_total",
    "Refund calls to the payment gateway, by outcome (succeeded, pending, declined, unavailable).",
    ["gateway", "outcome"],
)
PROCESSOR_EVENTS = Counter(
    "portal_processor_events_total", "Payment processor webhook events handled.", ["provider", "type", "outcome"]
)
RECEIPT_RENDER = Histogram(
    "portal_receipt_render_seconds",
    "Time to render one PDF receipt.",
    ["locale"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class OutboxCollector:
    """Messages pending and dead, and the oldest pending one's age, per channel and kind.

    ``rows()`` answers ``(channel, kind, status, count, oldest created_at)`` for the pending and
    dead messages; it runs once per scrape.
    """

    def __init__(
        self, rows: Callable[[], Iterable[tuple[str, str, str, int, datetime | None]]], clock: Callable[[], datetime]
    ) -> None:
        self.rows = rows
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        pending = GaugeMetricFamily(
            "portal_outbox_pending_messages", "Outbox messages waiting to go out.", labels=["channel", "kind"]
        )
        dead = GaugeMetricFamily(
            "portal_outbox_dead_messages",
            "Outbox messages given up on (portal outbox resend ID revives one).",
            labels=["channel", "kind"],
        )
        oldest = GaugeMetricFamily(
            "portal_outbox_oldest_pending_age_seconds",
            "Age of the oldest message still waiting to go out.",
            labels=["channel", "kind"],
        )
        now = self.clock()
        for channel, kind, status, count, first in self.rows():
            if status == "pending":
                pending.add_metric([channel, kind], count)
                if first is not None:
                    oldest.add_metric([channel, kind], max((now - first).total_seconds(), 0.0))
            elif status == "dead":
                dead.add_metric([channel, kind], count)
        yield from (pending, dead, oldest)


class _ThisProcess:
    """The default registry's figures (this process's counters and its CPU and memory)."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def scrape_registry(*collectors: Collector) -> CollectorRegistry:
    """What a scrape reads: this process's figures, or every process's in multiprocess mode, and
    the given collectors, asked at scrape time."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped in the library
    else:
        registry.register(_ThisProcess())
    for collector in collectors:
        registry.register(collector)
    return registry


def exposition(*collectors: Collector) -> bytes:
    return generate_latest(scrape_registry(*collectors))


def serve(port: int, host: str, *collectors: Collector) -> None:
    """Serve the figures on their own port from a background thread (the outbox worker's)."""
    start_http_server(port, addr=host, registry=scrape_registry(*collectors))
