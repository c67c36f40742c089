"""The orders ledger: each order as customers knows it, from order events, and the figures
(orders, spend) computed from it."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import (
    func,
    select,
)
from sqlalchemy.orm import Session

from messaging.contracts import (
    CUSTOMER_CREATED,
    load_payload,
)
from messaging.database import Database, upsert
from messaging.envelope import Envelope
from messaging.outbox import emit
from services.customers import address_book, domain, records
from services.customers.models import (
    Customer,
    CustomerOrder,
)
from services.customers.records import (
    count_new_order,
    customer_event,
    know_currency,
    new_guest,
    recompute_figures,
    spend_currencies,
)

log = logging.getLogger(__name__)


def _order_changed(db: Database, envelope: Envelope, field: str) -> None:
    change = load_payload(envelope)
    with db.transaction() as session:
        if db.already_processed(session, envelope):
            return
        row = session.get(CustomerOrder, change["order_id"], with_for_update=True)
        if row is None:
            # order_placed has not been handled yet: try again later (retry queue).
            raise RuntimeError("order not known yet; retrying")
        if field == "payment_status":
            domain.apply_payment_change(row, change["to"], change.get("refunded_total"))
        else:
            setattr(row, field, change["to"])
        customer = session.get(Customer, row.customer_id, with_for_update=True)
        if field == "status":
            newest = session.scalar(select(func.max(CustomerOrder.placed_at))
                                    .where(CustomerOrder.customer_id == customer.id))
            if row.placed_at >= newest:
                customer.last_order_status = change["to"]
        session.flush()
        recompute_figures(session, customer)


def handle_orders_placed(db: Database, envelopes: list[Envelope]) -> None:
    """A batch of new orders (messaging.consumer.BatchEventConsumer), in one transaction."""
    orders = [load_payload(envelope) for envelope in envelopes]  # each against its contract
    by_event = {envelope.event_id: order for envelope, order in zip(envelopes, orders,
                                                                     strict=True)}
    with db.transaction() as session:
        fresh = db.first_deliveries(session, envelopes)
        currencies = spend_currencies(session) if fresh else []
        for envelope in fresh:
            _order_placed(session, by_event[envelope.event_id], currencies)


def _order_placed(session: Session, order: dict[str, Any], currencies: list[str]) -> None:
    email = domain.normalise_email(order["email"])
    # An order with a customer id is that customer's, whatever email it carries (an
    # account's order made before an email change, say); the email finds guests.
    customer = session.get(Customer, order["customer_id"], with_for_update=True) \
        if order["customer_id"] else None
    if customer is None:
        customer = records.by_email(session, email)
    know_currency(session, order["currency"], currencies)
    row = CustomerOrder(
        order_id=order["order_id"], customer_id=order["customer_id"],
        currency=order["currency"], total=order["total"], status=order["status"],
        payment_status=order["payment_status"], refunded=0, placed_at=order["placed_at"])
    created = customer is None
    if created:  # the order folded in before the insert: one INSERT, no UPDATE after
        customer = new_guest(session, email, order["customer_id"], currencies, order, row)
    else:
        domain.apply_order_placed(customer, order)
    row.customer_id = customer.id
    # The figures change by this order's delta, once: only if the ledger lacked it.
    inserted = session.execute(
        upsert(session, CustomerOrder).values(
            {column.key: getattr(row, column.key)
             for column in CustomerOrder.__table__.columns})
        .on_conflict_do_nothing().returning(CustomerOrder.order_id)).first()
    if inserted is not None and not created:
        count_new_order(customer, row)
    elif inserted is None and created:  # counted ahead, but another record holds it
        recompute_figures(session, customer)
    if order["save_shipping_address"] and order["shipping_address"]:
        address_book.keep_checkout_address(session, customer, order["shipping_address"])
    if created:
        emit(session, CUSTOMER_CREATED, customer_event(customer))


def handle_order_status_changed(db: Database, envelope: Envelope) -> None:
    _order_changed(db, envelope, "status")


def handle_order_canceled(db: Database, envelope: Envelope) -> None:
    _order_changed(db, envelope, "status")


def handle_order_abandoned(db: Database, envelope: Envelope) -> None:
    _order_changed(db, envelope, "status")


def handle_payment_status_changed(db: Database, envelope: Envelope) -> None:
    _order_changed(db, envelope, "payment_status")


def handle_order_email_corrected(db: Database, envelope: Envelope) -> None:
    """A guest order moved to another email: its figures move to that customer."""
    change = load_payload(envelope)
    with db.transaction() as session:
        if db.already_processed(session, envelope):
            return
        row = session.get(CustomerOrder, change["order_id"], with_for_update=True)
        if row is None:
            raise RuntimeError("order not known yet; retrying")
        before = session.get(Customer, row.customer_id, with_for_update=True)
        after = records.by_email(session, change["email"])
        if after is None:
            after = new_guest(session, domain.normalise_email(change["email"]))
            emit(session, CUSTOMER_CREATED, customer_event(after))
        if after.id == row.customer_id:
            return
        row.customer_id = after.id
        session.flush()
        for customer in (before, after):
            if customer is not None:
                recompute_figures(session, customer)
