"""Liveness and readiness of the gateway and what stands behind it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Blueprint, current_app, g, jsonify

from gateway.openapi import build_spec, document
from gateway.schemas import ReadinessSchema, StatusSchema

health = Blueprint("health", __name__)


@health.get("/openapi.json")
def openapi_json() -> Any:
    spec = current_app.extensions.get("openapi")
    if spec is None:
        spec = current_app.extensions["openapi"] = build_spec(current_app)
    return jsonify(spec)

SERVICES = ("identity", "customers", "orders", "notifications")


@health.get("/healthz")
@document("The gateway is alive", tags=["ops"], responses={200: StatusSchema})
def healthz() -> Any:
    return jsonify(status="ok")


@health.get("/readyz")
@document("The broker and every service answer (503 otherwise)", tags=["ops"],
          responses={200: ReadinessSchema})
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
