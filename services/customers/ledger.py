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
from messaging.database import Database, insert_as_flushed, insert_new_returning
from messaging.envelope import Envelope
from messaging.outbox import emit, emit_many
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
    """A batch of new orders (messaging.consumer.BatchEventConsumer), set-based, in one
    transaction: a dozen statements for the batch, whatever its size (marks, currencies,
    the customers it touches, new guests and their spend rows, the ledger rows, updated
    figures, customer_created events), instead of half a dozen per order."""
    orders = {envelope.event_id: load_payload(envelope) for envelope in envelopes}
    with db.transaction() as session:
        fresh: dict[Any, dict[str, Any]] = {}  # by order id: once, if announced twice
        for envelope in db.first_deliveries(session, envelopes):
            fresh.setdefault(orders[envelope.event_id]["order_id"], orders[envelope.event_id])
        if fresh:
            _orders_placed(session, list(fresh.values()))


def _orders_placed(session: Session, orders: list[dict[str, Any]]) -> None:
    currencies = spend_currencies(session)
    for currency in sorted({order["currency"] for order in orders}):
        know_currency(session, currency, currencies)
    emails = [domain.normalise_email(order["email"]) for order in orders]
    book = records.CustomerBook.locked(
        session, ids={order["customer_id"] for order in orders if order["customer_id"]},
        emails=set(emails))
    placed: list[tuple[dict[str, Any], Customer, CustomerOrder]] = []
    created: list[Customer] = []
    created_ids: set[Any] = set()
    for order, email in zip(orders, emails, strict=True):
        # An order with a customer id is that customer's, whatever email it carries (an
        # account's order made before an email change, say); the email finds guests.
        customer = book.find(order["customer_id"], email)
        row = CustomerOrder(
            order_id=order["order_id"], customer_id=None, currency=order["currency"],
            total=order["total"], status=order["status"],
            payment_status=order["payment_status"], refunded=0,
            placed_at=order["placed_at"])
        if customer is None:
            customer = records.guest(email, order["customer_id"], currencies)
            book.add(customer)
            created.append(customer)
            created_ids.add(customer.id)
        if customer.id in created_ids:  # counted ahead, folded into its one INSERT
            domain.apply_order_placed(customer, order)
            count_new_order(customer, row)
        row.customer_id = customer.id
        placed.append((order, customer, row))
    # The figures change by each order's delta, once: only if the ledger lacked it.
    # New guests first (the ledger rows refer to them), then the ledger rows: Core
    # statements, where the unit of work's flush of the guests cost a quarter of this
    # handler, and its bulk insert of the ledger rows 15% (profiled).
    session.flush()  # anything already pending goes in first (usually nothing)
    insert_as_flushed(session, [*created, *(spend for customer in created
                                            for spend in customer.spend)])
    ledger = CustomerOrder.__table__
    inserted = set(session.scalars(
        insert_new_returning(session, ledger, ledger.c.order_id),
        [{column.key: getattr(row, column.key) for column in ledger.columns}
         for _, _, row in placed]))
    for order, customer, row in placed:
        if customer.id not in created_ids:
            domain.apply_order_placed(customer, order)
            if row.order_id in inserted:
                count_new_order(customer, row)
        elif row.order_id not in inserted:  # counted ahead, but another record holds it
            recompute_figures(session, customer)
        if order["save_shipping_address"] and order["shipping_address"]:
            address_book.keep_checkout_address(session, customer, order["shipping_address"])
    emit_many(session, CUSTOMER_CREATED, [customer_event(customer) for customer in created])


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
