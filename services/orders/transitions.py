"""Moving an order along its three state machines: the one place a state changes, with its
history row, its stock effects and its event."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from messaging.contracts import (
    FULFILLMENT_UPDATED,
    ORDER_ABANDONED,
    ORDER_CANCELED,
    ORDER_STATUS_CHANGED,
    PAYMENT_STATUS_CHANGED,
)
from messaging.envelope import utcnow
from messaging.keys import new_token, seal
from messaging.outbox import emit
from services.orders import domain
from services.orders.models import Order, OrderHistory, Product


def change_state(session: Any, order: Order, field: str, to: str, actor: str,
                 comment: str | None, notify: bool, details: dict[str, Any],
                 note: domain.HistoryNote | None = None) -> None:
    """Move one of the order's machines, with its history row and its event (same
    transaction). ``comment`` is a person's words (the customer's email may quote them);
    ``note`` what the service says about the change (domain.history_note). The same state
    again is a no-op, except for new tracking details or one more partial refund
    (``details["refund_amount"]``, already added to refunded_total)."""
    current = getattr(order, field)
    tracking = field == "fulfillment_status" and any(
        details.get(k) for k in ("carrier", "tracking_number", "tracking_url"))
    refund_amount = details.get("refund_amount")
    if not domain.check_transition(field, current, to) and not tracking \
            and refund_amount is None:
        return  # the same state again: nothing happens, nothing is recorded
    setattr(order, field, to)
    if (field, to) == ("payment_status", "paid"):
        order.payment_alert = domain.paid_late_alert(order) or order.payment_alert
    elif (field, to) == ("payment_status", "refunded"):
        order.payment_alert = None  # the money went back: nothing left to decide
    if tracking:
        for key in ("carrier", "tracking_number", "tracking_url"):
            if details.get(key):
                setattr(order, key, details[key])
        if not details.get("tracking_url"):
            order.tracking_url = domain.tracking_url_for(
                order.carrier, order.tracking_number) or order.tracking_url
    if field == "status" and to in domain.RELEASES_STOCK and current in domain.HOLDS_STOCK:
        release_stock(session, order)
    order.history.append(OrderHistory(at=utcnow(), actor=actor, field=field,
                                      from_value=current, to_value=to, comment=comment,
                                      code=note[0] if note else None,
                                      params=note[1] if note else None,
                                      notify_customer=notify))
    extra: dict[str, Any] = {}
    if (field, to) == ("status", "canceled"):
        event = ORDER_CANCELED
    elif (field, to) == ("status", "abandoned"):
        event = ORDER_ABANDONED
        extra["recovery_token_sealed"] = recovery_token(order)
    else:
        event = {"status": ORDER_STATUS_CHANGED, "payment_status": PAYMENT_STATUS_CHANGED,
                 "fulfillment_status": FULFILLMENT_UPDATED}[field]
    emit(session, event, {**extra,
        "order_id": order.id, "number": f"#{order.number}", "customer_id": order.customer_id,
        "email": order.email, "locale": order.locale, "currency": order.currency,
        "total": order.total, "from": current, "to": to, "actor": actor,
        "notify_customer": notify, "comment": comment, "carrier": order.carrier,
        "tracking_number": order.tracking_number, "tracking_url": order.tracking_url,
        "first_name": (order.shipping_address or {}).get("first_name"),
        "refunded_total": order.refunded_total, "refund_amount": refund_amount,
        "payment_alert": order.payment_alert,
        # An account's order opens in the account; a guest's with its token.
        "access_token_sealed": order.access_token_sealed if order.customer_id is None
        else None,
    })


def recovery_token(order: Order) -> str:
    """The order's recovery token, sealed (made the first time it is needed)."""
    if order.recovery_token_sealed is None:
        token, token_hash = new_token()
        order.recovery_token_hash, order.recovery_token_sealed = token_hash, seal(token)
    return order.recovery_token_sealed


def release_stock(session: Any, order: Order) -> None:
    """Put an order's units back. Called only on the transition from a status that holds
    stock into canceled or abandoned, under the order's row lock: at most once."""
    for line in order.lines:
        session.execute(update(Product)
                        .where(Product.sku == line.sku, Product.stock.is_not(None))
                        .values(stock=Product.stock + line.quantity)
                        .execution_options(synchronize_session=False))
