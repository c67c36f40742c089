"""Merchant admin routes (audience ``admin``; roles ``owner`` and ``staff``)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, g, jsonify

from gateway.auth import client_info, staff_required
from gateway.blueprints import json_body, reject_unknown, rpc_call

admin = Blueprint("admin", __name__)


@admin.post("/auth/login")
def login() -> Any:
    return jsonify(rpc_call("identity", "staff_login", json_body(), client_info()))


@admin.post("/auth/refresh")
def refresh() -> Any:
    body = json_body()
    reject_unknown(body, {"refresh_token"})
    return jsonify(rpc_call("identity", "refresh", str(body.get("refresh_token", "")),
                            client_info()))


@admin.get("/settings")
@staff_required("owner", "staff")
def get_settings() -> Any:
    return jsonify(rpc_call("identity", "get_store_settings"))


@admin.put("/settings")
@staff_required("owner")
def put_settings() -> Any:
    settings = rpc_call("identity", "update_store_settings", json_body(),
                        f"staff:{g.claims['sub']}")
    current_app.extensions["store_settings"].invalidate()
    return jsonify(settings)
