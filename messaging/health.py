"""Health entrypoints every service shares: HTTP probes for orchestrators, RPC for the gateway."""

from __future__ import annotations

import json
from typing import Any

from nameko.rpc import rpc
from nameko.web.handlers import http
from sqlalchemy import text


class HealthEndpoints:
    """Mixed into a service that has ``db``; liveness says the process serves, readiness that
    its database answers (the broker is implied: the RPC arrived through it)."""

    db: Any

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

    def _readiness(self) -> dict[str, Any]:
        try:
            with self.db.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            database = "ok"
        except Exception as exc:
            database = f"unavailable: {type(exc).__name__}"
        return {"status": "ok" if database == "ok" else "degraded", "database": database}
