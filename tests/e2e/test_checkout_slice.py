"""The first end-to-end slice, through the gateway over real HTTP, in the default mode.

checkout → orders (prices, stock, #1001, outbox) → notifications (email over SMTP)
                                                  → customers (guest record, figures)
"""

from __future__ import annotations

import hashlib
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import create_engine, text

from harness.infra import wait_for
from harness.smtp import SmtpSink
from harness.system import System

ADDRESS = {"first_name": "Ana", "last_name": "García", "line1": "Calle Mayor 1",
           "city": "Madrid", "postal_code": "28013", "country": "es"}


def checkout(system: System, email: str, lines: list[dict[str, Any]], **extra: Any
             ) -> requests.Response:
    headers = extra.pop("headers", {})
    body = {"email": email, "lines": lines, "shipping_address": ADDRESS, **extra}
    return requests.post(system.api("/checkout"), json=body, headers=headers, timeout=15)


def stock_of(system: System, sku: str) -> int | None:
    products = requests.get(system.api("/products"), timeout=10).json()["items"]
    return next(p["stock"] for p in products if p["sku"] == sku)


def test_guest_checkout_places_order_emails_it_and_records_the_customer(
    system: System, smtp: SmtpSink
) -> None:
    assert requests.get(system.api("/store"), timeout=10).json()["customer_accounts"] == \
        "disabled"
    mug_stock = stock_of(system, "MUG-LOGO")
    request_id = f"test-{uuid.uuid4()}"

    response = checkout(system, "Ana.Garcia@Example.com",
                        [{"sku": "MUG-LOGO", "quantity": 2}, {"sku": "EBOOK-RECIPES",
                                                               "quantity": 1}],
                        headers={"X-Request-ID": request_id})

    assert response.status_code == 201, response.text
    assert response.headers["X-Request-ID"] == request_id
    order = response.json()["order"]
    assert order["number"] == "#1001"
    assert order["status"] == "pending_payment"
    assert order["email"] == "ana.garcia@example.com"
    assert (order["subtotal"], order["total"], order["currency"]) == (3400, 3400, "EUR")
    assert [(line["sku"], line["quantity"], line["unit_price"]) for line in order["lines"]] == [
        ("EBOOK-RECIPES", 1, 900), ("MUG-LOGO", 2, 1250)]
    assert response.headers["Location"] == f"/api/v1/orders/{order['id']}"
    assert stock_of(system, "MUG-LOGO") == mug_stock - 2

    # notifications: one confirmation, in the store's language (Spanish by default)
    [mail] = smtp.wait_for_mail_to("ana.garcia@example.com")
    assert mail.subject == "Hemos recibido tu pedido #1001"
    text = mail.text()
    assert "Gracias por tu pedido #1001" in text
    assert "34,00\xa0€" in text
    assert f"http://shop.test/orders/{order['id']}?token=" in text
    assert "create-account" not in text  # accounts are disabled: no offer
    assert "Taza con logo" in mail.html()

    # customers: the guest, with its figures kept from the event
    def customer() -> Any:
        rows = system.sql("customers", "SELECT * FROM customers WHERE email = :e",
                          e="ana.garcia@example.com")
        return rows[0] if rows else None

    row = wait_for(customer, message="the guest customer")
    assert (row.type, row.orders_count, row.country, row.city) == ("guest", 1, "ES", "Madrid")
    # nothing spent yet: the order awaits payment
    assert system.sql("customers", "SELECT amount FROM customer_spend WHERE customer_id = :c "
                                   "AND amount > 0", c=row.id) == []

    # the request id travelled through RPC and the event into the services' logs
    def services_logging(marker: str) -> set[str]:
        lines = [line for line in system.log_tail(2000).splitlines() if marker in line]
        return {s for s in ("orders", "notifications") if any(
            f'"service": "{s}"' in line for line in lines)}

    wait_for(lambda: services_logging(request_id) == {"orders", "notifications"}, timeout=10,
             message="the request id in orders' and notifications' logs")


