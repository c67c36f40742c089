"""Checkout: an order from a cart, priced and stocked from the catalogue and the customer's
categories, with its Idempotency-Key, its stock holds, its history row and ``order_placed``
committed together. Manual orders are made here too (create_order)."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from typing import Any

from sqlalchemy import and_, bindparam, func, select, text, update

from messaging.contracts import ORDER_PLACED
from messaging.contracts.orders import OrderSchema, OrdersError
from messaging.database import Database, insert_as_flushed
from messaging.envelope import utcnow
from messaging.errors import VALIDATION_FAILED, ServiceError, load_or_raise
from messaging.keys import hash_token, new_token, seal
from messaging.logs import mask_email
from messaging.outbox import emit
from services.orders import carts, domain, pricing, pricing_rules
from services.orders.models import (
    BuyLink,
    CheckoutLimits,
    Counter,
    Order,
    OrderHistory,
    OrderLine,
    Product,
)
from services.orders.providers import PaymentProvider
from services.orders.schemas import PlaceOrderSchema

log = logging.getLogger(__name__)
ORDER, PLACE_ORDER = OrderSchema(), PlaceOrderSchema()
_ORDERS = Order.__table__
# Statements every checkout runs, built once: Core, no ORM compile step per checkout (a
# select of whole products, built per call, took 450 µs where this one takes 150).
_ORDER_BY_KEY = select(_ORDERS.c.id, _ORDERS.c.request_fingerprint).where(
    _ORDERS.c.idempotency_key == bindparam("key"))
_COUNT_UNPAID = select(func.count()).select_from(_ORDERS).where(
    _ORDERS.c.email == bindparam("email"), _ORDERS.c.status == "pending_payment"
).scalar_subquery().label("unpaid_orders")
_LIMITS = CheckoutLimits.__table__
_PRODUCTS = Product.__table__
_PRODUCTS_TO_PRICE = select(  # what pricing_rules.price_lines and the stock hold read
    *(_PRODUCTS.c[name] for name in ("sku", "title", "titles", "price", "currency", "stock",
                                     "digital", "active"))
).where(_PRODUCTS.c.sku.in_(bindparam("skus", expanding=True)))
_TAKE_STOCK = update(_PRODUCTS).where(
    _PRODUCTS.c.sku == bindparam("take_sku"),
    _PRODUCTS.c.stock >= bindparam("take_quantity"),
).values(stock=_PRODUCTS.c.stock - bindparam("take_quantity"))
_LIMITS_AND_UNPAID = select(
    *(_LIMITS.c[name] for name in pricing_rules.DEFAULT_CHECKOUT_LIMITS), _COUNT_UNPAID
).where(_LIMITS.c.id == 1)


def place_order(db: Database, provider: PaymentProvider | None, request: dict[str, Any]
                ) -> dict[str, Any]:
    """Create an order from a cart: priced and stocked from our own catalogue.

    The order, its stock holds, its history row and ``order_placed`` commit together.
    """
    data = load_or_raise(PLACE_ORDER, request)
    fingerprint = domain.request_fingerprint(request)
    key = data["idempotency_key"]
    # One transaction: the key is claimed by the order itself (orders.idempotency_key, unique),
    # so a failed checkout leaves nothing behind and a retry simply tries again.
    with db.transaction() as session:
        replay = claim_key(session, key, fingerprint, data["email"]) if key else None
        if replay is None:
            order, _, result = create_order(session, provider, data, fingerprint)
            for line in result["lines"]:
                line["previous_unit_price"] = order.previous_prices.get(line["sku"])
    if replay is not None:
        return replay
    log.info("order placed", extra={"order_number": result["number"],
                                    "email": mask_email(result["email"])})
    return {**result, "replayed": False}


def claim_key(session: Any, key: str, fingerprint: str, email: str) -> dict[str, Any] | None:
    """Claim an Idempotency-Key for this transaction; or answer as the first request did
    (its order), or refuse (another body: 422; still running: 409).

    On PostgreSQL the key is held by a transaction-scoped advisory lock: a duplicate arriving
    while the first runs is told to wait (409), and a request that dies lets go of it with
    its connection. SQLite writes one transaction at a time: there is no "while". The same
    statement then takes the checkout-limits lock on ``email`` (_check_checkout_limits
    needs it next): one round trip for both, the second only once the key is ours (CASE
    evaluates in order)."""
    if session.get_bind().dialect.name == "postgresql":
        email_lock = _unpaid_orders_lock(email)
        if not session.scalar(text(
                "SELECT CASE WHEN pg_try_advisory_xact_lock(hashtextextended(:key, 0)) "
                "THEN pg_advisory_xact_lock(hashtext(:email_lock))::text = '' ELSE false END"),
                {"key": f"checkout:{key}", "email_lock": email_lock}):
            raise _in_progress()
        session.info.setdefault("advisory_locks", set()).add(email_lock)
    # Read after the lock is ours: a first request that committed meanwhile is seen. Two
    # columns, by a statement built once: most keys are new, and the ORM's select of a
    # whole order was 10% of a checkout's CPU (profiled); a replay loads the order.
    first = session.execute(_ORDER_BY_KEY, {"key": key}).first()
    if first is None:
        return None
    if first.request_fingerprint != fingerprint:
        raise ServiceError(OrdersError.IDEMPOTENCY_KEY_REUSED,
                           "This Idempotency-Key was used for a different request.", 422)
    return {**ORDER.dump(session.get(Order, first.id)), "replayed": True}


def create_order(session: Any, provider: PaymentProvider | None, data: dict[str, Any],
                 fingerprint: str | None, actor: str = "customer", payment_link: bool = False
                 ) -> tuple[Order, str, dict[str, Any]]:
    """A new order, stock held, with its first history row and ``order_placed``; returns
    it with its access token (the guest's key, sent by email) and its wire form as placed
    (dumped once: the event and the answer share it)."""
    recovered_from = _recovered_order(session, data)
    cart, data = _saved_cart(session, data)
    buy_link_id = _buy_link(session, data)
    if data["payment_method"] in domain.PROVIDER_PAYMENT_METHODS and provider is None:
        raise ServiceError(OrdersError.PAYMENT_METHOD_UNAVAILABLE, "This store takes no card "
                           "payments (no payment provider is configured).", 422,
                           errors={"payment_method": ["card payments are not set up"]})
    priced, currency, shipping = _priced_and_held(session, data, actor)
    access_token, access_token_hash = new_token()
    order = _new_order(data, priced, currency, shipping, actor)
    order.idempotency_key, order.request_fingerprint = data["idempotency_key"], fingerprint
    sealed_token = seal(access_token)  # once: the order and its event carry the same seal
    order.access_token_hash, order.access_token_sealed = access_token_hash, sealed_token
    if session.get_bind().dialect.name != "postgresql":
        order.number = _next_order_number(session)  # PostgreSQL: the INSERT draws it
    order.recovered_from, order.buy_link_id = recovered_from, buy_link_id
    _insert_order(session, order)
    if cart is not None:
        cart.lines.clear()  # the order holds them now (same transaction)
        cart.updated_at = order.placed_at
    placed = ORDER.dump(order)
    emit(session, ORDER_PLACED, {
        **placed,
        "order_id": order.id,
        "placed_at": order.placed_at,
        "notify_customer": True,
        "access_token_sealed": sealed_token,
        "offer_account": data["offer_account"] and order.customer_id is None,
        "account_exists": data.get("account_exists", False),
        "save_shipping_address": data.get("save_shipping_address", False)
        and order.customer_id is not None and order.shipping_address is not None,
        "channel": order.channel, "payment_link": payment_link,
    })
    return order, access_token, placed


def _insert_order(session: Any, order: Order) -> None:
    """Store the new order, its lines and its first history row: three Core INSERTs (the
    ORM's unit of work for the same rows was 28% of a checkout's CPU in orders, profiled);
    the order is persistent after, as a flush would have left it."""
    order.id = uuid.uuid4()
    order.updated_at = order.placed_at
    for row in (*order.lines, *order.history):
        row.order_id = order.id
    insert_as_flushed(session, [order, *order.lines, *order.history])


def _recovered_order(session: Any, data: dict[str, Any]) -> uuid.UUID | None:
    """The abandoned or canceled order a recovery link's checkout recovers."""
    if not data.get("recovery_token"):
        return None
    recovered_from = session.scalar(select(Order.id).where(
        Order.recovery_token_hash == hash_token(data["recovery_token"]),
        Order.status.in_(domain.RECOVERABLE)))
    if recovered_from is None:
        raise ServiceError(OrdersError.RECOVERY_LINK_INVALID,
                           "This recovery link is not valid (any more).", 422,
                           errors={"recovery_token": ["unknown or expired"]})
    return recovered_from


def _saved_cart(session: Any, data: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(the customer's saved cart, the request with its lines) for ``cart: saved``."""
    if data.get("cart") != "saved":
        return None, data
    if data["customer_id"] is None:
        raise ServiceError(OrdersError.LOGIN_REQUIRED, "Log in to check out a saved cart.",
                           401)
    # Locked until commit: a second checkout of the same cart waits, then finds it empty; a
    # checkout that fails rolls back and leaves the cart as it was.
    cart = carts.locked_cart(session, data["customer_id"])
    if not cart.lines:
        raise ServiceError(OrdersError.CART_EMPTY, "The saved cart is empty.", 422)
    return cart, {**data, "lines": [{"sku": line.sku, "quantity": line.quantity,
                                     "price_seen": line.price_seen} for line in cart.lines]}


def _buy_link(session: Any, data: dict[str, Any]) -> uuid.UUID | None:
    """The direct-buy link the order is credited to (a link disabled while the shopper was
    checking out still gets the credit)."""
    if not data.get("buy_link"):
        return None
    buy_link_id = session.scalar(select(BuyLink.id).where(
        BuyLink.code == data["buy_link"].strip().lower()))
    if buy_link_id is None:
        raise ServiceError(VALIDATION_FAILED, "No such buy link.", 422,
                           errors={"buy_link": ["unknown link"]})
    return buy_link_id


def _priced_and_held(session: Any, data: dict[str, Any], actor: str
                     ) -> tuple[list[Any], str, bool]:
    """(lines at the caller's prices, the currency, whether it ships), the stock held."""
    quantities = pricing_rules.merge_lines(data["lines"])
    if actor == "customer":  # the merchant's own manual orders are not limited
        _check_checkout_limits(session, data["email"], quantities)
    products = {row.sku: row for row in session.execute(
        _PRODUCTS_TO_PRICE, {"skus": list(quantities)})}
    terms = pricing.terms_for(session, data["customer_id"], quantities)
    if actor != "customer":
        # A hidden-price member is told to contact the store; the merchant then takes the
        # order, at the member's prices as if shown.
        terms = [dataclasses.replace(t, hidden=False) for t in terms]
    priced = pricing_rules.price_lines(quantities, products, data["locale"], terms)
    shipping = pricing_rules.needs_shipping(priced)
    if shipping and not data["shipping_address"]:
        raise ServiceError(VALIDATION_FAILED, "A shipping address is required.", 422,
                           errors={"shipping_address": ["required for physical products"]})
    _hold_stock(session, priced, products)
    return priced, products[priced[0].sku].currency, shipping


def _new_order(data: dict[str, Any], priced: list[Any], currency: str, shipping: bool,
               actor: str) -> Order:
    """The order as placed: its lines, addresses, first history row, and the prices the
    shopper was shown and no longer holds (a price list changed meanwhile: the order is at
    today's price, and its answer says so, line by line)."""
    subtotal = sum(line.line_total for line in priced)
    now = utcnow()
    staff = actor != "customer"
    order = Order(
        status="pending_payment", payment_status="pending", fulfillment_status="unfulfilled",
        payment_method=data["payment_method"], email=data["email"],
        customer_id=data["customer_id"], locale=data["locale"], currency=currency,
        subtotal=subtotal, shipping_total=0,  # shipping rates are not modelled yet
        total=subtotal,
        shipping_address=data["shipping_address"] if shipping else None,
        billing_address=data.get("billing_address") or (
            data["shipping_address"] if shipping else None),
        payment_instructions=data.get("payment_instructions")
        if data["payment_method"] in domain.MANUAL_PAYMENT_METHODS else None,
        channel="admin" if staff else "storefront", created_by=actor if staff else None,
        account_offer_expires_at=now + domain.ACCOUNT_OFFER_TTL
        if data["offer_account"] and data["customer_id"] is None else None,
        placed_at=now,
        lines=[OrderLine(sku=line.sku, title=line.title, quantity=line.quantity,
                         unit_price=line.unit_price, line_total=line.line_total,
                         digital=line.digital, list_price=line.list_price,
                         price_source=line.price_source) for line in priced],
        history=[OrderHistory(at=now, actor=actor, field="status", from_value=None,
                              to_value="pending_payment", notify_customer=True,
                              code="taken_by_staff" if staff else "placed", params={})],
    )
    seen = {line["sku"]: line.get("price_seen") for line in data["lines"]}
    order.previous_prices = {line.sku: seen[line.sku] for line in priced
                             if seen.get(line.sku) not in (None, line.unit_price)}
    return order


def _check_checkout_limits(session: Any, email: str,
                           quantities: dict[str, int]) -> None:
    """Refuse a checkout that breaks the merchant's limits. The email's unpaid orders are
    counted under a lock on that email (PostgreSQL advisory lock; SQLite writes one at a
    time), so two checkouts at once cannot both slip under a limit."""
    lock = _unpaid_orders_lock(email)
    if (session.get_bind().dialect.name == "postgresql"
            and lock not in session.info.get("advisory_locks", ())):
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": lock})
    unpaid = and_(Order.email == email, Order.status == "pending_payment")
    # The limits and the shopper's unpaid orders in one round trip (the row the migration
    # made); the defaults if someone emptied the table by hand.
    found = session.execute(_LIMITS_AND_UNPAID, {"email": email}).first()
    if found is None:
        limits = dict(pricing_rules.DEFAULT_CHECKOUT_LIMITS)
        unpaid_orders = session.scalar(select(_COUNT_UNPAID), {"email": email})
    else:
        limits = {name: found._mapping[name] for name in pricing_rules.DEFAULT_CHECKOUT_LIMITS}
        unpaid_orders = found.unpaid_orders
    held = dict(session.execute(  # most shoppers have no unpaid order: no second query
        select(OrderLine.sku, func.sum(OrderLine.quantity))
        .join(Order, Order.id == OrderLine.order_id)
        .where(unpaid, OrderLine.sku.in_(quantities))
        .group_by(OrderLine.sku)).all()) if unpaid_orders else {}
    problem = pricing_rules.checkout_limit_problems(quantities, held, unpaid_orders, limits)
    if problem is not None:
        code, errors = problem
        status = 422 if code == "quantity_limit" else 409
        raise ServiceError(code, "This order is over the store's limits.", status,
                           errors=errors)

def _unpaid_orders_lock(email: str) -> str:
    return f"unpaid-orders:{email}"


def _hold_stock(session: Any, priced: list[pricing_rules.PricedLine],
                products: dict[str, Any]) -> None:
    # One conditional UPDATE per line, in SKU order (no deadlocks between checkouts):
    # the row lock makes "is there enough?" and "take it" one step, so no overselling.
    for line in priced:
        if products[line.sku].stock is None:
            continue
        taken = session.execute(_TAKE_STOCK, {"take_sku": line.sku,
                                              "take_quantity": line.quantity}).rowcount
        if taken != 1:
            raise ServiceError(OrdersError.OUT_OF_STOCK, f"Not enough stock for {line.sku}.", 409,
                               errors={"lines": {line.sku: ["not enough stock"]}})

def _next_order_number(session: Any) -> int:
    """SQLite's order numbers, from a counter row (one writer at a time anyway). PostgreSQL
    draws them from a sequence, the column's default: no lock held until commit, and a
    checkout that fails leaves a gap in the numbers, as most stores' numbers have."""
    number = session.execute(
        update(Counter).where(Counter.name == "order_number")
        .values(value=Counter.value + 1).returning(Counter.value)
    ).scalar_one_or_none()
    if number is None:
        session.add(Counter(name="order_number", value=domain.FIRST_ORDER_NUMBER))
        session.flush()
        number = domain.FIRST_ORDER_NUMBER
    return number


def _in_progress() -> ServiceError:
    return ServiceError(OrdersError.IDEMPOTENCY_IN_PROGRESS,
                        "A request with this Idempotency-Key is still being processed.", 409,
                        extra={"retry_after": 1})
