"""The shopper's carts: the saved cart of a logged-in customer (owned by the orders service),
and the prefilled cart behind a merchant's direct-buy link."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify

from gateway.auth import STOREFRONT, claims_for, customer_required
from gateway.blueprints import json_body, rpc_call, store_settings
from gateway.blueprints.storefront import without_prices
from gateway.limits import limit
from gateway.openapi import document
from gateway.problems import Problem
from services.orders.schemas import (
    BuyLinkCartSchema,
    CartMergedSchema,
    CartReplaceSchema,
    LineRequestSchema,
    SavedCartSchema,
)

cart = Blueprint("cart", __name__)

SAVED_CART_NOTE = ("Lines are priced from the catalogue when read: a changed price shows "
                   "previous_unit_price; a line that cannot be bought is kept and flagged "
                   "(issue).")


@cart.get("/me/cart")
@document("My saved cart, at today's prices", tags=["cart"], auth="customer",
          responses={200: SavedCartSchema}, description=SAVED_CART_NOTE)
@customer_required
def get_cart() -> Any:
    return jsonify(rpc_call("orders", "get_cart", g.claims["sub"]))


@cart.put("/me/cart")
@document("Replace my cart's lines", tags=["cart"], auth="customer", body=CartReplaceSchema,
          responses={200: SavedCartSchema}, description=SAVED_CART_NOTE)
@customer_required
def replace_cart() -> Any:
    return jsonify(rpc_call("orders", "replace_cart", g.claims["sub"], json_body()))


@cart.post("/me/cart/lines")
@document("Add units of a product to my cart", tags=["cart"], auth="customer",
          body=LineRequestSchema, responses={200: SavedCartSchema})
@customer_required
def add_line() -> Any:
    return jsonify(rpc_call("orders", "add_cart_line", g.claims["sub"], json_body()))


@cart.delete("/me/cart/lines/<sku>")
@document("Take a product out of my cart", tags=["cart"], auth="customer",
          responses={200: SavedCartSchema})
@customer_required
def remove_line(sku: str) -> Any:
    if len(sku) > 64:
        raise Problem(404, "not_in_cart", "No such line.")
    return jsonify(rpc_call("orders", "remove_cart_line", g.claims["sub"], sku))


@cart.post("/me/cart/merge")
@document("Merge the cart I built as a guest into my saved cart", tags=["cart"],
          auth="customer", body=CartReplaceSchema, responses={200: CartMergedSchema},
          description="Call it right after login with the storefront's cart. Quantities of "
                      "the same product are added, then capped at the stock there is; "
                      "adjustments says what changed.")
@customer_required
def merge_cart() -> Any:
    return jsonify(rpc_call("orders", "merge_cart", g.claims["sub"], json_body()))


@cart.get("/b/<code>")
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
