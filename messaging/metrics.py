"""Prometheus metrics every service shares: time in each entrypoint, and at scrape time the
outbox backlog and the dead-letter depth. A service serves them at GET /metrics (health.py).

Names are ``clientela_*``; each nameko process is one target (replicas scrape separately).
"""

from __future__ import annotations

import time
from typing import Any

from nameko.extensions import DependencyProvider
from prometheus_client import Counter, Gauge, Histogram

from messaging.errors import ServiceError

# Buckets from a fast RPC (~1 ms) to a slow export page (seconds).
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

ENTRYPOINT_SECONDS = Histogram(
    "clientela_entrypoint_seconds",
    "Time spent in each entrypoint (RPC method, event handler, timer, HTTP probe)",
    ["service", "kind", "name", "outcome"], buckets=_BUCKETS)
OUTBOX_BACKLOG = Gauge("clientela_outbox_backlog",
                       "Events written to the outbox and not yet published", ["service"])
OUTBOX_OLDEST_SECONDS = Gauge("clientela_outbox_oldest_seconds",
                              "Age of the oldest unpublished event (0: none)", ["service"])
DEAD_LETTERS = Gauge("clientela_dead_letters",
                     "Messages waiting in the service's dead-letter queue", ["service"])
EVENT_BATCH_EVENTS = Histogram(
    "clientela_event_batch_events",
    "Events handled together in one batch (one transaction) by a batch handler: what a "
    "linger buys, and whether a backlog forms", ["service", "handler"],
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 25, 50))
EMAILS = Counter("clientela_emails_total", "Emails by kind and how the attempt ended "
                 "(sent, deferred: retried later, failed)", ["kind", "outcome"])

_KINDS = {"Rpc": "rpc", "EventConsumer": "event", "Timer": "timer",
          "HttpRequestHandler": "http"}


class EntrypointMetrics(DependencyProvider):
    """Times every worker of the service it is declared on, by entrypoint and outcome:
    ok, refused (a ServiceError: the caller's 4xx) or error."""

    def worker_setup(self, worker_ctx: Any) -> None:
        worker_ctx.data["clientela_started"] = time.perf_counter()

    def worker_result(self, worker_ctx: Any, result: Any = None, exc_info: Any = None
                      ) -> None:
        started = worker_ctx.data.get("clientela_started")
        if started is None:
            return
        if exc_info is None:
            outcome = "ok"
        else:
            outcome = "refused" if isinstance(exc_info[1], ServiceError) else "error"
        entrypoint = worker_ctx.entrypoint
        kind = next((label for cls, label in _KINDS.items()
                     if any(c.__name__ == cls for c in type(entrypoint).__mro__)), "other")
        ENTRYPOINT_SECONDS.labels(worker_ctx.service_name, kind, entrypoint.method_name,
                                  outcome).observe(time.perf_counter() - started)
