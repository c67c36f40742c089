"""The customers service in-process, on a real migrated PostgreSQL database: its ledger (the
order events it folds into customer records and figures) and the address kept from checkout,
events handed to its handlers directly."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nameko.containers import ServiceContainer
from sqlalchemy import event

from harness.containers import call, rows, service_container
from messaging.contracts import ACCOUNT_REGISTERED, ORDER_PLACED, PAYMENT_STATUS_CHANGED
from messaging.database import Database
from messaging.envelope import Envelope
from services.customers.service import CustomersService

SERVICE_DIR = Path(__file__).resolve().parents[1]
ADDRESS = {"first_name": "Ana", "last_name": "Gil", "line1": "Calle Mayor 1",
           "city": "Madrid", "country": "ES"}


@pytest.fixture(scope="module")
def customers(tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[tuple[ServiceContainer, str]]:
    """One container and database for the module; each test has customers of its own."""
    with pytest.MonkeyPatch.context() as monkeypatch, service_container(
            CustomersService, SERVICE_DIR, "CUSTOMERS_DATABASE_URL", monkeypatch,
            tmp_path_factory.mktemp("customers")) as running:
        yield running


def order_placed(email: str, total: int = 1000, **extra: Any) -> Envelope:
    return Envelope(event_type=ORDER_PLACED, source="orders", payload={
        "order_id": str(uuid.uuid4()), "number": "#1001", "email": email, "locale": "es",
        "currency": "EUR", "subtotal": total, "shipping_total": 0, "total": total,
        "status": "pending_payment", "payment_status": "pending",
        "placed_at": "2026-12-02T10:00:00+00:00", "shipping_address": ADDRESS,
        "lines": [{"sku": "MUG", "title": "Mug", "quantity": 1, "unit_price": total,
                   "line_total": total}], **extra})


def paid(order: Envelope) -> Envelope:
    placed = order.payload
    return Envelope(event_type=PAYMENT_STATUS_CHANGED, source="orders", payload={
        "order_id": placed["order_id"], "number": placed["number"], "email": placed["email"],
        "locale": "es", "currency": "EUR", "total": placed["total"], "from": "pending",
        "to": "paid", "actor": "system", "notify_customer": False, "refunded_total": 0})


def test_a_guests_orders_make_one_record_and_its_figures_once(
        customers: tuple[ServiceContainer, str]) -> None:
    container, url = customers
    email = f"guest-{uuid.uuid4().hex[:8]}@example.com"
    first = order_placed(email, 1000)
    call(container, "handle_order_placed", [first])
    call(container, "handle_order_placed", [first])  # redelivered: counted once
    call(container, "handle_order_placed", [order_placed(email.upper(), 500)])  # same person
    call(container, "handle_payment_status_changed", paid(first))
    [record] = rows(url, "SELECT id, type, orders_count FROM customers WHERE email = :e",
                    e=email)
    assert (record.type, record.orders_count) == ("guest", 2)
    [(spent,)] = rows(url, "SELECT amount FROM customer_spend WHERE customer_id = :c",
                      c=record.id)
    assert spent == 1000  # only what was paid
    created = [json.loads(row.body)["payload"]["email"] for row in rows(
        url, "SELECT body FROM outbox WHERE event_type = 'customer_created'")]
    assert created.count(email) == 1


def test_figures_change_by_each_new_orders_delta_once(
        customers: tuple[ServiceContainer, str]) -> None:
    """The figures are kept by deltas, not recounted: an order announced again under another
    event id adds nothing, an order placed already paid adds its spend, and the result is
    what a recount of the ledger gives."""
    container, url = customers
    email = f"delta-{uuid.uuid4().hex[:8]}@example.com"
    first = order_placed(email, 700)
    call(container, "handle_order_placed", [first])
    again = Envelope(event_type=ORDER_PLACED, source="orders", payload=first.payload)
    assert again.event_id != first.event_id
    call(container, "handle_order_placed", [again])
    call(container, "handle_order_placed", [order_placed(email, 300, payment_status="paid")])
    [record] = rows(url, "SELECT id, orders_count FROM customers WHERE email = :e", e=email)
    [(spent,)] = rows(url, "SELECT amount FROM customer_spend WHERE customer_id = :c",
                      c=record.id)
    assert (record.orders_count, spent) == (2, 300)
    [(recount,)] = rows(url, "SELECT count(*) FROM customer_orders WHERE customer_id = :c",
                        c=record.id)
    assert recount == record.orders_count


def test_a_batch_of_orders_counts_as_the_same_orders_one_by_one(
        customers: tuple[ServiceContainer, str]) -> None:
    """One transaction for many orders: a new guest's two orders, the first delivered twice
    in the batch, and another guest's paid order. One record each, each order once."""
    container, url = customers
    anna, ben = (f"{who}-{uuid.uuid4().hex[:8]}@example.com" for who in ("anna", "ben"))
    first = order_placed(anna, 1000, payment_status="paid")
    call(container, "handle_order_placed", [
        first, order_placed(anna.upper(), 500), first,
        order_placed(ben, 250, payment_status="paid")])
    call(container, "handle_order_placed", [first])  # redelivered later: counted once
    # Next batch: an existing customer's new paid order, the same order announced again
    # under another event id, and an account's first order (its record takes the id).
    carl, account_id = f"carl-{uuid.uuid4().hex[:8]}@example.com", uuid.uuid4()
    repeat = order_placed(anna, 400, payment_status="paid")
    call(container, "handle_order_placed", [
        repeat, Envelope(event_type=ORDER_PLACED, source="orders", payload=repeat.payload),
        order_placed(carl, 90, customer_id=str(account_id)), first])
    figures = {row.email: (row.orders_count, row.amount) for row in rows(
        url, "SELECT c.email, c.orders_count, s.amount FROM customers c JOIN customer_spend s"
        " ON s.customer_id = c.id WHERE c.email IN (:a, :b, :c)", a=anna, b=ben, c=carl)}
    assert figures == {anna: (3, 1400), ben: (1, 250), carl: (1, 0)}
    [(carl_id,)] = rows(url, "SELECT id FROM customers WHERE email = :c", c=carl)
    assert carl_id == account_id
    [(ledger,)] = rows(url, "SELECT count(*) FROM customer_orders o JOIN customers c ON "
                            "c.id = o.customer_id WHERE c.email = :a", a=anna)
    assert ledger == 3
    created = [json.loads(row.body)["payload"]["email"] for row in rows(
        url, "SELECT body FROM outbox WHERE event_type = 'customer_created'")]
    assert (created.count(anna), created.count(ben), created.count(carl)) == (1, 1, 1)


