"""What an unpaid order holds and for how long: the merchant's checkout limits and hold
windows, the sweep that abandons unpaid orders past their window, and recovery links."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select

from messaging.contracts.orders import OrdersError
from messaging.contracts.orders_admin import CheckoutLimitsSchema, HoldWindowsSchema
from messaging.database import Database
from messaging.envelope import utcnow
from messaging.errors import ServiceError, load_or_raise
from messaging.keys import hash_token, unseal
from messaging.links import StorefrontLinks
from services.orders import carts, domain, pricing_rules
from services.orders.models import (
    CheckoutLimits,
    HoldWindow,
    Order,
)
from services.orders.transitions import change_state, recovery_token

log = logging.getLogger(__name__)


ABANDON_BATCH = 200  # orders per sweep transaction; the next sweep takes the rest


def _checkout_limits(session: Any) -> dict[str, int]:
    row = session.get(CheckoutLimits, 1)
    if row is None:
        return dict(pricing_rules.DEFAULT_CHECKOUT_LIMITS)
    return {name: getattr(row, name) for name in pricing_rules.DEFAULT_CHECKOUT_LIMITS}


def _hold_windows(session: Any) -> dict[str, int]:
    stored = {row.payment_method: row.minutes for row in session.scalars(select(HoldWindow))}
    return {method: domain.hold_minutes(method, stored) for method in domain.PAYMENT_METHODS}


def abandon_expired_orders(db: Database) -> int:
    """Unpaid orders past their payment method's hold window become abandoned, their
    stock released. Rows are claimed with SKIP LOCKED, so replicas sweeping at the same
    time each take different orders, and the state machine makes a second pass a no-op."""
    now = utcnow()
    with db.transaction() as session:
        windows = _hold_windows(session)
        expired = or_(*(and_(Order.payment_method == method,
                             Order.placed_at < now - timedelta(minutes=minutes))
                        for method, minutes in windows.items()))
        orders = session.scalars(
            select(Order).where(Order.status == "pending_payment", expired)
            .order_by(Order.placed_at).limit(ABANDON_BATCH)
            .with_for_update(skip_locked=True)).all()
        for order in orders:
            change_state(session, order, "status", "abandoned", "system", None, True, {},
                         domain.history_note("unpaid_after",
                                             minutes=windows[order.payment_method]))
    if orders:
        log.info("orders abandoned", extra={"count": len(orders)})
    return len(orders)


def get_checkout_limits(db: Database) -> dict[str, int]:
    with db.transaction() as session:
        return _checkout_limits(session)


def set_checkout_limits(db: Database, request: dict[str, Any], actor: str) -> dict[str, int]:
    data = load_or_raise(CheckoutLimitsSchema(), request)
    with db.transaction() as session:
        row = session.get(CheckoutLimits, 1, with_for_update=True)
        if row is None:
            row = CheckoutLimits(id=1, **pricing_rules.DEFAULT_CHECKOUT_LIMITS)
            session.add(row)
        for field, value in data.items():
            setattr(row, field, value)
        session.flush()
        log.info("checkout limits changed", extra={"actor": actor, "changes": data})
        return _checkout_limits(session)


def get_hold_windows(db: Database) -> dict[str, int]:
    with db.transaction() as session:
        return _hold_windows(session)


def set_hold_windows(db: Database, request: dict[str, Any], actor: str) -> dict[str, int]:
    data = load_or_raise(HoldWindowsSchema(), request)
    with db.transaction() as session:
        for method, minutes in data.items():
            row = session.get(HoldWindow, method, with_for_update=True)
            if row is None:
                session.add(HoldWindow(payment_method=method, minutes=minutes))
            else:
                row.minutes = minutes
        session.flush()
        log.info("hold windows changed", extra={"actor": actor, "windows": data})
        return _hold_windows(session)


def recovery_url(db: Database, storefront: StorefrontLinks, order_id: str) -> dict[str, Any]:
    """The link that brings an abandoned or canceled order's cart back (the same link
    each time, and the one the recovery email carried)."""
    with db.transaction() as session:
        order = session.get(Order, domain.id_or_404(order_id), with_for_update=True)
        if order is None:
            raise ServiceError(OrdersError.ORDER_NOT_FOUND, "No such order.", 404)
        if order.status not in domain.RECOVERABLE:
            raise ServiceError(
                OrdersError.NOT_RECOVERABLE, f"A {order.status} order has nothing to recover.", 409,
                extra={"allowed": sorted(domain.RECOVERABLE)})
        token = unseal(recovery_token(order))
        return {"order_id": str(order.id), "number": f"#{order.number}",
                "url": storefront.recover(token)}


def get_recovery_cart(db: Database, token: str, customer_id: str | None = None) -> dict[str, Any]:
    """What a recovery link brings back: the cart at today's prices and stock, and the
    details to prefill checkout. The token is the only key: an unknown one is a 404."""
    with db.transaction() as session:
        order = session.scalars(select(Order).where(
            Order.recovery_token_hash == hash_token(token))).first() if token else None
        if order is None or order.status not in domain.RECOVERABLE:
            raise ServiceError(OrdersError.RECOVERY_LINK_INVALID,
                               "This link is not valid (any more).", 404)
        cart = carts.priced(session, [
            pricing_rules.WantedLine(line.sku, line.quantity, line.unit_price, line.title)
            for line in order.lines], customer_id)
        return {**cart, "currency": cart["currency"] or order.currency,
                "number": f"#{order.number}", "email": order.email,
                "payment_method": order.payment_method,
                "shipping_address": order.shipping_address,
                "recovery_token": token}
