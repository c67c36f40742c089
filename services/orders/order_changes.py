"""The merchant's changes to an order (its three states, a corrected email, notes), manual
orders, and the account offered after a guest checkout."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import update

from messaging.contracts import (
    CUSTOMER_EMAILED_CHANGES,
    ORDER_EMAIL_CORRECTED,
    is_erased_email,
)
from messaging.contracts.orders import OrdersError
from messaging.contracts.orders_admin import ManualOrderSchema, NoteSchema, OrderEmailSchema
from messaging.database import Database
from messaging.envelope import utcnow
from messaging.errors import ServiceError, load_or_raise
from messaging.keys import token_matches
from messaging.links import StorefrontLinks
from messaging.outbox import emit
from services.orders import checkout, domain, payments
from services.orders.models import (
    Order,
    OrderHistory,
)
from services.orders.providers import PaymentProvider
from services.orders.transitions import change_state
from services.orders.wire import (
    ADMIN_ORDER,
    CHANGE_SCHEMAS,
    ORDER,
)

log = logging.getLogger(__name__)


def change_order(db: Database, provider: PaymentProvider | None, order_id: str, field: str,
                 request: dict[str, Any], actor: str) -> dict[str, Any]:
    """Move one of the order's three states (status, payment_status, fulfillment_status)
    along its machine. Illegal: 409 naming the allowed states; the same state: no-op.
    Each change is a history row and an event, in the same transaction."""
    data = load_or_raise(CHANGE_SCHEMAS[field], request)
    with db.transaction() as session:
        order = session.get(Order, domain.id_or_404(order_id), with_for_update=True)
        if order is None:
            raise ServiceError(OrdersError.ORDER_NOT_FOUND, "No such order.", 404)
        if field == "payment_status" and order.payment_method not in \
                domain.MANUAL_PAYMENT_METHODS:
            raise ServiceError(OrdersError.PAYMENT_NOT_MANUAL,
                               f"{order.payment_method} payments are not changed by hand.",
                               409)
        if field == "payment_status" and data[field] in domain.SET_BY_REFUND:
            if data[field] == "partially_refunded":
                raise ServiceError(OrdersError.REFUND_AMOUNT_REQUIRED, "A partial refund has an "
                                   "amount: use POST /admin/orders/{id}/refund.", 422)
            # "Refunded" by hand: everything left, recorded as a refund (its amount kept).
            if order.payment_status != "refunded":
                payments.refund_order(session, provider, order, None, data["comment"],
                                      data["notify_customer"], actor)
            session.flush()
            return ADMIN_ORDER.dump(order)
        if field == "fulfillment_status" and domain.is_digital_only(order.lines):
            raise ServiceError(OrdersError.NOTHING_TO_SHIP, "This order is digital only.", 409)
        if data["notify_customer"] and (field, data[field]) not in CUSTOMER_EMAILED_CHANGES:
            raise ServiceError(
                OrdersError.NOTHING_TO_NOTIFY, "No email tells a customer about this change.", 422,
                errors={"notify_customer": [
                    "Only these changes are emailed: " + ", ".join(
                        f"{f} {s}" for f, s in sorted(CUSTOMER_EMAILED_CHANGES))]})
        implied = domain.follow_ups(field, data[field], order)
        if (field, data[field]) == ("status", "canceled") and \
                domain.check_transition(field, order.status, "canceled"):
            missing = domain.refund_decision_problem(order, data.get("payment"),
                                                     data["comment"])
            if missing:
                raise ServiceError(OrdersError.REFUND_DECISION_REQUIRED,
                                   "Canceling a paid order: refund it or keep it.", 422,
                                   errors=missing)
        refund = (field, data[field]) == ("status", "canceled") and \
            data.get("payment") == "refund" and \
            order.payment_status in domain.REFUNDABLE_PAYMENT
        change_state(session, order, field, data[field], actor, data["comment"],
                     data["notify_customer"], data)
        follows = domain.history_note("follows", field=field, state=data[field])
        for implied_field, state in implied:
            if domain.MACHINES[implied_field][getattr(order, implied_field)] >= {state}:
                change_state(session, order, implied_field, state, "system", None, False,
                             {}, follows)
        if refund:  # through the provider for a card payment; the cancel email says it
            payments.refund_order(session, provider, order, None, None, False, actor,
                                  note=follows)
        session.flush()
        return ADMIN_ORDER.dump(order)


def correct_order_email(db: Database, order_id: str, request: dict[str, Any], actor: str
                        ) -> dict[str, Any]:
    """A guest order's email, corrected by the merchant (a typo at checkout): recorded in
    the history, and later emails go to the new address. An account's orders follow the
    account's email instead (changed by the customer, with confirmation)."""
    data = load_or_raise(OrderEmailSchema(), request)
    with db.transaction() as session:
        order = session.get(Order, domain.id_or_404(order_id), with_for_update=True)
        if order is None:
            raise ServiceError(OrdersError.ORDER_NOT_FOUND, "No such order.", 404)
        if order.customer_id is not None:
            raise ServiceError(OrdersError.ACCOUNT_ORDER,
                               "An account's orders follow the account's "
                               "email: the customer changes it.", 409)
        if is_erased_email(order.email):
            raise ServiceError(OrdersError.CUSTOMER_ERASED, "This customer's data was erased.", 409)
        old_email = order.email
        if data["email"] != old_email:
            order.email = data["email"]
            order.history.append(OrderHistory(
                at=utcnow(), actor=actor, field="email", from_value=old_email,
                to_value=data["email"], comment=data["comment"], notify_customer=False))
            emit(session, ORDER_EMAIL_CORRECTED, {
                "order_id": order.id, "number": f"#{order.number}", "old_email": old_email,
                "email": data["email"], "actor": actor})
        session.flush()
        return ADMIN_ORDER.dump(order)


