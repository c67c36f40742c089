"""The merchant admin's sign-in (staff accounts) and the store's settings (audience ``admin``;
roles ``owner`` and ``staff``)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify

from gateway.auth import client_info, staff_required
from gateway.blueprints import json_body, reject_unknown, rpc_call
from gateway.limits import limit
from gateway.openapi import document
from gateway.schemas import (
    RefreshTokenRequestSchema,
)
from messaging.contracts.identity import (
    LoginSchema,
    StoreSettingsSchema,
    StoreSettingsUpdateSchema,
    TokensSchema,
)

admin_store = Blueprint("admin_store", __name__)


@admin_store.post("/auth/login")
@limit("login")
@document("Staff log in", tags=["admin"], body=LoginSchema, responses={200: TokensSchema})
def login() -> Any:
    return jsonify(rpc_call("identity", "staff_login", json_body(), client_info()))


@admin_store.post("/auth/refresh")
@document("Rotate a staff refresh token", tags=["admin"], body=RefreshTokenRequestSchema,
          responses={200: TokensSchema})
def refresh() -> Any:
    body = json_body()
    reject_unknown(body, {"refresh_token"})
    return jsonify(rpc_call("identity", "refresh", str(body.get("refresh_token", "")),
                            client_info(), "admin"))


@admin_store.post("/auth/logout")
@document("Staff log out", tags=["admin"], body=RefreshTokenRequestSchema,
          responses={204: None})
def logout() -> Response:
    body = json_body()
    reject_unknown(body, {"refresh_token"})
    rpc_call("identity", "logout", str(body.get("refresh_token", "")))
    return Response(status=204)


@admin_store.get("/settings")
@document("Store settings", tags=["admin"], auth="staff", responses={200: StoreSettingsSchema})
@staff_required("owner", "staff")
def get_settings() -> Any:
    return jsonify(rpc_call("identity", "get_store_settings"))


@admin_store.put("/settings")
@document("Change store settings (owner only)", tags=["admin"], auth="staff",
          body=StoreSettingsUpdateSchema, responses={200: StoreSettingsSchema})
@staff_required("owner")
def put_settings() -> Any:
    settings = rpc_call("identity", "update_store_settings", json_body(),
                        f"staff:{g.claims['sub']}")
    current_app.extensions["store_settings"].invalidate()
    return jsonify(settings)