def test_second_order_of_same_customer_adds_to_figures(system: System, smtp: SmtpSink) -> None:
    email = f"repeat-{uuid.uuid4().hex[:8]}@example.com"
    for _ in range(2):
        assert checkout(system, email, [{"sku": "TSHIRT-RED-M", "quantity": 1}]).status_code \
            == 201
    smtp.wait_for_mail_to(email, count=2)
    row = wait_for(lambda: next(iter(system.sql(
        "customers", "SELECT orders_count FROM customers WHERE email = :e AND orders_count = 2",
        e=email)), None), message="two orders counted")
    assert row.orders_count == 2


def test_english_store_sends_english_email(system: System, smtp: SmtpSink) -> None:
    config = {"AMQP_URI": system.env["AMQP_URI"]}
    with ClusterRpcProxy(config, timeout=10) as rpc:
        rpc.identity.update_store_settings({"locale": "en"}, "test")
    try:
        wait_for(lambda: requests.get(system.api("/store"), timeout=5).json()["locale"] == "en",
                 timeout=5, message="the new locale in force")
        time.sleep(1.2)  # every gateway process's settings cache (1 s) has let go of "es"
        email = f"en-{uuid.uuid4().hex[:8]}@example.com"
        response = checkout(system, email, [{"sku": "TSHIRT-RED-M", "quantity": 1}])
        assert response.status_code == 201
        [mail] = smtp.wait_for_mail_to(email)
        number = response.json()["order"]["number"]
        assert mail.subject == f"Order {number} received"
        assert "€19.90" in mail.text()
    finally:
        with ClusterRpcProxy(config, timeout=10) as rpc:
            rpc.identity.update_store_settings({"locale": "es"}, "test")


