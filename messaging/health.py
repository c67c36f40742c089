"""Health entrypoints every service shares: HTTP probes for orchestrators, RPC for the gateway."""

from __future__ import annotations

import hmac
import json
import logging
import os
from typing import Any

from nameko.dependency_providers import Config
from nameko.web.handlers import http
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text

from messaging import deadletters
from messaging.connections import ConsumerStates
from messaging.envelope import utcnow
from messaging.metrics import DEAD_LETTERS, OUTBOX_BACKLOG, OUTBOX_OLDEST_SECONDS, EntrypointMetrics
from messaging.rpc import rpc

log = logging.getLogger(__name__)


class HealthEndpoints:
    """Mixed into a service that has ``db``; liveness says the process serves, readiness that
    its database answers and its consumer connections (RPC requests, events) consume."""

    db: Any
    name: str
    config = Config()
    metrics = EntrypointMetrics()
    consumers = ConsumerStates()

    @rpc
    def ready(self) -> dict[str, Any]:
        return self._readiness()

    @rpc
    def ping(self) -> str:
        """Does nothing: the cost of one RPC round trip, for benchmarks' ceilings."""
        return "pong"

    @http("GET", "/healthz")
    def healthz(self, request: Any) -> tuple[int, dict[str, str], str]:
        return 200, {"Content-Type": "application/json"}, json.dumps({"status": "ok"})

    @http("GET", "/readyz")
    def readyz(self, request: Any) -> tuple[int, dict[str, str], str]:
        report = self._readiness()
        status = 200 if report["status"] == "ok" else 503
        return status, {"Content-Type": "application/json"}, json.dumps(report)

    @http("GET", "/metrics")
    def prometheus_metrics(self, request: Any) -> tuple[int, dict[str, str], str]:
        """Prometheus text format: entrypoint timings, and measured now, the outbox backlog
        and the dead-letter depth (what an operator alerts on). With METRICS_TOKEN set, only
        for a bearer of it, as the gateway's."""
        token = os.environ.get("METRICS_TOKEN")
        if token and not hmac.compare_digest(
                request.headers.get("Authorization", "").removeprefix("Bearer ").encode(),
                token.encode()):
            return 401, {"Content-Type": "text/plain", "WWW-Authenticate": "Bearer"}, \
                "metrics need the METRICS_TOKEN bearer token\n"
        try:
            with self.db.transaction() as session:
                outbox = session.info["outbox_table"]
                backlog, oldest = session.execute(
                    select(func.count(), func.min(outbox.c.created_at))
                    .where(outbox.c.published_at.is_(None))).one()
            OUTBOX_BACKLOG.labels(self.name).set(backlog)
            OUTBOX_OLDEST_SECONDS.labels(self.name).set(
                max(0.0, (utcnow() - oldest).total_seconds()) if oldest else 0.0)
        except Exception as exc:  # a scrape must answer even when the database does not
            log.warning("metrics: outbox not measured", extra={"error": type(exc).__name__})
        try:
            DEAD_LETTERS.labels(self.name).set(
                deadletters.depth(self.config["AMQP_URI"], self.name))
        except Exception as exc:
            log.warning("metrics: dead letters not measured",
                        extra={"error": type(exc).__name__})
        return 200, {"Content-Type": CONTENT_TYPE_LATEST}, generate_latest().decode()

    def _readiness(self) -> dict[str, Any]:
        try:
            with self.db.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            database = "ok"
        except Exception as exc:
            database = f"unavailable: {type(exc).__name__}"
        # A connection that is not consuming (the broker unreachable, a queue that cannot be
        # declared) means this replica takes no requests or events: not ready.
        broker = self.consumers()
        ready = database == "ok" and all(state == "consuming" for state in broker.values())
        return {"status": "ok" if ready else "degraded", "database": database,
                "broker": broker}
