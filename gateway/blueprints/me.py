"""The logged-in customer's own things, under /me: the account (password, email, sessions),
the profile and address book, the saved cart, and their orders. Every route needs the
customer's token (audience storefront) and reads only what that account owns."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from gateway.auth import customer_required
from gateway.blueprints import json_body, rpc_call
from gateway.openapi import document
from gateway.problems import Problem
from gateway.schemas import (
    AcceptedSchema,
    MeSchema,
    RevokedSchema,
)
from messaging.contracts.customers import (
    AddressInputSchema,
    AddressListSchema,
    AddressSchemaOut,
    CheckoutPrefillSchema,
    ProfileSchema,
    ProfileUpdateSchema,
)
from messaging.contracts.identity import (
    ChangePasswordSchema,
    EmailChangeSchema,
    SessionListSchema,
)
from messaging.contracts.orders import (
    CartMergedSchema,
    CartReplaceSchema,
    LineRequestSchema,
    OrderListSchema,
    OrderSchema,
    SavedCartSchema,
)
from messaging.errors import ServiceError

me = Blueprint("me", __name__)

SAVED_CART_NOTE = ("Lines are priced from the catalogue when read: a changed price shows "
                   "previous_unit_price; a line that cannot be bought is kept and flagged "
                   "(issue).")


@me.get("/me")
@document("My account and profile", tags=["me"], auth="customer", responses={200: MeSchema})
@customer_required
def get_me() -> Any:
    """The account (identity) with the profile (customers); ``profile`` is null until the
    account's email is proven when a guest record already holds that email."""
    account = rpc_call("identity", "get_account", g.claims["sub"])
    try:
        profile = rpc_call("customers", "get_profile", g.claims["sub"])
    except ServiceError as exc:
        if exc.code != "verify_email_first":
            raise
        profile = None
    return jsonify({**account, "profile": profile})


@me.post("/me/password")
@document("Change my password", tags=["me"], auth="customer", body=ChangePasswordSchema,
          responses={204: None})
@customer_required
def change_password() -> Response:
    body = json_body()
    rpc_call("identity", "change_password", g.claims["sub"], body, g.claims["sid"])
    return Response(status=204)


@me.post("/me/email")
@document("Change my email (confirmed from the new address)", tags=["me"],
          auth="customer", body=EmailChangeSchema, responses={202: AcceptedSchema})
@customer_required
def change_email() -> Any:
    """Needs the password; the new address gets a confirmation link, nothing changes before."""
    rpc_call("identity", "request_email_change", g.claims["sub"], json_body())
    response = jsonify(status="confirmation_sent",
                       detail="Confirm the change from the link sent to the new address.")
    response.status_code = 202
    return response


@me.get("/me/sessions")
@document("Where I am logged in", tags=["me"], auth="customer",
          responses={200: SessionListSchema})
@customer_required
def list_sessions() -> Any:
    return jsonify(items=rpc_call("identity", "list_sessions", g.claims["sub"],
                                  g.claims["sid"]))


@me.delete("/me/sessions/<session_id>")
@document("Log out one session", tags=["me"], auth="customer", responses={204: None})
@customer_required
def revoke_session(session_id: str) -> Response:
    rpc_call("identity", "revoke_session", g.claims["sub"], session_id)
    return Response(status=204)


@me.delete("/me/sessions")
@document("Log out every other session", tags=["me"], auth="customer",
          responses={200: RevokedSchema})
@customer_required
def revoke_other_sessions() -> Any:
    """Sign out everywhere else; this session stays."""
    revoked = rpc_call("identity", "revoke_other_sessions", g.claims["sub"], g.claims["sid"])
    return jsonify(revoked=revoked)


@me.patch("/me")
@document("Change my profile (names, phone, language, marketing consent)", tags=["me"],
          auth="customer", body=ProfileUpdateSchema, responses={200: ProfileSchema})
@customer_required
def update_profile() -> Any:
    return jsonify(rpc_call("customers", "update_profile", g.claims["sub"], json_body()))


@me.get("/me/addresses")
@document("My addresses", tags=["me"], auth="customer", responses={200: AddressListSchema})
@customer_required
def list_addresses() -> Any:
    return jsonify(items=rpc_call("customers", "list_addresses", g.claims["sub"]))


@me.post("/me/addresses")
@document("Add an address (the first one is both defaults)", tags=["me"], auth="customer",
          body=AddressInputSchema, responses={201: AddressSchemaOut})