def test_idempotency_key_replays_the_same_order(system: System) -> None:
    email = f"idem-{uuid.uuid4().hex[:8]}@example.com"
    key = str(uuid.uuid4())
    lines = [{"sku": "TSHIRT-RED-M", "quantity": 1}]
    first = checkout(system, email, lines, headers={"Idempotency-Key": key})
    again = checkout(system, email, lines, headers={"Idempotency-Key": key})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["order"]["id"] == first.json()["order"]["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    [(count,)] = system.sql("orders", "SELECT count(*) FROM orders WHERE email = :e", e=email)
    assert count == 1

    other = checkout(system, email, [{"sku": "TSHIRT-RED-M", "quantity": 2}],
                     headers={"Idempotency-Key": key})
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"


def stored_key(email: str, key: str) -> str:
    """How orders stores a guest's Idempotency-Key: scoped to the guest's email."""
    return hashlib.sha256(f"guest:{email}\n{key}".encode()).hexdigest()


def test_a_concurrent_duplicate_is_told_to_wait(system: System) -> None:
    email = f"inflight-{uuid.uuid4().hex[:8]}@example.com"
    key = str(uuid.uuid4())
    lines = [{"sku": "TSHIRT-RED-M", "quantity": 1}]
    # a request still running holds its key (a transaction-scoped advisory lock in orders'
    # database, taken with the order's transaction): a duplicate meanwhile is told to wait
    engine = create_engine(system.database_urls["orders"])
    held = engine.connect()
    try:
        assert held.scalar(text("SELECT pg_try_advisory_xact_lock(hashtextextended(:k, 0))"),
                           {"k": f"checkout:{stored_key(email, key)}"})
        busy = checkout(system, email, lines, headers={"Idempotency-Key": key})
        assert (busy.status_code, busy.json()["code"]) == (409, "idempotency_in_progress")
        assert busy.headers["Retry-After"] == "1"
    finally:
        held.close()  # the request died: its key is free at once, no claim left behind
        engine.dispose()
    assert checkout(system, email, lines, headers={"Idempotency-Key": key}).status_code == 201

    # a burst of the same request: one order, the others replay it or are told to wait
    burst_key = str(uuid.uuid4())
    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(lambda _: checkout(
            system, email, lines, headers={"Idempotency-Key": burst_key}), range(6)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1 and set(statuses) <= {200, 201, 409}, statuses
    ids = {r.json()["order"]["id"] for r in responses if r.status_code in (200, 201)}
    assert len(ids) == 1
    [(count,)] = system.sql("orders", "SELECT count(*) FROM orders WHERE idempotency_key = :k",
                            k=stored_key(email, burst_key))
    assert count == 1


def test_a_failed_checkout_frees_its_key(system: System) -> None:
    key = str(uuid.uuid4())
    email = f"retry-{uuid.uuid4().hex[:8]}@example.com"
    failed = checkout(system, email, [{"sku": "NOPE", "quantity": 1}],
                      headers={"Idempotency-Key": key})
    assert failed.status_code == 422
    again = checkout(system, email, [{"sku": "NOPE", "quantity": 1}],
                     headers={"Idempotency-Key": key})
    assert again.status_code == 422 and again.json()["code"] == "unknown_product"


def test_last_units_are_never_oversold(system: System) -> None:
    stock = stock_of(system, "POSTER-A2")
    assert stock is not None and stock > 0
    attempts = stock + 5

    def buy(i: int) -> int:
        return checkout(system, f"poster-{i}-{uuid.uuid4().hex[:6]}@example.com",
                        [{"sku": "POSTER-A2", "quantity": 1}]).status_code

    with ThreadPoolExecutor(max_workers=attempts) as pool:
        statuses = list(pool.map(buy, range(attempts)))
    assert statuses.count(201) == stock
    assert statuses.count(409) == 5
    assert stock_of(system, "POSTER-A2") == 0


def test_bad_input_gets_a_problem_never_a_500(system: System) -> None:
    url = system.api("/checkout")

    def problem(response: requests.Response, status: int, code: str) -> dict[str, Any]:
        assert response.status_code == status, response.text
        assert response.headers["Content-Type"].startswith("application/problem+json")
        body = response.json()
        assert body["status"] == status and body["code"] == code
        assert "Traceback" not in response.text
        return body

    problem(requests.post(url, data="email=x", timeout=10,
                          headers={"Content-Type": "application/x-www-form-urlencoded"}),
            415, "unsupported_media_type")
    problem(requests.post(url, data="{not json", headers={"Content-Type": "application/json"},
                          timeout=10), 400, "malformed_json")
    problem(requests.post(url, data=b'{"email": "\xff"}',
                          headers={"Content-Type": "application/json"}, timeout=10),
            400, "invalid_encoding")
    problem(requests.post(url, data="x" * 200_000, headers={"Content-Type": "application/json"},
                          timeout=10), 413, "request_entity_too_large")
    body = problem(checkout(system, "a@example.com", [{"sku": "MUG-LOGO", "quantity": 1,
                                                       "unit_price": 1}]),
                   422, "validation_failed")
    assert "unit_price" in str(body["errors"])  # prices never come from the client
    problem(checkout(system, "a@example.com", [{"sku": "MUG-LOGO", "quantity": 1}],
                     customer_id=str(uuid.uuid4())), 422, "validation_failed")
    body = problem(checkout(system, "a@example.com", [{"sku": "NOPE", "quantity": 1}]),
                   422, "unknown_product")
    assert "NOPE" in body["errors"]["lines"]
    body = problem(checkout(system, "not-an-email", [{"sku": "MUG-LOGO", "quantity": 0}]),
                   422, "validation_failed")
    assert {"email", "lines"} <= set(body["errors"])
    body = problem(requests.post(url, json={"email": "a@example.com",
                                            "lines": [{"sku": "MUG-LOGO", "quantity": 1}]},
                                 timeout=10), 422, "validation_failed")
    assert "shipping_address" in body["errors"]
    problem(requests.get(system.api("/nowhere"), timeout=10), 404, "not_found")
