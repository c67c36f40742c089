"""Liveness and readiness of the gateway and what stands behind it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Blueprint, current_app, g, jsonify

health = Blueprint("health", __name__)

SERVICES = ("identity", "customers", "orders", "notifications")


@health.get("/healthz")
def healthz() -> Any:
    return jsonify(status="ok")


@health.get("/readyz")
def readyz() -> Any:
    rpc = current_app.extensions["rpc"]
    request_id = g.get("request_id")

    def check(service: str) -> str:
        try:
            report = rpc.call(service, "ready", correlation_id=request_id)
            return report.get("status", "unknown")
        except Exception as exc:
            return f"unavailable: {type(exc).__name__}"

    with ThreadPoolExecutor(max_workers=len(SERVICES)) as pool:
        results = dict(zip(SERVICES, pool.map(check, SERVICES), strict=True))
    ready = all(status == "ok" for status in results.values())
    response = jsonify(status="ok" if ready else "unavailable", services=results)
    response.status_code = 200 if ready else 503
    return response
