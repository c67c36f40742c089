"""Storefront accounts: register, log in, tokens, passwords, and the customer's own sessions.

Every route that creates or uses a customer account honours the store's login policy: with
accounts disabled they answer 403 ``accounts_disabled``.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, jsonify

from gateway.auth import client_info
from gateway.blueprints import json_body, reject_unknown, rpc_call, store_settings
from gateway.limits import limit
from gateway.openapi import document
from gateway.policy import ensure_account_offer_open, ensure_accounts_offered
from gateway.problems import Problem
from gateway.schemas import (
    AcceptedSchema,
    ActivateRequestSchema,
    EmailRequestSchema,
    RefreshTokenRequestSchema,
    TokenRequestSchema,
)
from messaging.contracts.identity import (
    AccountSchema,
    LoginSchema,
    RegisterSchema,
    ResetPasswordSchema,
    TokensSchema,
)

accounts = Blueprint("accounts", __name__)

# Requests about an email answer no sooner than this, whether the account exists or not.
EMAIL_ENUMERATION_FLOOR_SECONDS = 0.3


def _accounts_offered() -> None:
    ensure_accounts_offered(store_settings()["customer_accounts"])


def _string_field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise Problem(422, "validation_failed", f"{name} is required.",
                      errors={name: ["Missing data for required field."]})
    return value


def _no_sooner_than(started: float, floor: float = EMAIL_ENUMERATION_FLOOR_SECONDS) -> None:
    time.sleep(max(0.0, floor - (time.monotonic() - started)))


@accounts.post("/customers")
@limit("register")
@document("Register an account", tags=["accounts"], body=RegisterSchema,
          responses={202: AcceptedSchema},
          description="The same answer whether or not the email already has an account.")
def register() -> Any:
    started = time.monotonic()
    body = json_body()
    _accounts_offered()
    result = rpc_call("identity", "register", body)
    _no_sooner_than(started)
    response = jsonify(status=result["status"],
                       detail="If this email can be registered, a confirmation is on its way.")
    response.status_code = 202
    return response


@accounts.post("/auth/login")
@limit("login")
@document("Log in", tags=["accounts"], body=LoginSchema, responses={200: TokensSchema})
def login() -> Any:
    body = json_body()
    _accounts_offered()
    return jsonify(rpc_call("identity", "login", body, client_info()))


@accounts.post("/auth/refresh")
@document("Rotate a refresh token", tags=["accounts"], body=RefreshTokenRequestSchema,
          responses={200: TokensSchema})
def refresh() -> Any:
    body = json_body()
    reject_unknown(body, {"refresh_token"})
    _accounts_offered()
    return jsonify(rpc_call("identity", "refresh", _string_field(body, "refresh_token"),
                            client_info()))


@accounts.post("/auth/logout")
@document("Log out (ends this session)", tags=["accounts"], body=RefreshTokenRequestSchema,
          responses={204: None})
def logout() -> Response:
    body = json_body()
    reject_unknown(body, {"refresh_token"})
    rpc_call("identity", "logout", _string_field(body, "refresh_token"))
    return Response(status=204)


@accounts.post("/auth/activate")
@limit("login")
@document("Activate an account and log in", tags=["accounts"], body=ActivateRequestSchema,
          responses={200: TokensSchema, 201: TokensSchema})
def activate() -> Any:
    """Set a first password, and be logged in: an invited customer (``token`` from the
    invitation), or a guest accepting the account offered after checkout (``order_id`` and
    the order ``token`` from the confirmation email)."""
    body = json_body()
    _accounts_offered()
    if "order_id" not in body:
        return jsonify(rpc_call("identity", "activate", body, client_info()))
    reject_unknown(body, {"order_id", "token", "password", "first_name", "last_name"})
    ensure_account_offer_open(store_settings()["customer_accounts"])
    # Only an order whose confirmation offered an account, within 7 days, once (a manual
    # order's payment link, say, carries the same token but never made the offer).
    order = rpc_call("orders", "open_account_offer", str(body["order_id"]),
                     _string_field(body, "token"))
    account = rpc_call("identity", "create_account_from_order", {
        "email": order["email"], "password": body.get("password"), "locale": order["locale"],
        "first_name": body.get("first_name") or (order.get("shipping_address") or {}).get(
            "first_name"),
        "last_name": body.get("last_name") or (order.get("shipping_address") or {}).get(
            "last_name"),
    }, client_info())
    rpc_call("orders", "close_account_offer", order["id"])
    response = jsonify(account)
    response.status_code = 201
    return response


@accounts.post("/auth/verify-email")
@limit("login")
@document("Confirm an email address, set the password and log in", tags=["accounts"],
          body=ResetPasswordSchema, responses={200: TokensSchema},
          description="The link's holder sets the password: a password chosen before the "
                      "email was proven may be someone else's. Every earlier session ends.")
def verify_email() -> Any:
    body = json_body()
    return jsonify(rpc_call("identity", "verify_email", body, client_info()))


@accounts.post("/auth/password/forgot")
@limit("forgot")
@document("Ask for a password reset link", tags=["accounts"], body=EmailRequestSchema,
          responses={202: AcceptedSchema})
def forgot_password() -> Any:
    """Always 202, in the same time, whether or not the email has an account."""
    started = time.monotonic()
    body = json_body()
    reject_unknown(body, {"email"})
    _accounts_offered()
    rpc_call("identity", "request_password_reset", _string_field(body, "email"))
    _no_sooner_than(started)
    response = jsonify(status="accepted",
                       detail="If an account uses this email, a reset link is on its way.")
    response.status_code = 202
    return response


@accounts.post("/auth/password/reset")
@document("Set a new password with a reset link", tags=["accounts"],
          body=ResetPasswordSchema, responses={204: None})
def reset_password() -> Response:
    body = json_body()
    _accounts_offered()
    rpc_call("identity", "reset_password", body)
    return Response(status=204)


@accounts.post("/auth/email/confirm")
@document("Confirm a new email address", tags=["accounts"], body=TokenRequestSchema,
          responses={200: AccountSchema})
def confirm_email_change() -> Any:
    body = json_body()
    reject_unknown(body, {"token"})
    return jsonify(rpc_call("identity", "confirm_email_change", _string_field(body, "token")))


@accounts.post("/auth/email/revert")
@document("Undo an email change (from the old address)", tags=["accounts"],
          body=TokenRequestSchema, responses={200: AccountSchema})
def revert_email_change() -> Any:
    body = json_body()
    reject_unknown(body, {"token"})
    return jsonify(rpc_call("identity", "revert_email_change", _string_field(body, "token")))
