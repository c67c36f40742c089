"""The orders service in-process, on a real migrated PostgreSQL database: checkout,
transitions and carts called as their RPCs, state and outbox read from its own tables. A
rule's test in a second, without the whole system."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nameko.containers import ServiceContainer
from sqlalchemy import create_engine, event, text

from harness.containers import call, rows, service_container
from messaging.database import Database
from messaging.errors import ServiceError
from services.orders.pricing_rules import DEFAULT_CHECKOUT_LIMITS
from services.orders.service import OrdersService

SERVICE_DIR = Path(__file__).resolve().parents[1]
ADDRESS = {"first_name": "Ana", "last_name": "Gil", "line1": "Calle Mayor 1",
           "city": "Madrid", "country": "ES"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceContainer, str]]:
    """One container and database for the module (its start is most of a test's time);
    each test works on products and orders of its own."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("STOREFRONT_URL", "https://shop.test")
        with service_container(OrdersService, SERVICE_DIR, "ORDERS_DATABASE_URL", monkeypatch,
                               tmp_path_factory.mktemp("orders")) as running:
            yield running


@pytest.fixture
def orders(service: tuple[ServiceContainer, str]) -> tuple[ServiceContainer, str, str]:
    """(container, database URL, a new product's SKU: 5 in stock at 12.50)."""
    container, url = service
    sku = f"MUG-{uuid.uuid4().hex[:8]}"
    call(container, "create_product", {"sku": sku, "title": "Mug", "price": 1250, "stock": 5})
    return container, url, sku


def place(container: ServiceContainer, sku: str, quantity: int = 1, **extra: Any
          ) -> dict[str, Any]:
    return call(container, "place_order", {
        "email": f"{sku.lower()}@example.com", "lines": [{"sku": sku, "quantity": quantity}],
        "shipping_address": ADDRESS, "payment_method": "bank_transfer", **extra})


def test_checkout_prices_from_the_catalogue_holds_stock_and_emits_with_the_order(
        orders: tuple[ServiceContainer, str, str]) -> None:
    container, url, sku = orders
    order = place(container, sku, 2)
    assert (order["total"], order["status"], order["payment_status"]) == (
        2500, "pending_payment", "pending")
    [(stock,)] = rows(url, "SELECT stock FROM products WHERE sku = :s", s=sku)
    assert stock == 3
    [event] = rows(url, "SELECT event_type, body FROM outbox WHERE body LIKE :o",
                   o=f"%{order['id']}%")
    payload = json.loads(event.body)["payload"]
    assert (event.event_type, payload["order_id"], payload["total"]) == (
        "order_placed", order["id"], 2500)
    with pytest.raises(ServiceError) as error:
        place(container, sku, 4)  # 3 left
    assert error.value.code == "out_of_stock"


def test_a_retried_checkout_with_its_key_is_the_same_order(
        orders: tuple[ServiceContainer, str, str]) -> None:
    container, url, sku = orders
    key = f"storefront:{uuid.uuid4()}"
    first = place(container, sku, idempotency_key=key)
    again = place(container, sku, idempotency_key=key)
    assert again["id"] == first["id"] and again.get("replayed") is True
    assert rows(url, "SELECT count(*) FROM orders WHERE email = :e",
                e=f"{sku.lower()}@example.com")[0][0] == 1
    with pytest.raises(ServiceError) as error:  # the same key for another cart
        place(container, sku, 2, idempotency_key=key)
    assert error.value.code == "idempotency_key_reused"


def test_a_checkout_takes_its_key_and_email_locks_in_one_round_trip(
        orders: tuple[ServiceContainer, str, str]) -> None:
    """The Idempotency-Key's lock and the checkout-limits lock on the email are one
    statement (a round trip is most of a statement's cost); the limits themselves are
    checked through the gateway by tests/security/test_hostile_client.py."""
    container, _, sku = orders
    [engine] = [dependency.engine for dependency in container.dependencies
                if isinstance(dependency, Database)]
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        place(container, sku, idempotency_key=f"key-{uuid.uuid4()}")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    locks = [statement for statement in statements if "advisory" in statement]
    assert len(locks) == 1, locks
    assert "pg_try_advisory_xact_lock" in locks[0] and "pg_advisory_xact_lock" in locks[0]


def test_a_placed_order_is_stored_whole_as_the_merchant_reads_it(
        orders: tuple[ServiceContainer, str, str]) -> None:
    """Checkout writes its rows by Core statements: every column a new order has (the
    number the INSERT drew, the defaults, its line and first history row) is there."""
    container, url, sku = orders
    placed = place(container, sku, 2)
    admin = call(container, "get_admin_order", placed["id"])
    assert (admin["number"], admin["refunded_total"], admin["channel"]) == (
        placed["number"], 0, "storefront")
    assert [(line["sku"], line["quantity"], line["line_total"]) for line in admin["lines"]] \
        == [(sku, 2, 2500)]
    assert [(row["code"], row["to"], row["actor"]) for row in admin["history"]] == [
        ("placed", "pending_payment", "customer")]
    [(updated_at, placed_at)] = rows(url, "SELECT updated_at, placed_at FROM orders "
                                          "WHERE id = :i", i=placed["id"])
    assert updated_at == placed_at


def test_the_default_limits_hold_when_the_merchants_row_is_gone(
        orders: tuple[ServiceContainer, str, str]) -> None:
    """Someone emptied checkout_limits by hand: the defaults still count unpaid orders."""
    container, url, sku = orders
    call(container, "update_product", sku, {"stock": 100})
    engine = create_engine(url)
    with engine.begin() as connection:
        kept = connection.execute(text("DELETE FROM checkout_limits RETURNING *")).all()
    try:
        for _ in range(DEFAULT_CHECKOUT_LIMITS["max_unpaid_orders_per_email"]):
            place(container, sku)
        with pytest.raises(ServiceError) as error:
            place(container, sku)
        assert (error.value.code, error.value.status) == ("too_many_unpaid_orders", 409)
    finally:
        with engine.begin() as connection:
            for row in kept:
                connection.execute(text(
                    "INSERT INTO checkout_limits VALUES (:id, :a, :b, :c)"),
                    {"id": row.id, "a": row.max_units_per_product,
                     "b": row.max_units_per_order, "c": row.max_unpaid_orders_per_email})
        engine.dispose()


def test_transitions_follow_the_machines_with_history_and_events(
        orders: tuple[ServiceContainer, str, str]) -> None:
    container, url, sku = orders
    order = place(container, sku)
    paid = call(container, "change_order", order["id"], "payment_status",
                {"payment_status": "paid"}, "staff:1")
    assert (paid["payment_status"], paid["status"]) == ("paid", "paid")
    assert paid["history"][-1]["code"] == "follows"
    with pytest.raises(ServiceError) as error:
        call(container, "change_order", order["id"], "payment_status",
             {"payment_status": "pending"}, "staff:1")
    assert (error.value.code, error.value.status) == ("illegal_transition", 409)
    events = [row.event_type for row in rows(
        url, "SELECT event_type FROM outbox WHERE body LIKE :o ORDER BY id", o=f"%{order['id']}%")]
    assert events == ["order_placed", "payment_status_changed", "order_status_changed"]
    canceled = call(container, "change_order", order["id"], "status",
                    {"status": "canceled", "payment": "refund"}, "staff:1")
    assert (canceled["status"], canceled["payment_status"]) == ("canceled", "refunded")
    [(stock,)] = rows(url, "SELECT stock FROM products WHERE sku = :s", s=sku)
    assert stock == 5  # released


def test_a_saved_cart_adds_caps_and_merges(orders: tuple[ServiceContainer, str, str]) -> None:
    container, _, sku = orders
    customer = str(uuid.uuid4())
    call(container, "add_cart_line", customer, {"sku": sku, "quantity": 2})
    cart = call(container, "add_cart_line", customer, {"sku": sku, "quantity": 1})
    assert [(line["sku"], line["quantity"]) for line in cart["lines"]] == [(sku, 3)]
    merged = call(container, "merge_cart", customer,
                  {"lines": [{"sku": sku, "quantity": 1}]})
    assert [(line["sku"], line["quantity"]) for line in merged["cart"]["lines"]] == [(sku, 4)]
    with pytest.raises(ServiceError) as error:
        call(container, "add_cart_line", customer, {"sku": "NOPE", "quantity": 1})
    assert error.value.code == "unknown_product"
    assert call(container, "get_cart", str(uuid.uuid4()))["lines"] == []


def test_checkout_and_a_manual_order_on_sqlite_as_make_run_keeps_them(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """`make run` keeps orders in SQLite: numbers from the counter row, the rows a checkout
    writes by Core statements, a replay, and a manual order changed after it is stored."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("STOREFRONT_URL", "https://shop.test")
        with service_container(OrdersService, SERVICE_DIR, "ORDERS_DATABASE_URL", monkeypatch,
                               tmp_path_factory.mktemp("orders-sqlite"), sqlite=True
                               ) as (container, url):
            call(container, "create_product", {"sku": "MUG", "title": "Mug", "price": 1250,
                                               "stock": 5})
            first = place(container, "MUG", 2, idempotency_key="storefront:one")
            again = place(container, "MUG", 2, idempotency_key="storefront:one")
            second = place(container, "MUG", 1)
            assert (again["id"], again["replayed"]) == (first["id"], True)
            assert (first["number"], second["number"]) == ("#1001", "#1002")
            manual = call(container, "create_manual_order", {
                "email": "walk-in@example.com", "lines": [{"sku": "MUG", "quantity": 1}],
                "shipping_address": ADDRESS, "payment_method": "cash",
                "payment_processed": True, "note": "paid at the counter"}, "staff:1")
            assert (manual["order"]["number"], manual["order"]["payment_status"]) == (
                "#1003", "paid")
            assert any(row["comment"] == "paid at the counter"
                       for row in manual["order"]["history"])
            [(stock,)] = rows(url, "SELECT stock FROM products WHERE sku = 'MUG'")
            assert stock == 1
