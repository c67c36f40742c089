"""Storefront routes (audience ``storefront``)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify, request

from gateway.auth import STOREFRONT, claims_for, customer_required
from gateway.blueprints import json_body, reject_unknown, rpc_call, store_settings
from gateway.limits import limit
from gateway.policy import checkout_decision
from gateway.problems import Problem

storefront = Blueprint("storefront", __name__)

# What a shopper may send; everything else in the order request is decided here or in orders.
CHECKOUT_FIELDS = {"email", "lines", "shipping_address", "payment_method"}
PUBLIC_SETTINGS = ("customer_accounts", "password_min_length", "password_min_classes",
                   "locale", "currency", "store_name")


@storefront.get("/store")
def get_store() -> Any:
    settings = store_settings()
    return jsonify({key: settings[key] for key in PUBLIC_SETTINGS})


@storefront.get("/products")
def list_products() -> Any:
    return jsonify(items=rpc_call("orders", "list_products"))


@storefront.post("/checkout")
@limit("checkout")
def checkout() -> Any:
    body = json_body()
    reject_unknown(body, CHECKOUT_FIELDS)
    settings = store_settings()
    claims = claims_for(STOREFRONT, required=False)
    account = rpc_call("identity", "get_account", claims["sub"]) if claims else None
    decision = checkout_decision(settings["customer_accounts"], logged_in=account is not None,
                                 account_status=account["status"] if account else None)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 200:
        raise Problem(422, "validation_failed", "Idempotency-Key must be 1 to 200 characters.")
    order = rpc_call("orders", "place_order", {
        **body,
        # A logged-in customer's order is theirs: their id, their account's email.
        **({"email": account["email"]} if account else {}),
        "locale": account["locale"] if account else settings["locale"],
        "idempotency_key": key,
        "customer_id": account["id"] if account else None,
        "offer_account": decision.offer_account,
    })
    replayed = order.pop("replayed", False)
    response = jsonify(order=order, offer_account=decision.offer_account)
    response.status_code = 200 if replayed else 201
    response.headers["Location"] = f"/api/v1/orders/{order['id']}"
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@storefront.get("/orders/<order_id>")
def guest_order(order_id: str) -> Any:
    """Order status for a guest, with the token from the confirmation email."""
    token = request.args.get("token", "")
    if not token or len(token) > 200:
        raise Problem(404, "order_not_found", "No such order.")
    return jsonify(rpc_call("orders", "get_guest_order", order_id, token))


@storefront.get("/me/orders")
@customer_required
def my_orders() -> Any:
    page = {key: value for key, value in request.args.items() if key in ("limit", "before")}
    unknown = set(request.args) - {"limit", "before"}
    if unknown:
        raise Problem(422, "validation_failed", "Unknown query parameters.",
                      errors={name: ["Unknown parameter."] for name in sorted(unknown)})
    return jsonify(rpc_call("orders", "list_customer_orders", g.claims["sub"], page))


@storefront.get("/me/orders/<order_id>")
@customer_required
def my_order(order_id: str) -> Any:
    return jsonify(rpc_call("orders", "get_customer_order", g.claims["sub"], order_id))