@customer_required
def add_address() -> Any:
    response = jsonify(rpc_call("customers", "add_address", g.claims["sub"], json_body()))
    response.status_code = 201
    return response


@me.patch("/me/addresses/<address_id>")
@document("Change an address, or make it a default", tags=["me"], auth="customer",
          body=AddressInputSchema(partial=True), responses={200: AddressSchemaOut})
@customer_required
def update_address(address_id: str) -> Any:
    return jsonify(rpc_call("customers", "update_address", g.claims["sub"], address_id,
                            json_body()))


@me.delete("/me/addresses/<address_id>")
@document("Delete an address", tags=["me"], auth="customer", responses={204: None})
@customer_required
def delete_address(address_id: str) -> Response:
    rpc_call("customers", "delete_address", g.claims["sub"], address_id)
    return Response(status=204)


@me.get("/me/checkout-prefill")
@document("What my checkout form starts with", tags=["me"], auth="customer",
          responses={200: CheckoutPrefillSchema})
@customer_required
def checkout_prefill() -> Any:
    account = rpc_call("identity", "get_account", g.claims["sub"])
    prefill = rpc_call("customers", "checkout_prefill", g.claims["sub"])
    return jsonify({"email": account["email"], **prefill,
                    "first_name": prefill["first_name"] or account.get("first_name"),
                    "last_name": prefill["last_name"] or account.get("last_name")})


@me.get("/me/cart")
@document("My saved cart, at today's prices", tags=["cart"], auth="customer",
          responses={200: SavedCartSchema}, description=SAVED_CART_NOTE)
@customer_required
def get_cart() -> Any:
    return jsonify(rpc_call("orders", "get_cart", g.claims["sub"]))


@me.put("/me/cart")
@document("Replace my cart's lines", tags=["cart"], auth="customer", body=CartReplaceSchema,
          responses={200: SavedCartSchema}, description=SAVED_CART_NOTE)
@customer_required
def replace_cart() -> Any:
    return jsonify(rpc_call("orders", "replace_cart", g.claims["sub"], json_body()))


@me.post("/me/cart/lines")
@document("Add units of a product to my cart", tags=["cart"], auth="customer",
          body=LineRequestSchema, responses={200: SavedCartSchema})
@customer_required
def add_line() -> Any:
    return jsonify(rpc_call("orders", "add_cart_line", g.claims["sub"], json_body()))


@me.delete("/me/cart/lines/<sku>")
@document("Take a product out of my cart", tags=["cart"], auth="customer",
          responses={200: SavedCartSchema})
@customer_required
def remove_line(sku: str) -> Any:
    if len(sku) > 64:
        raise Problem(404, "not_in_cart", "No such line.")
    return jsonify(rpc_call("orders", "remove_cart_line", g.claims["sub"], sku))


@me.post("/me/cart/merge")
@document("Merge the cart I built as a guest into my saved cart", tags=["cart"],
          auth="customer", body=CartReplaceSchema, responses={200: CartMergedSchema},
          description="Call it right after login with the storefront's cart. Quantities of "
                      "the same product are added, then capped at the stock there is; "
                      "adjustments says what changed.")
@customer_required
def merge_cart() -> Any:
    return jsonify(rpc_call("orders", "merge_cart", g.claims["sub"], json_body()))


@me.get("/me/orders")
@document("My orders, newest first", tags=["orders"], auth="customer",
          responses={200: OrderListSchema},
          query={"limit": {"schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                 "before": {"schema": {"type": "string", "format": "date-time"},
                            "description": "next_before from the previous page"}})
@customer_required
def my_orders() -> Any:
    page = {key: value for key, value in request.args.items() if key in ("limit", "before")}
    unknown = set(request.args) - {"limit", "before"}
    if unknown:
        raise Problem(422, "validation_failed", "Unknown query parameters.",
                      errors={name: ["Unknown parameter."] for name in sorted(unknown)})
    return jsonify(rpc_call("orders", "list_customer_orders", g.claims["sub"], page))


@me.get("/me/orders/<order_id>")
@document("One of my orders", tags=["orders"], auth="customer", responses={200: OrderSchema})
@customer_required
def my_order(order_id: str) -> Any:
    return jsonify(rpc_call("orders", "get_customer_order", g.claims["sub"], order_id))
