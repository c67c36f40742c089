"""The merchant's emails: the delivery log, resend, and which emails the store sends."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify, request

from gateway.auth import staff_required
from gateway.blueprints import json_body, rpc_call
from gateway.openapi import document
from messaging.contracts.notifications import (
    DeliveryListSchema,
    DeliveryQuerySchema,
    DeliverySchema,
    EmailKindSchema,
    NotificationSettingsSchema,
)

admin_notifications = Blueprint("admin_notifications", __name__)


@admin_notifications.get("/notifications")
@document("The delivery log: every email, its status and attempts (recipients masked)",
          tags=["admin notifications"], auth="staff", responses={200: DeliveryListSchema},
          query={name: {"schema": {"type": "string"}} for name in DeliveryQuerySchema().fields})
@staff_required("owner", "staff")
def list_deliveries() -> Any:
    return jsonify(rpc_call("notifications", "list_deliveries", dict(request.args.items())))


@admin_notifications.post("/notifications/<delivery_id>/resend")
@document("Send an email again (a new delivery, logged)", tags=["admin notifications"],
          auth="staff", responses={200: DeliverySchema})
@staff_required("owner", "staff")
def resend(delivery_id: str) -> Any:
    return jsonify(rpc_call("notifications", "resend", delivery_id, f"staff:{g.claims['sub']}"))


@admin_notifications.get("/notifications/kinds")
@document("Every email the store sends: its kind, the event it answers, whether it can be "
          "switched off", tags=["admin notifications"], auth="staff",
          responses={200: EmailKindSchema(many=True)})
@staff_required("owner", "staff")
def list_email_kinds() -> Any:
    return jsonify(rpc_call("notifications", "list_email_kinds"))


@admin_notifications.get("/notifications/settings")
@document("Which emails the store sends (account emails always go)",
          tags=["admin notifications"], auth="staff",
          responses={200: NotificationSettingsSchema})
@staff_required("owner", "staff")
def get_settings() -> Any:
    return jsonify(rpc_call("notifications", "get_settings"))


@admin_notifications.put("/notifications/settings")
@document("Switch emails on or off (owner only)", tags=["admin notifications"], auth="staff",
          body=NotificationSettingsSchema, responses={200: NotificationSettingsSchema})
@staff_required("owner")
def put_settings() -> Any:
    return jsonify(rpc_call("notifications", "update_settings", json_body()))
