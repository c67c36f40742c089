"""The whole system with PAYMENT_PROVIDER=stripe: orders calls a local fake of Stripe's API
(no network here), and Stripe's webhooks are signed locally with the endpoint's secret, as
Stripe signs them. Through the gateway, with the real services, RabbitMQ, PostgreSQL, SMTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from harness.fake_stripe import FakeStripe, stripe_event
from harness.smtp import SmtpSink
from harness.system import System
from services.orders.providers import sign_payload
from tests.conftest import start_system
from tests.e2e.test_accounts import new_email
from tests.e2e.test_payments import admin_order, checkout, order_token, start_payment

WEBHOOK_SECRET = "whsec_e2e_local"


@pytest.fixture(scope="module")
def fake_stripe() -> Iterator[FakeStripe]:
    server = FakeStripe("sk_test_e2e").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, vhost: str, databases: dict[str, str],
           smtp: SmtpSink, fake_stripe: FakeStripe) -> Iterator[System]:
    running = start_system(tmp_path_factory.mktemp("stripe"), vhost, databases, smtp,
                           PAYMENT_PROVIDER="stripe", STRIPE_SECRET_KEY="sk_test_e2e",
                           STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
                           STRIPE_API_BASE=fake_stripe.url)
    yield running
    running.stop()


def send(system: System, event: dict, secret: str = WEBHOOK_SECRET) -> requests.Response:
    body = json.dumps(event).encode()
    return requests.post(system.api("/payments/stripe/webhook"), data=body, timeout=15,
                         headers={"Content-Type": "application/json",
                                  "Stripe-Signature": sign_payload(body, secret)})


def test_a_card_order_paid_and_refunded_through_stripe(
        system: System, smtp: SmtpSink, owner: dict[str, str], fake_stripe: FakeStripe,
        tmp_path: Path) -> None:
    email = new_email("stripe")
    order = checkout(system, email)
    token = order_token(smtp, email)
    started = start_payment(system, order["id"], token)
    assert started.status_code == 200, started.text
    assert started.json()["redirect_url"].startswith("https://checkout.stripe.com/c/pay/cs_")
    assert started.json()["redirect_url"] == order["payment"]["redirect_url"]
    sent = fake_stripe.calls("/v1/checkout/sessions")[-1]
    assert sent["client_reference_id"] == order["id"]
    assert sent["line_items[0][price_data][unit_amount]"] == str(order["total"])
    assert sent["success_url"] == f"http://shop.test/orders/{order['id']}?payment=done"
    assert token not in json.dumps(sent)  # the guest's key stays with the guest
    session_id = started.json()["redirect_url"].rsplit("/", 1)[1]

    completed = stripe_event("checkout.session.completed", {
        "id": session_id, "object": "checkout.session", "amount_total": order["total"],
        "currency": "eur", "payment_intent": "pi_3E2E", "payment_status": "paid",
        "status": "complete", "client_reference_id": order["id"]})
    assert send(system, completed, "whsec_wrong").status_code == 400
    assert admin_order(system, owner, order["id"])["payment_status"] == "pending"
    assert send(system, completed).json()["outcome"] == "paid"
    assert send(system, completed).json()["outcome"] == "duplicate"
    detail = admin_order(system, owner, order["id"])
    assert (detail["status"], detail["payment_status"], detail["payment_reference"]) == (
        "paid", "paid", "pi_3E2E")
    assert [h["actor"] for h in detail["history"] if h["field"] == "payment_status"] == [
        "provider:stripe"]

    refunded = requests.post(system.api(f"/admin/orders/{order['id']}/refund"), headers=owner,
                             json={"amount": 300, "comment": "Late delivery"}, timeout=15)
    assert refunded.status_code == 200, refunded.text
    assert fake_stripe.calls("/v1/refunds")[-1] == {"payment_intent": "pi_3E2E",
                                                    "amount": "300"}
    assert refunded.json()["refunds"][0]["provider_refund_id"].startswith("re_")
    # Stripe then reports the charge refunded by 300: already recorded, nothing changes.
    charge = stripe_event("charge.refunded", {
        "id": "ch_e2e", "object": "charge", "amount": order["total"], "amount_refunded": 300,
        "currency": "eur", "payment_intent": "pi_3E2E"})
    assert send(system, charge).json()["outcome"] == "no_change"
    # A refund made in Stripe's dashboard: the order follows.
    dashboard = stripe_event("charge.refunded", {
        "id": "ch_e2e", "object": "charge", "amount": order["total"],
        "amount_refunded": order["total"], "currency": "eur", "payment_intent": "pi_3E2E"})
    assert send(system, dashboard).json()["outcome"] == "refunded"
    detail = admin_order(system, owner, order["id"])
    assert (detail["payment_status"], detail["refunded_total"]) == ("refunded", order["total"])
    assert detail["refunds"][-1]["actor"] == "provider:stripe"
