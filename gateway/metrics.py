"""The gateway's Prometheus metrics: requests by route and status, their latency, and the
RPC round trips behind them. GET /metrics, for the cluster's scraper only.

gunicorn runs several worker processes: each writes its samples to PROMETHEUS_MULTIPROC_DIR
(gunicorn.conf.py sets one up) and a scrape, whichever worker answers it, reads them all.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import time
from typing import Any

from flask import Flask, Response, abort, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
REQUESTS = Counter("clientela_http_requests_total", "HTTP requests by route and status",
                   ["method", "route", "status"])
REQUEST_SECONDS = Histogram("clientela_http_request_seconds", "HTTP request latency by route",
                            ["method", "route"], buckets=_BUCKETS)
RPC_SECONDS = Histogram("clientela_rpc_client_seconds", "RPC round trips from the gateway",
                        ["service", "method", "outcome"], buckets=_BUCKETS)


def observe_rpc(service: str, method: str, started: float, ok: bool) -> None:
    RPC_SECONDS.labels(service, method, "ok" if ok else "error").observe(
        time.perf_counter() - started)


def install(app: Flask) -> None:
    """Time every request; serve /metrics."""

    @app.before_request
    def _start_clock() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        started = g.get("metrics_started")
        if started is not None:
            # The route's pattern, never the raw path: ids would make a series per order.
            route = request.url_rule.rule if request.url_rule else "unmatched"
            REQUESTS.labels(request.method, route, str(response.status_code)).inc()
            REQUEST_SECONDS.labels(request.method, route).observe(
                time.perf_counter() - started)
        return response

    app.add_url_rule("/metrics", "metrics", _metrics)


def _metrics() -> Any:
    if not _scraper_allowed():
        abort(404)  # as if there were nothing here
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def _scraper_allowed() -> bool:
    """With METRICS_TOKEN set, only a bearer of it; otherwise only from a private or
    loopback address (the cluster's scraper, never a shopper through the proxy)."""
    token = os.environ.get("METRICS_TOKEN")
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return hmac.compare_digest(given.encode(), token.encode())
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return address.is_loopback or address.is_private
