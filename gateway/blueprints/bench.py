"""Routes that exist only for benchmarks (BENCH_ROUTES=1): the ceilings ours are held to."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from gateway.blueprints import rpc_call

bench = Blueprint("bench", __name__)


@bench.get("/noop")
def noop() -> Any:
    """Nothing at all: the ceiling of any gateway route (Flask, gunicorn, middleware)."""
    return jsonify(answer="ok")


@bench.get("/noop-rpc")
def noop_rpc() -> Any:
    """One RPC that does nothing: the ceiling for a route that makes one RPC."""
    return jsonify(answer=rpc_call("orders", "ping"))
