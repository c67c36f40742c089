"""Abandonment with two orders processes sweeping at once, recovery links, manual orders,
carrier tracking links. Through the gateway; mail read from a real SMTP server."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text

from harness.infra import wait_for
from harness.smtp import SmtpSink
from harness.system import System, replicas
from tests.conftest import start_system

ADDRESS = {"first_name": "Rosa", "last_name": "Pino", "line1": "Calle Mayor 2",
           "city": "Toledo", "country": "ES"}


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, vhost: str, databases: dict[str, str],
           smtp: SmtpSink) -> Iterator[System]:
    """The system with a fast abandonment sweep and a second orders process sweeping too."""
    running = start_system(tmp_path_factory.mktemp("system"), vhost, databases, smtp,
                           ABANDON_SWEEP_SECONDS="0.3")
    with replicas(running, "services.orders.service:OrdersService", 1):
        yield running
    running.stop()


def product(system: System, owner: dict[str, str], stock: int | None) -> str:
    sku = f"P-{uuid.uuid4().hex[:8]}"
    response = requests.post(system.api("/admin/products"), headers=owner, timeout=10, json={
        "sku": sku, "title": f"Jarra {sku}", "price": 1250, "stock": stock})
    assert response.status_code == 201, response.text
    return sku


def checkout(system: System, email: str, sku: str, method: str = "cheque",
             **extra: Any) -> requests.Response:
    return requests.post(system.api("/checkout"), timeout=15, json={
        "email": email, "lines": [{"sku": sku, "quantity": 1}], "shipping_address": ADDRESS,
        "payment_method": method, **extra})


def admin_order(system: System, owner: dict[str, str], order_id: str) -> dict[str, Any]:
    response = requests.get(system.api(f"/admin/orders/{order_id}"), headers=owner, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def stock_of(system: System, owner: dict[str, str], sku: str) -> int:
    items = requests.get(system.api("/admin/products"), headers=owner, timeout=10).json()
    return next(p["stock"] for p in items["items"] if p["sku"] == sku)


def test_two_replicas_abandon_each_order_once(system: System, owner: dict[str, str],
                                              smtp: SmtpSink) -> None:
    windows = requests.get(system.api("/admin/orders/hold-windows"), headers=owner,
                           timeout=10).json()
    assert windows["card"] == 60 and windows["cheque"] == 14400  # the defaults
    sku = product(system, owner, stock=6)
    domain = f"{uuid.uuid4().hex[:6]}.test"
    orders = []
    for n in range(6):
        response = checkout(system, f"buyer{n}@{domain}", sku)
        assert response.status_code == 201, response.text
        orders.append(response.json()["order"])
    assert checkout(system, f"late@{domain}", sku).status_code == 409  # sold out: held
    assert stock_of(system, owner, sku) == 0

    # A zero window would abandon every unpaid order at the next sweep: refused.
    zero = requests.put(system.api("/admin/orders/hold-windows"), headers=owner,
                        json={"cheque": 0}, timeout=10)
    assert (zero.status_code, zero.json()["code"]) == (422, "validation_failed")
    changed = requests.put(system.api("/admin/orders/hold-windows"), headers=owner,
                           json={"cheque": 15}, timeout=10)
    assert changed.status_code == 200 and changed.json()["cheque"] == 15
    try:  # placed 20 minutes ago, as far as the sweep can tell
        with create_engine(system.database_urls["orders"]).begin() as connection:
            connection.execute(text("UPDATE orders SET placed_at = placed_at - interval "
                                    "'20 minutes' WHERE id = ANY(:ids)"),
                               {"ids": [uuid.UUID(o["id"]) for o in orders]})
        wait_for(lambda: all(admin_order(system, owner, o["id"])["status"] == "abandoned"
                             for o in orders), message="every order abandoned")
    finally:
        requests.put(system.api("/admin/orders/hold-windows"), headers=owner,
                     json={"cheque": 14400}, timeout=10)
    for n in range(len(orders)):
        wait_for(lambda n=n: smtp.to(f"buyer{n}@{domain}") and any(
            "/recover/" in m.text() for m in smtp.to(f"buyer{n}@{domain}")),
            message="the recovery email")
    time.sleep(1.5)  # several more sweeps by both processes: nothing more may happen

    assert stock_of(system, owner, sku) == 6  # every unit back, once
    for n, placed in enumerate(orders):
        history = admin_order(system, owner, placed["id"])["history"]
        abandoned = [h for h in history if h["to"] == "abandoned"]
        assert len(abandoned) == 1 and abandoned[0]["actor"] == "system", history
        recovery_mails = [m for m in smtp.to(f"buyer{n}@{domain}") if "/recover/" in m.text()]
        assert len(recovery_mails) == 1
    events = system.sql("orders", "SELECT body FROM outbox WHERE event_type = 'order_abandoned'"
                        " AND body LIKE :domain", domain=f"%{domain}%")
    assert len(events) == 6


def test_a_recovery_link_brings_the_cart_back(system: System, owner: dict[str, str],
                                              smtp: SmtpSink) -> None:
    sku = product(system, owner, stock=None)
    email = f"again-{uuid.uuid4().hex[:8]}@example.com"
    placed = checkout(system, email, sku).json()["order"]
    pending = requests.get(system.api(f"/admin/orders/{placed['id']}/recovery-url"),
                           headers=owner, timeout=10)
    assert pending.status_code == 409 and pending.json()["code"] == "not_recoverable"
    canceled = requests.post(system.api(f"/admin/orders/{placed['id']}/status"), headers=owner,
                             json={"status": "canceled", "comment": "no stock"}, timeout=10)
    assert canceled.status_code == 200, canceled.text

    link = requests.get(system.api(f"/admin/orders/{placed['id']}/recovery-url"),
                        headers=owner, timeout=10).json()
    again = requests.get(system.api(f"/admin/orders/{placed['id']}/recovery-url"),
                         headers=owner, timeout=10).json()
    assert link == again and link["url"].startswith("http://shop.test/recover/")
    token = link["url"].rsplit("/", 1)[1]
    cart = requests.get(system.api(f"/recover/{token}"), timeout=10)
    assert cart.status_code == 200, cart.text
    body = cart.json()
    assert body["number"] == placed["number"] and body["email"] == email
    # the same cart shape as a saved cart or a direct-buy link, at today's price
    assert body["lines"] == [{"sku": sku, "title": f"Jarra {sku}", "quantity": 1,
                              "unit_price": 1250, "line_total": 1250, "currency": "EUR",
                              "previous_unit_price": None, "list_price": None,
                              "price_source": "catalogue", "available": True, "issue": None,
                              "stock": None}]
    assert (body["subtotal"], body["ready_for_checkout"]) == (1250, True)
    repriced = requests.patch(system.api(f"/admin/products/{sku}"), headers=owner,
                              json={"price": 1400}, timeout=10)
    assert repriced.status_code == 200
    line = requests.get(system.api(f"/recover/{token}"), timeout=10).json()["lines"][0]
    assert (line["unit_price"], line["previous_unit_price"]) == (1400, 1250)

    recovered = checkout(system, email, sku, recovery_token=token)
    assert recovered.status_code == 201, recovered.text
    new = admin_order(system, owner, recovered.json()["order"]["id"])
    assert new["recovered_from"] == placed["id"] and new["channel"] == "storefront"
    assert requests.get(system.api("/recover/not-a-token"), timeout=10).status_code == 404
    bogus = checkout(system, email, sku, recovery_token="not-a-token")
    assert bogus.status_code == 422 and bogus.json()["code"] == "recovery_link_invalid"


def test_manual_orders(system: System, owner: dict[str, str], smtp: SmtpSink) -> None:
    sku = product(system, owner, stock=10)
    paid_email = f"counter-{uuid.uuid4().hex[:8]}@example.com"
    paid = requests.post(system.api("/admin/orders"), headers=owner, timeout=15, json={
        "email": paid_email, "lines": [{"sku": sku, "quantity": 2}],
        "shipping_address": ADDRESS, "payment_method": "cash", "payment_processed": True,
        "note": "Paid at the counter"})
    assert paid.status_code == 201, paid.text
    assert paid.json()["payment_url"] is None
    order = admin_order(system, owner, paid.json()["order"]["id"])
    assert (order["status"], order["payment_status"], order["total"]) == ("paid", "paid", 2500)
    assert order["channel"] == "admin" and order["created_by"].startswith("staff:")
    staff_rows = [h for h in order["history"] if h["actor"].startswith("staff:")]
    assert {(h["field"], h["to"]) for h in staff_rows} >= {
        ("status", "pending_payment"), ("payment_status", "paid"), ("note", None)}
    assert stock_of(system, owner, sku) == 8
    smtp.wait_for_mail_to(paid_email)

    link_email = f"phone-{uuid.uuid4().hex[:8]}@example.com"
    unpaid = requests.post(system.api("/admin/orders"), headers=owner, timeout=15, json={
        "email": link_email, "lines": [{"sku": sku, "quantity": 1}],
        "shipping_address": ADDRESS, "payment_method": "card", "locale": "en"})
    assert unpaid.status_code == 201, unpaid.text
    pay_url = unpaid.json()["payment_url"]
    assert unpaid.json()["order"]["status"] == "pending_payment"
    [mail] = smtp.wait_for_mail_to(link_email)
    assert pay_url in mail.text() and "pay here" in mail.subject.lower()
    order_id, token = re.search(r"/orders/([\w-]+)\?token=([\w-]+)", pay_url).groups()
    assert requests.get(system.api(f"/orders/{order_id}"), params={"token": token},
                        timeout=10).status_code == 200

    for bad in ({"email": link_email, "lines": []},
                {"email": link_email, "lines": [{"sku": sku, "quantity": 1}],
                 "payment_processed": "yes"},
                {"email": "nope", "lines": [{"sku": sku, "quantity": 1}]}):
        response = requests.post(system.api("/admin/orders"), headers=owner, json=bad,
                                 timeout=10)
        assert response.status_code == 422, (bad, response.text)
    assert requests.post(system.api("/admin/orders"), json={}, timeout=10).status_code == 401


def test_carrier_templates_fill_the_tracking_link(system: System,
                                                  owner: dict[str, str]) -> None:
    sku = product(system, owner, stock=None)
    made = requests.post(system.api("/admin/orders"), headers=owner, timeout=15, json={
        "email": f"ship-{uuid.uuid4().hex[:8]}@example.com",
        "lines": [{"sku": sku, "quantity": 1}], "shipping_address": ADDRESS,
        "payment_method": "bank_transfer", "payment_processed": True}).json()["order"]
    shipped = requests.post(system.api(f"/admin/orders/{made['id']}/fulfillment"),
                            headers=owner, timeout=10, json={
                                "fulfillment_status": "in_transit", "carrier": "Correos",
                                "tracking_number": "PK 12/3"})
    assert shipped.status_code == 200, shipped.text
    assert shipped.json()["tracking_url"] == (
        "https://www.correos.es/es/es/herramientas/localizador/envios/detalle"
        "?tracking-number=PK%2012%2F3")