def add_note(db: Database, order_id: str, request: dict[str, Any], actor: str) -> dict[str, Any]:
    data = load_or_raise(NoteSchema(), request)
    with db.transaction() as session:
        order = session.get(Order, domain.id_or_404(order_id), with_for_update=True)
        if order is None:
            raise ServiceError(OrdersError.ORDER_NOT_FOUND, "No such order.", 404)
        order.history.append(OrderHistory(at=utcnow(), actor=actor, field="note",
                                          comment=data["comment"], notify_customer=False))
        session.flush()
        return ADMIN_ORDER.dump(order)


def create_manual_order(db: Database, provider: PaymentProvider | None,
                        storefront: StorefrontLinks, request: dict[str, Any], actor: str
                        ) -> dict[str, Any]:
    """An order the merchant takes (by phone, in the shop). Paid already: it is marked
    paid, in the same transaction. Otherwise the customer gets a payment link by email,
    and the merchant gets it in the answer."""
    data = load_or_raise(ManualOrderSchema(), request)
    with db.transaction() as session:
        order, access_token, _ = checkout.create_order(
            session, provider, {**data, "idempotency_key": None,
                                     "offer_account": False, "account_exists": False},
            fingerprint=None, actor=actor, payment_link=not data["payment_processed"])
        if data["note"]:
            order.history.append(OrderHistory(at=utcnow(), actor=actor, field="note",
                                              comment=data["note"],
                                              notify_customer=False))
        if data["payment_processed"]:
            for field, state in [("payment_status", "paid"),
                                 *domain.follow_ups("payment_status", "paid", order)]:
                paid = field == "payment_status"
                change_state(session, order, field, state, actor if paid else "system",
                             None, paid, {},  # paid: the "payment received" email
                             domain.history_note("paid_when_taken") if paid else
                             domain.history_note("follows", field="payment_status",
                                                 state="paid"))
        session.flush()
        result = ADMIN_ORDER.dump(order)
    log.info("manual order", extra={"order_number": result["number"], "actor": actor})
    return {"order": result, "payment_url": None if data["payment_processed"] else
            storefront.order(str(order.id), access_token, pay=True)}


def open_account_offer(db: Database, order_id: str, token: str) -> dict[str, Any]:
    """The guest order whose confirmation offered an account, if the offer still stands
    (made at checkout, not expired, not taken): what identity needs to create it."""
    with db.transaction() as session:
        order = session.get(Order, domain.id_or_404(order_id))
        if order is None or not token_matches(str(token), order.access_token_hash):
            raise ServiceError(OrdersError.ORDER_NOT_FOUND, "No such order.", 404)
        if order.account_offer_expires_at is None:
            raise ServiceError(OrdersError.ACCOUNT_OFFER_UNAVAILABLE,
                               "This order did not offer an account: register instead.", 403)
        if order.account_offer_used_at is not None \
                or order.account_offer_expires_at <= utcnow():
            raise ServiceError(OrdersError.ACCOUNT_OFFER_EXPIRED,
                               "This account offer was taken or has expired: register or "
                               "log in instead.", 410)
        return ORDER.dump(order)


def close_account_offer(db: Database, order_id: str) -> None:
    """The offer was taken: it cannot be taken again."""
    with db.transaction() as session:
        session.execute(update(Order).where(Order.id == domain.id_or_404(order_id),
                                            Order.account_offer_used_at.is_(None))
                        .values(account_offer_used_at=utcnow()))
