"""Paying and refunding orders: starting a payment at the provider, what a provider's
webhook event does to an order, and refunds.

The provider is called while the order's row is locked: one open payment session per order
and one refund at a time hold without more machinery. Provider calls carry idempotency keys,
so a retried request never starts a second payment or refunds twice.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from messaging.contracts.orders import OrdersError
from messaging.envelope import utcnow
from messaging.errors import ServiceError
from messaging.keys import token_matches
from messaging.links import StorefrontLinks
from services.orders import domain
from services.orders.models import (
    Order,
    OrderHistory,
    PaymentSession,
    ProviderEvent,
    Refund,
)
from services.orders.providers import PaymentEvent, PaymentProvider, PaymentRequest
from services.orders.transitions import change_state

log = logging.getLogger(__name__)


def _not_found() -> ServiceError:
    return ServiceError(OrdersError.ORDER_NOT_FOUND, "No such order.", 404)


def order_for_payer(session: Session, order_id: uuid.UUID, customer_id: str | None,
                    token: str | None) -> Order:
    """The order, locked, if the caller may pay it: its customer, or whoever holds the guest's
    order token. Anyone else gets the same 404 as for a missing order."""
    order = session.get(Order, order_id, with_for_update=True)
    if order is None:
        raise _not_found()
    if customer_id is not None and order.customer_id is not None \
            and str(order.customer_id) == str(customer_id):
        return order
    if token is not None and token_matches(str(token), order.access_token_hash):
        return order
    raise _not_found()


def start_payment(session: Session, provider: PaymentProvider, order: Order,
                  storefront: StorefrontLinks) -> dict[str, Any]:
    """The page the shopper pays the order on: the open session if there is one (so a second
    click, tab or retry never opens a second payment), else a new one at the provider."""
    if order.payment_status != "pending" and order.payment_status != "voided":
        raise ServiceError(OrdersError.ALREADY_PAID, "This order is paid already.", 409)
    if order.status != "pending_payment":
        raise ServiceError(OrdersError.ORDER_NOT_PAYABLE,
                           f"This order is {order.status}: it can no longer be paid.", 409)
    now = utcnow()
    open_session = session.scalar(
        select(PaymentSession)
        .where(PaymentSession.order_id == order.id, PaymentSession.status == "open",
               PaymentSession.provider == provider.name, PaymentSession.expires_at > now)
        .order_by(PaymentSession.created_at.desc()).limit(1))
    if open_session is not None and open_session.amount == order.total:
        return _session_view(open_session)
    attempts = session.scalar(select(func.count()).select_from(PaymentSession)
                              .where(PaymentSession.order_id == order.id)) or 0
    # The return pages carry no token: the provider keeps these URLs, and the order page
    # link (with the guest's token) stays with the shopper's browser.
    started = provider.start(PaymentRequest(
        order_id=str(order.id), number=f"#{order.number}", email=order.email,
        amount=order.total, currency=order.currency, locale=order.locale,
        success_url=storefront.order(str(order.id), payment="done"),
        cancel_url=storefront.order(str(order.id), payment="canceled"),
        idempotency_key=f"pay-{order.id}-{attempts}"))
    row = PaymentSession(order_id=order.id, provider=provider.name,
                         provider_session_id=started.session_id,
                         redirect_url=started.redirect_url, amount=order.total,
                         currency=order.currency, status="open", created_at=now,
                         expires_at=started.expires_at)
    session.add(row)
    session.flush()
    return _session_view(row)


def _session_view(row: PaymentSession) -> dict[str, Any]:
    return {"redirect_url": row.redirect_url, "provider": row.provider,
            "expires_at": row.expires_at}


def receive_event(session: Session, provider: PaymentProvider, event: PaymentEvent
                  ) -> dict[str, Any]:
    """What a provider's (signed, parsed) event does. Each event id is handled once; events
    may come in any order, and one that no longer applies (declined after paid) is recorded
    and changes nothing."""
    pay_session, order = None, None
    if event.session_id:
        pay_session = session.scalar(select(PaymentSession).where(
            PaymentSession.provider == provider.name,
            PaymentSession.provider_session_id == event.session_id))
        if pay_session is not None:
            order = session.get(Order, pay_session.order_id, with_for_update=True)
    elif event.payment_id:
        order = session.scalar(select(Order).where(Order.payment_reference == event.payment_id)
                               .with_for_update())
    # Checked under the order's lock: two deliveries of one event at once queue up here.
    if session.get(ProviderEvent, (provider.name, event.event_id)) is not None:
        return {"outcome": "duplicate"}
    session.add(ProviderEvent(provider=provider.name, event_id=event.event_id,
                              kind=event.kind, order_id=order.id if order else None,
                              received_at=utcnow()))
    if order is None:
        # Not ours (another integration on the same account), or a type we do not use.
        return {"outcome": "ignored"}
    actor = f"provider:{provider.name}"
    outcome = "no_change"
    if event.kind == "paid":
        outcome = _paid(session, order, pay_session, event, actor)
    elif event.kind == "failed" and pay_session is not None:
        if pay_session.status == "open":
            pay_session.status, pay_session.closed_at = "failed", utcnow()
        if order.payment_status == "pending":
            _note(order, actor, "payment",
                  domain.history_note("declined_at", provider=provider.name))
            outcome = "declined"
    elif event.kind == "expired" and pay_session is not None and pay_session.status == "open":
        pay_session.status, pay_session.closed_at = "expired", utcnow()
        outcome = "expired"
    elif event.kind == "refunded" and event.refunded_total is not None \
            and event.refunded_total > order.refunded_total:
        # Refunded at the provider (its dashboard): the order follows.
        amount = min(event.refunded_total, order.total) - order.refunded_total
        if amount > 0 and order.payment_status in domain.REFUNDABLE_PAYMENT:
            record_refund(session, order, amount, provider.name, event.refund_id, actor,
                          None, notify=True,
                          note=domain.history_note("refunded_at", provider=provider.name))
            outcome = "refunded"
    log.info("payment event", extra={"provider": provider.name, "kind": event.kind,
                                     "outcome": outcome, "order_number": f"#{order.number}"})
    return {"outcome": outcome}


def _paid(session: Session, order: Order, pay_session: PaymentSession | None,
          event: PaymentEvent, actor: str) -> str:
    if pay_session is not None and pay_session.status != "paid":
        pay_session.status, pay_session.closed_at = "paid", utcnow()
    if order.payment_status not in ("pending", "voided"):
        if order.payment_reference and event.payment_id \
                and order.payment_reference != event.payment_id:
            # A second payment for one order: the money is real, the merchant refunds it.
            order.payment_alert = "paid_twice"
            _note(order, actor, "payment",
                  domain.history_note("paid_twice", payment_id=event.payment_id))
            return "paid_twice"
        return "no_change"
    order.payment_reference = event.payment_id
    if order.payment_method not in domain.PROVIDER_PAYMENT_METHODS:
        _note(order, actor, "payment_method",
              domain.history_note("paid_by_card_link", method=order.payment_method))
        order.payment_method = "card"
        order.payment_instructions = None
    was = order.status
    implied = domain.follow_ups("payment_status", "paid", order)
    paid_at = actor.split(":", 1)[1]
    change_state(session, order, "payment_status", "paid", actor, None, True, {},
                 domain.history_note("paid_late", provider=paid_at, status=was)
                 if was in ("abandoned", "canceled") else
                 domain.history_note("paid_at", provider=paid_at))
    for field, state in implied:
        change_state(session, order, field, state, "system", None, False, {},
                     domain.history_note("follows", field="payment_status", state="paid"))
    return "paid_late" if order.payment_alert else "paid"


def _note(order: Order, actor: str, field: str, note: domain.HistoryNote) -> None:
    order.history.append(OrderHistory(at=utcnow(), actor=actor, field=field, code=note[0],
                                      params=note[1], notify_customer=False))


def refund_order(session: Session, provider: PaymentProvider | None, order: Order,
                 amount: int | None, comment: str | None, notify: bool, actor: str,
                 note: domain.HistoryNote | None = None) -> int:
    """Give money back: through the provider for a provider's payment, recorded as given
    by hand for a manual method. Returns the amount refunded."""
    amount, problem = domain.refund_problem(order, amount)
    if problem:
        raise ServiceError(OrdersError.REFUND_NOT_POSSIBLE, f"Cannot refund: {problem}.",
                           409 if order.payment_status not in domain.REFUNDABLE_PAYMENT
                           else 422, errors={"amount": [problem]})
    provider_name, refund_id = None, None
    if order.payment_method in domain.PROVIDER_PAYMENT_METHODS and order.payment_reference:
        paid_with = session.scalar(select(PaymentSession.provider).where(
            PaymentSession.order_id == order.id, PaymentSession.status == "paid").limit(1))
        if provider is None or (paid_with is not None and paid_with != provider.name):
            raise ServiceError(OrdersError.REFUND_PROVIDER_UNAVAILABLE,
                               f"This order was paid at {paid_with or 'a provider'}, which is "
                               "no longer configured: refund it there.", 409)
        # The same refund asked twice (a retried request) is the same refund at the provider.
        refund_id = provider.refund(order.payment_reference, amount,
                                    f"refund-{order.id}-{order.refunded_total}-{amount}")
        provider_name = provider.name
    record_refund(session, order, amount, provider_name, refund_id, actor, comment, notify,
                  note)
    return amount


def record_refund(session: Session, order: Order, amount: int, provider: str | None,
                  refund_id: str | None, actor: str, comment: str | None, notify: bool,
                  note: domain.HistoryNote | None = None) -> None:
    to = domain.payment_status_after_refund(order, amount)
    order.refunded_total += amount
    order.refunds.append(Refund(amount=amount, currency=order.currency, provider=provider,
                                provider_refund_id=refund_id, actor=actor, comment=comment,
                                created_at=utcnow()))
    change_state(session, order, "payment_status", to, actor, comment, notify,
                 {"refund_amount": amount},
                 None if comment else note or domain.history_note(
                     "refunded", amount=amount, currency=order.currency))


def test_page(session: Session, session_id: str) -> tuple[PaymentSession, Order]:
    pay_session = session.scalar(select(PaymentSession).where(
        PaymentSession.provider == "test", PaymentSession.provider_session_id == session_id))
    if pay_session is None:
        raise ServiceError(OrdersError.PAYMENT_SESSION_NOT_FOUND, "No such payment page.", 404)
    return pay_session, session.get(Order, pay_session.order_id)