def test_a_batch_costs_the_same_statements_whatever_its_size(
        customers: tuple[ServiceContainer, str]) -> None:
    """Set-based: 20 new guests' orders and 20 repeat customers' take as many statements as
    one of each (a statement is a round trip to the database: the cost of an event)."""
    container, _ = customers
    [engine] = [dependency.engine for dependency in container.dependencies
                if isinstance(dependency, Database)]
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    def statements_for(orders: list[Envelope]) -> int:
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            call(container, "handle_order_placed", orders)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(statements)

    emails = [f"set-{i}-{uuid.uuid4().hex[:8]}@example.com" for i in range(21)]
    call(container, "handle_order_placed", [order_placed(emails[0])])  # the store's currency
    emails[0] = f"set-first-{uuid.uuid4().hex[:8]}@example.com"
    one_new = statements_for([order_placed(emails[0])])
    many_new = statements_for([order_placed(email) for email in emails[1:]])
    one_repeat = statements_for([order_placed(emails[0], payment_status="paid")])
    many_repeat = statements_for([order_placed(email, payment_status="paid")
                                  for email in emails[1:]])
    # marks, currencies, customers, [their spend,] new customers, their spend, ledger,
    # [figures, spend,] outbox
    assert many_new == one_new == 8, statements
    assert many_repeat == one_repeat <= 8, statements


def test_the_checkout_address_is_kept_once_for_an_account_that_asked(
        customers: tuple[ServiceContainer, str]) -> None:
    container, _ = customers
    account_id = str(uuid.uuid4())
    email = f"member-{uuid.uuid4().hex[:8]}@example.com"
    call(container, "handle_account_registered", Envelope(
        event_type=ACCOUNT_REGISTERED, source="identity", payload={
            "account_id": account_id, "email": email, "locale": "es", "status": "active"}))
    order = order_placed(email, customer_id=account_id, save_shipping_address=True)
    call(container, "handle_order_placed", [order])
    call(container, "handle_order_placed", [order])  # redelivered
    call(container, "handle_order_placed", [order_placed(  # the same address again
        email, customer_id=account_id, save_shipping_address=True)])
    call(container, "handle_order_placed", [order_placed(  # not asked to keep it
        email, customer_id=account_id, shipping_address={**ADDRESS, "line1": "Otra 2"})])
    [kept] = call(container, "list_addresses", account_id)
    assert (kept["line1"], kept["default_shipping"], kept["default_billing"]) == (
        "Calle Mayor 1", True, True)
