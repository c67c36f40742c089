"""Storefront routes (audience ``storefront``): the store, the catalogue, checkout, orders."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from flask import Blueprint, jsonify, request

from gateway.auth import STOREFRONT, claims_for
from gateway.blueprints import json_body, reject_unknown, rpc_call, store_settings
from gateway.limits import limit
from gateway.openapi import document
from gateway.policy import (
    checkout_decision,
    chosen_payment_method,
    ensure_address_book_allowed,
    ensure_prices_for_guest,
    ensure_saved_cart_allowed,
    offered_payment_methods,
    prices_shown,
)
from gateway.problems import Problem
from gateway.schemas import StorefrontCheckoutSchema
from messaging.contracts import LOCALES
from messaging.contracts.identity import PublicStoreSchema
from messaging.contracts.orders import (
    BuyLinkCartSchema,
    CheckoutResponseSchema,
    OrderSchema,
    ProductListSchema,
    RecoveryCartSchema,
)
from messaging.errors import ServiceError

log = logging.getLogger(__name__)

storefront = Blueprint("storefront", __name__)

# What a shopper may send; everything else in the order request is decided here or in orders.
CHECKOUT_FIELDS = set(StorefrontCheckoutSchema().fields)
ADDRESS_BOOK_ONLY = ("id", "default_shipping", "default_billing")
PUBLIC_SETTINGS = tuple(PublicStoreSchema().fields)


@storefront.get("/store")
@document("What a storefront needs to know about the store", tags=["store"],
          responses={200: PublicStoreSchema})
def get_store() -> Any:
    settings = store_settings()
    return jsonify({**{key: settings[key] for key in PUBLIC_SETTINGS if key in settings},
                    "payment_methods": offered_payment_methods(settings)})


@storefront.get("/products")
@document("The catalogue (active products), at the caller's prices", tags=["store"],
          auth="optional-customer", responses={200: ProductListSchema},
          description="With a customer's token, their category prices (list_price: the "
                      "catalogue's, when theirs differs). price is null for a visitor when the "
                      "store shows prices to logged-in customers only, and for a customer "
                      "whose category hides prices.")
def list_products() -> Any:
    claims = claims_for(STOREFRONT, required=False)
    shown = prices_shown(store_settings(), logged_in=claims is not None)
    return jsonify(items=rpc_call("orders", "list_products",
                                  claims["sub"] if claims else None, shown))


@storefront.post("/checkout")
@limit("checkout")
@document(
    "Place an order", tags=["checkout"], body=StorefrontCheckoutSchema,
    auth="optional-customer",
    responses={201: CheckoutResponseSchema, 200: CheckoutResponseSchema},
    headers={"Idempotency-Key": {"required": False, "schema": {
        "type": "string", "minLength": 1, "maxLength": 200},
        "description": "Retrying with the same key returns the same order (200)."}},
    description="Guest checkout, or a logged-in customer's, as the store's login policy "
                "allows (403 accounts_disabled, 401 login_required, 403 "
                "account_not_approved). Prices and stock come from the catalogue only.",
)
def checkout() -> Any:
    body = json_body()
    reject_unknown(body, CHECKOUT_FIELDS)
    settings = store_settings()
    claims = claims_for(STOREFRONT, required=False)
    account = rpc_call("identity", "get_account", claims["sub"]) if claims else None
    decision = checkout_decision(settings["customer_accounts"], logged_in=account is not None,
                                 account_status=account["status"] if account else None)
    ensure_prices_for_guest(settings, logged_in=account is not None)
    if body.get("cart") is not None:
        ensure_saved_cart_allowed(logged_in=account is not None)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 200:
        raise Problem(422, "validation_failed", "Idempotency-Key must be 1 to 200 characters.")
    locale = _guest_locale(body.pop("locale", None), settings["locale"])
    save_address = _addresses_from_book(body, account)
    offer_account, existing = decision.offer_account, None
    if offer_account and isinstance(body.get("email"), str):
        # A guest whose email has an account is invited to log in, not offered another; an
        # order to a proven account's email is that account's (its owner sees it there).
        existing = rpc_call("identity", "account_for_email", body["email"])
        offer_account = existing is None
    method = chosen_payment_method(settings, body)
    order = rpc_call("orders", "place_order", {
        **body,
        "payment_method": method["method"], "payment_instructions": method["instructions"],
        # A logged-in customer's order is theirs: their id, their account's email.
        **({"email": account["email"]} if account else {}),
        "locale": account["locale"] if account else locale,
        "idempotency_key": _scoped_idempotency_key(key, account, body.get("email")),
        "customer_id": account["id"] if account else
        existing["id"] if existing and existing["email_verified"] else None,
        "offer_account": offer_account,
        "account_exists": existing is not None,
        # customers keeps it when it records the order (order_placed)
        "save_shipping_address": save_address,
    })
    replayed = order.pop("replayed", False)
    payment = None
    if method["kind"] == "provider" and order["payment_status"] == "pending":
        # Straight on to the provider's page: the shopper pays now (a guest has no other key
        # to the order until the email comes). If the provider does not answer, the order
        # stands and its email carries the payment link.
        try:
            payment = rpc_call("orders", "start_payment", order["id"], None, None, True)
        except ServiceError as exc:
            log.warning("payment not started at checkout: %s", exc.code)
    response = jsonify(order=order, offer_account=offer_account, payment=payment)
    response.status_code = 200 if replayed else 201
    response.headers["Location"] = f"/api/v1/orders/{order['id']}"
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response



def _addresses_from_book(body: dict[str, Any], account: dict[str, Any] | None) -> bool:
    """Fill the body's addresses given by id from the customer's address book; whether the
    customer asked to keep the shipping address (the book is an account's: policy)."""
    save_address = body.pop("save_address", False)
    for kind in ("shipping", "billing"):
        address_id = body.pop(f"{kind}_address_id", None)
        if address_id or (save_address and kind == "shipping"):
            ensure_address_book_allowed(account is not None,
                                        f"{kind}_address_id" if address_id else "save_address")
        if address_id is None:
            continue
        if f"{kind}_address" in body:
            raise Problem(422, "validation_failed", "Give an address or an address id, not both.",
                          errors={f"{kind}_address_id": [f"Not with {kind}_address."]})
        saved = rpc_call("customers", "get_address", account["id"], str(address_id))
        body[f"{kind}_address"] = {k: v for k, v in saved.items()
                                   if k not in ADDRESS_BOOK_ONLY}
    if not isinstance(save_address, bool):
        raise Problem(422, "validation_failed", "save_address must be true or false.",
                      errors={"save_address": ["Not a valid boolean."]})
    return save_address


def _guest_locale(chosen: Any, store_locale: str) -> str:
    """The language of a guest's emails: the one the storefront sends, else the browser's
    (Accept-Language), else the store's."""
    if chosen is not None:
        if chosen not in LOCALES:
            raise Problem(422, "validation_failed", "Unknown language.",
                          errors={"locale": [f"One of: {', '.join(LOCALES)}."]})
        return chosen
    return request.accept_languages.best_match(LOCALES) or store_locale


def _scoped_idempotency_key(key: str | None, account: dict[str, Any] | None,
                            email: Any) -> str | None:
    """An Idempotency-Key belongs to its caller: the customer, or the guest's email. Another
    caller's key neither replays their order nor collides with it (the stored key is a hash
    of caller and key, 64 characters whatever the key's length)."""
    if key is None:
        return None
    caller = f"customer:{account['id']}" if account else \
        f"guest:{str(email or '').strip().lower()}"
    return hashlib.sha256(f"{caller}\n{key}".encode()).hexdigest()


@storefront.get("/recover/<token>")
@document("An abandoned order's cart, from the recovery link", tags=["checkout"],
          auth="optional-customer", responses={200: RecoveryCartSchema},
          description="Today's prices and stock; check out with recovery_token to record "
                      "that the new order recovers the old one.")
@limit("checkout")
def recover(token: str) -> Any:
    if len(token) > 200:
        raise Problem(404, "recovery_link_invalid", "This link is not valid (any more).")
    claims = claims_for(STOREFRONT, required=False)
    cart = rpc_call("orders", "get_recovery_cart", token, claims["sub"] if claims else None)
    return jsonify(without_prices(cart, store_settings(), claims is not None))


@storefront.get("/orders/<order_id>")
@document("A guest's order, with the token from the confirmation email", tags=["orders"],
          responses={200: OrderSchema},
          query={"token": {"required": True, "schema": {"type": "string"}}})
def guest_order(order_id: str) -> Any:
    token = request.args.get("token", "")
    if not token or len(token) > 200:
        raise Problem(404, "order_not_found", "No such order.")
    return jsonify(rpc_call("orders", "get_guest_order", order_id, token))


def without_prices(cart: dict[str, Any], settings: dict[str, Any], logged_in: bool
                   ) -> dict[str, Any]:
    """A cart for a caller the store shows no prices to: the lines, no amounts."""
    if prices_shown(settings, logged_in):
        return cart
    hidden = ("unit_price", "line_total", "previous_unit_price", "list_price", "price_source")
    return {**cart, "subtotal": None,
            "lines": [{**line, **dict.fromkeys(hidden)} for line in cart["lines"]]}


@storefront.get("/b/<code>")
@document("A direct-buy link's cart, to prefill checkout", tags=["cart"],
          auth="optional-customer",
          responses={200: BuyLinkCartSchema},
          description="404 for an unknown link, 410 when the store has switched it off. Check "
                      "out with buy_link set to the code: the order is credited to the link.")
@limit("checkout")
def open_buy_link(code: str) -> Any:
    if len(code) > 16:
        raise Problem(404, "buy_link_not_found", "No such link.")
    claims = claims_for(STOREFRONT, required=False)
    link = rpc_call("orders", "open_buy_link", code, claims["sub"] if claims else None)
    return jsonify(without_prices(link, store_settings(), claims is not None))
