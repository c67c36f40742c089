"""Saved carts: a logged-in customer's cart, kept by orders so it follows them between
devices, priced for them when read; and the helpers every cart path shares (the cart row
locked, lines priced for the cart's customer, the cart as the API shows it)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from messaging.contracts.orders import (
    MAX_QUANTITY,
    CartReplaceSchema,
    LineRequestSchema,
    OrdersError,
    SavedCartSchema,
)
from messaging.database import Database, locked_row
from messaging.envelope import utcnow
from messaging.errors import VALIDATION_FAILED, ServiceError, load_or_raise
from services.orders import domain, pricing, pricing_rules
from services.orders.models import Cart, CartLine, Product

MAX_CART_LINES = 100
SAVED_CART = SavedCartSchema()


def products(session: Any, skus: Any) -> dict[str, Product]:
    skus = list(skus)
    if not skus:
        return {}
    return {p.sku: p for p in session.scalars(select(Product).where(Product.sku.in_(skus)))}


def known_products(session: Any, skus: Any) -> dict[str, Product]:
    """The products, in one query. A cart may hold a product that is off sale or sold out
    (flagged when read), not one that never existed."""
    found = products(session, skus)
    unknown = sorted(set(skus) - set(found))
    if unknown:
        raise ServiceError(OrdersError.UNKNOWN_PRODUCT, "Some products do not exist.", 422,
                           errors={"lines": {sku: ["unknown product"] for sku in unknown}})
    return found


def cart_quantities(lines: list[dict[str, Any]]) -> dict[str, int]:
    quantities = pricing_rules.merge_lines(lines)
    too_many = {sku: [f"at most {MAX_QUANTITY} in all"]
                for sku, quantity in quantities.items() if quantity > MAX_QUANTITY}
    if too_many:
        raise ServiceError(VALIDATION_FAILED, "Too many units in one line.", 422,
                           errors={"lines": too_many})
    return quantities


def locked_cart(session: Any, customer_id: Any) -> Cart:
    """The customer's cart row, made if missing, locked until commit: changes from two
    devices at once are applied one after the other, none lost."""
    customer = customer_id if isinstance(customer_id, uuid.UUID) else domain.id_or_404(customer_id)
    return locked_row(session, Cart, customer, customer_id=customer, updated_at=utcnow())


def priced(session: Any, wanted: list[pricing_rules.WantedLine], customer_id: Any = None
            ) -> dict[str, Any]:
    skus = {w.sku for w in wanted}
    return pricing_rules.price_cart(wanted, products(session, skus),
                             pricing.terms_for(session, customer_id, skus))


def cart_view(session: Any, cart: Cart | None) -> dict[str, Any]:
    lines = [pricing_rules.WantedLine(line.sku, line.quantity, line.price_seen)
             for line in (cart.lines if cart else [])]
    return SAVED_CART.dump({**priced(session, lines, cart.customer_id if cart else None),
                            "updated_at": cart.updated_at if cart else None})


def get_cart(db: Database, customer_id: str) -> dict[str, Any]:
    """The customer's saved cart at today's prices (an empty one if they have none)."""
    with db.transaction() as session:
        cart = session.get(Cart, domain.id_or_404(customer_id))
        return cart_view(session, cart)


def replace_cart(db: Database, customer_id: str, request: dict[str, Any]) -> dict[str, Any]:
    """Replace the lines (the same SKU twice is one line). A line already in the cart
    keeps the price the customer first saw, so a price change still shows."""
    data = load_or_raise(CartReplaceSchema(), request)
    quantities = cart_quantities(data["lines"])
    with db.transaction() as session:
        cart = locked_cart(session, customer_id)
        seen = {line.sku: line.price_seen for line in cart.lines}
        terms = pricing.terms_for(session, customer_id, quantities)
        prices = {sku: pricing_rules.customer_price(sku, p.price, terms).price
                  for sku, p in known_products(session, quantities).items()}
        cart.lines = [CartLine(sku=sku, quantity=quantity,
                               price_seen=seen.get(sku, prices.get(sku)), added_at=utcnow())
                      for sku, quantity in quantities.items()]
        cart.updated_at = utcnow()
        session.flush()
        return cart_view(session, cart)


def add_cart_line(db: Database, customer_id: str, request: dict[str, Any]) -> dict[str, Any]:
    """Add units of one product (to the line already there, if any)."""
    line = load_or_raise(LineRequestSchema(), request)
    with db.transaction() as session:
        cart = locked_cart(session, customer_id)
        current = next((c for c in cart.lines if c.sku == line["sku"]), None)
        quantity = line["quantity"] + (current.quantity if current else 0)
        if quantity > MAX_QUANTITY:
            raise ServiceError(VALIDATION_FAILED, "Too many units in one line.", 422,
                               errors={"quantity": [f"at most {MAX_QUANTITY} in all"]})
        if current is None:
            product = known_products(session, [line["sku"]])[line["sku"]]
            if len(cart.lines) >= MAX_CART_LINES:
                raise ServiceError(OrdersError.CART_FULL, "The cart has as many lines as it can.",
                                   422)
            terms = pricing.terms_for(session, customer_id, [line["sku"]])
            cart.lines.append(CartLine(
                sku=line["sku"], quantity=quantity, added_at=utcnow(),
                price_seen=pricing_rules.customer_price(product.sku, product.price,
                                                 terms).price))
        else:
            current.quantity = quantity
        cart.updated_at = utcnow()
        session.flush()
        return cart_view(session, cart)


def remove_cart_line(db: Database, customer_id: str, sku: str) -> dict[str, Any]:
    """Take a product out of the cart (gone already: the same answer)."""
    with db.transaction() as session:
        cart = locked_cart(session, customer_id)
        cart.lines = [line for line in cart.lines if line.sku != str(sku)]
        cart.updated_at = utcnow()
        session.flush()
        return cart_view(session, cart)


def merge_cart(db: Database, customer_id: str, request: dict[str, Any]) -> dict[str, Any]:
    """A guest's cart (kept by the storefront) into the saved one, at login: quantities
    added and capped at stock. Says what it had to change."""
    data = load_or_raise(CartReplaceSchema(), request)
    guest = pricing_rules.merge_lines(data["lines"])
    with db.transaction() as session:
        cart = locked_cart(session, customer_id)
        saved = {line.sku: line for line in cart.lines}
        found = products(session, set(guest) | set(saved))
        merged, adjustments = pricing_rules.merge_carts(
            {sku: line.quantity for sku, line in saved.items()}, guest, found,
            MAX_QUANTITY)
        if len(merged) > MAX_CART_LINES:
            raise ServiceError(OrdersError.CART_FULL,
                               "The carts together have too many lines.", 422)
        terms = pricing.terms_for(session, customer_id, merged)
        for sku, quantity in merged.items():
            if sku in saved:
                saved[sku].quantity = quantity
            else:
                cart.lines.append(CartLine(
                    sku=sku, quantity=quantity, added_at=utcnow(),
                    price_seen=pricing_rules.customer_price(sku, found[sku].price,
                                                     terms).price))
        cart.updated_at = utcnow()
        session.flush()
        return {"cart": cart_view(session, cart), "adjustments": adjustments}
