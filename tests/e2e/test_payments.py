"""Payments and billing (issue #19) through the gateway, with the real services, RabbitMQ,
PostgreSQL and SMTP, and the built-in ``test`` payment provider: its hosted page, its signed
webhooks, refunds, and the billing address with company and tax id."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from harness.infra import wait_for
from harness.smtp import SmtpSink
from harness.system import System
from services.orders.providers import sign_payload
from tests.e2e.test_accounts import (
    ADDRESS,
    bearer,
    new_email,
    registered_account,
    set_accounts,
)

BILLING = {"first_name": "Ana", "last_name": "Gil", "company": "Gil Suministros SL",
           "tax_id": "B12345678", "line1": "Calle Mayor 1", "city": "Madrid",
           "postal_code": "28013", "country": "ES"}


def checkout(system: System, email: str, method: str = "card", **extra: Any
             ) -> dict[str, Any]:
    response = requests.post(system.api("/checkout"), timeout=15, json={
        "email": email, "lines": [{"sku": "MUG-LOGO", "quantity": 1}],
        "shipping_address": ADDRESS, "payment_method": method, **extra})
    assert response.status_code == 201, response.text
    # A card order answers with the provider's page: the shopper goes straight there.
    assert (response.json()["payment"] is not None) == (method == "card"), response.text
    return {**response.json()["order"], "payment": response.json()["payment"]}


def order_token(smtp: SmtpSink, email: str) -> str:
    mail = smtp.wait_for_mail_to(email)[0]
    return re.search(r"/orders/[\w-]+\?token=([\w-]+)", mail.text()).group(1)


def start_payment(system: System, order_id: str, token: str) -> requests.Response:
    return requests.post(system.api(f"/orders/{order_id}/payment"), json={"token": token},
                         timeout=15)


def admin_order(system: System, owner: dict[str, str], order_id: str) -> dict[str, Any]:
    response = requests.get(system.api(f"/admin/orders/{order_id}"), headers=owner, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def pay_on_test_page(redirect_url: str, outcome: str = "pay") -> requests.Response:
    page = requests.get(redirect_url, timeout=10)
    assert page.status_code == 200 and "<form" in page.text, page.text
    return requests.post(redirect_url, data={"outcome": outcome}, timeout=15,
                         allow_redirects=False)


def webhook_secret(system: System) -> str:
    """The test provider's webhook secret, derived as orders derives it."""
    key = (Path(system.env["CLIENTELA_VAR_DIR"]) / "keys" / "token-sealing.key").read_bytes()
    return hmac.new(key.strip(), b"test-payment-webhooks", hashlib.sha256).hexdigest()


def post_event(system: System, body: str, signature: str | None) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Test-Signature"] = signature
    return requests.post(system.api("/payments/test/webhook"), data=body.encode(),
                         headers=headers, timeout=15)


def session_of(system: System, order_id: str) -> str:
    return system.sql("orders", "SELECT provider_session_id FROM payment_sessions WHERE "
                                "order_id = :o ORDER BY created_at DESC", o=order_id)[0][0]


def test_a_card_order_is_paid_on_the_providers_page(system: System, smtp: SmtpSink,
                                                    owner: dict[str, str]) -> None:
    email = new_email("card")
    order = checkout(system, email)
    token = order_token(smtp, email)
    assert "/orders/" in smtp.to(email)[0].text() and "pay=1" in smtp.to(email)[0].text()

    # Nobody else can start it: no token, a wrong token, another order's id.
    assert requests.post(system.api(f"/orders/{order['id']}/payment"), timeout=10,
                         json={}).status_code == 401
    assert start_payment(system, order["id"], "x" * 43).status_code == 404
    started = start_payment(system, order["id"], token)
    assert started.status_code == 200, started.text
    redirect_url = started.json()["redirect_url"]
    assert redirect_url.startswith(system.url + "/pay/test/")
    assert redirect_url == order["payment"]["redirect_url"]  # the one checkout opened
    # A second click, another tab: the same page, never a second payment.
    assert start_payment(system, order["id"], token).json()["redirect_url"] == redirect_url

    paid = pay_on_test_page(redirect_url)
    assert paid.status_code == 303
    assert paid.headers["Location"] == f"http://shop.test/orders/{order['id']}?payment=done"
    detail = admin_order(system, owner, order["id"])
    assert (detail["status"], detail["payment_status"]) == ("paid", "paid")
    assert detail["payment_reference"].startswith("pay_test_")
    paid_rows = [h for h in detail["history"] if h["field"] == "payment_status"]
    assert [(h["actor"], h["to"]) for h in paid_rows] == [("provider:test", "paid")]
    mails = smtp.wait_for_mail_to(email, count=2)
    assert any("paid" in m.subject.lower() or "pago" in m.subject.lower() for m in mails[1:])
    assert (paid_rows[0]["code"], paid_rows[0]["params"]) == ("paid_at", {"provider": "test"})
    # The customer's email quotes a person's comment only, never the service's own note
    # (it used to print "Paid at test", in English whatever the shopper's language).
    assert all("Paid at" not in m.text() for m in mails)

    # Paying twice is impossible; the page is closed.
    again = start_payment(system, order["id"], token)
    assert (again.status_code, again.json()["code"]) == (409, "already_paid")
    closed = requests.get(redirect_url, timeout=10)
    assert "<form" not in closed.text
    assert requests.post(redirect_url, data={"outcome": "pay"}, timeout=10,
                         allow_redirects=False).status_code == 409


def test_declined_then_paid_and_the_customer_can_retry(system: System, smtp: SmtpSink,
                                                       owner: dict[str, str]) -> None:
    email = new_email("decline")
    order = checkout(system, email)
    token = order_token(smtp, email)
    first = start_payment(system, order["id"], token).json()["redirect_url"]
    declined = pay_on_test_page(first, "decline")
    assert declined.headers["Location"].endswith("?payment=declined")
    detail = admin_order(system, owner, order["id"])
    assert detail["payment_status"] == "pending"
    assert any(h["field"] == "payment" and h["actor"] == "provider:test"
               for h in detail["history"])
    second = start_payment(system, order["id"], token).json()["redirect_url"]
    assert second != first  # the declined page is closed; a new one opens
    assert pay_on_test_page(second).status_code == 303
    assert admin_order(system, owner, order["id"])["payment_status"] == "paid"


def test_webhooks_need_a_signature_and_count_once(system: System, smtp: SmtpSink,
                                                  owner: dict[str, str]) -> None:
    email = new_email("hook")
    order = checkout(system, email)
    token = order_token(smtp, email)
    start_payment(system, order["id"], token)
    session_id = session_of(system, order["id"])
    event = json.dumps({"id": f"evt_{uuid.uuid4().hex}", "type": "payment.succeeded",
                        "data": {"session": session_id, "payment": "pay_hook_1",
                                 "amount": order["total"], "currency": "EUR"}})
    secret = webhook_secret(system)

    unsigned = post_event(system, event, None)
    assert (unsigned.status_code, unsigned.json()["code"]) == (400, "invalid_signature")
    forged = post_event(system, event, sign_payload(event.encode(), "not-the-secret"))
    assert forged.status_code == 400
    stale = post_event(system, event, sign_payload(event.encode(), secret,
                                                   int(time.time()) - 3600))
    assert stale.status_code == 400  # an old signed event replayed later
    assert admin_order(system, owner, order["id"])["payment_status"] == "pending"

    signature = sign_payload(event.encode(), secret)
    assert post_event(system, event, signature).json()["outcome"] == "paid"
    assert post_event(system, event, signature).json()["outcome"] == "duplicate"
    # A late "declined" for the same session (events out of order) changes nothing.
    late = json.dumps({"id": f"evt_{uuid.uuid4().hex}", "type": "payment.declined",
                       "data": {"session": session_id, "payment": "pay_hook_1"}})
    assert post_event(system, late, sign_payload(late.encode(), secret)).status_code == 200
    detail = admin_order(system, owner, order["id"])
    assert detail["payment_status"] == "paid"
    assert sum(1 for h in detail["history"] if h["actor"] == "provider:test") == 1
    smtp.wait_for_mail_to(email, count=2)
    time.sleep(2)
    assert len(smtp.to(email)) == 2  # confirmation + one payment email, not two


def test_a_payment_after_the_order_was_canceled_is_kept_and_flagged(
        system: System, smtp: SmtpSink, owner: dict[str, str]) -> None:
    email = new_email("late")
    order = checkout(system, email)
    token = order_token(smtp, email)
    page = start_payment(system, order["id"], token).json()["redirect_url"]
    canceled = requests.post(system.api(f"/admin/orders/{order['id']}/status"), headers=owner,
                             json={"status": "canceled"}, timeout=10)
    assert canceled.status_code == 200, canceled.text
    assert start_payment(system, order["id"], token).json()["code"] == "order_not_payable"
    assert pay_on_test_page(page).status_code == 303  # the shopper was already paying
    detail = admin_order(system, owner, order["id"])
    assert (detail["status"], detail["payment_status"]) == ("canceled", "paid")
    assert detail["payment_alert"] == "paid_after_canceled"
    flagged = requests.get(system.api("/admin/orders"), params={"payment_alert": "true"},
                           headers=owner, timeout=10).json()["items"]
    assert order["id"] in [o["id"] for o in flagged]
    # The merchant refunds it: through the provider, and the alert is settled.
    refunded = requests.post(system.api(f"/admin/orders/{order['id']}/refund"), headers=owner,
                             json={}, timeout=15)
    assert refunded.status_code == 200, refunded.text
    body = refunded.json()
    assert (body["payment_status"], body["payment_alert"]) == ("refunded", None)
    assert body["refunds"][0]["provider"] == "test"
    assert body["refunds"][0]["provider_refund_id"].startswith("re_test_")


def test_refunds_full_and_partial_move_spend_and_email(system: System, smtp: SmtpSink,
                                                       owner: dict[str, str]) -> None:
    email = new_email("refund")
    made = requests.post(system.api("/admin/orders"), headers=owner, timeout=15, json={
        "email": email, "lines": [{"sku": "MUG-LOGO", "quantity": 2}],
        "shipping_address": ADDRESS, "payment_method": "cash", "payment_processed": True})
    assert made.status_code == 201, made.text
    order = made.json()["order"]
    total = order["total"]

    def refund(**body: Any) -> requests.Response:
        return requests.post(system.api(f"/admin/orders/{order['id']}/refund"), headers=owner,
                             json=body, timeout=15)

    assert refund(amount=total + 1).status_code == 422
    assert refund(amount=0).status_code == 422
    part = refund(amount=500, comment="One mug arrived broken")
    assert part.status_code == 200, part.text
    assert (part.json()["payment_status"], part.json()["refunded_total"]) == (
        "partially_refunded", 500)
    assert part.json()["refunds"][0]["provider"] is None  # cash: recorded by hand
    mails = smtp.wait_for_mail_to(email, count=3)  # taken, paid, refunded
    refund_mail = next(m for m in mails if "reembols" in m.subject.lower()
                       or "devuelto" in m.subject.lower() or "refund" in m.subject.lower())
    assert "5,00" in refund_mail.text() and "One mug arrived broken" in refund_mail.text()

    customer_id = system.sql("customers", "SELECT id FROM customers WHERE email = :e",
                             e=email)[0][0]

    def spent() -> int:
        row = requests.get(system.api(f"/admin/customers/{customer_id}"), headers=owner,
                           timeout=10).json()["customer"]
        return row["total_spent"].get("EUR", 0)

    wait_for(lambda: spent() == total - 500, timeout=15, message="spend less the refund")
    assert refund(amount=total).status_code == 422  # more than is left
    rest = refund()
    assert (rest.json()["payment_status"], rest.json()["refunded_total"]) == ("refunded", total)
    assert (refund().status_code, refund().json()["code"]) == (409, "refund_not_possible")
    wait_for(lambda: spent() == 0, timeout=15, message="spend back to 0")
    smtp.wait_for_mail_to(email, count=4)


@pytest.fixture
def only_card_and_transfer(system: System, owner: dict[str, str]) -> Any:
    def put(body: dict[str, Any]) -> None:
        response = requests.put(system.api("/admin/settings"), headers=owner, json=body,
                                timeout=10)
        assert response.status_code == 200, response.text
        time.sleep(1.2)  # the gateway's settings cache

    put({"payment_methods": ["card", "bank_transfer"],
         "bank_transfer_instructions": "IBAN ES91 2100 0418 4502 0005 1332"})
    yield
    put({"payment_methods": ["bank_transfer", "cash", "cheque", "card"],
         "bank_transfer_instructions": None})


def test_only_enabled_methods_and_the_transfer_instructions(
        system: System, smtp: SmtpSink, owner: dict[str, str], only_card_and_transfer: Any
) -> None:
    store = requests.get(system.api("/store"), timeout=10).json()
    assert [m["method"] for m in store["payment_methods"]] == ["card", "bank_transfer"]
    assert store["payment_methods"][1] == {
        "method": "bank_transfer", "kind": "manual",
        "instructions": "IBAN ES91 2100 0418 4502 0005 1332"}
    refused = requests.post(system.api("/checkout"), timeout=15, json={
        "email": new_email(), "lines": [{"sku": "MUG-LOGO", "quantity": 1}],
        "shipping_address": ADDRESS, "payment_method": "cheque"})
    assert (refused.status_code, refused.json()["code"]) == (422, "payment_method_unavailable")
    manual = requests.post(system.api("/admin/orders"), headers=owner, timeout=15, json={
        "email": new_email(), "lines": [{"sku": "MUG-LOGO", "quantity": 1}],
        "shipping_address": ADDRESS, "payment_method": "cash"})
    assert manual.status_code == 422

    email = new_email("transfer")
    order = checkout(system, email, method="bank_transfer")
    assert order["payment_instructions"] == "IBAN ES91 2100 0418 4502 0005 1332"
    mail = smtp.wait_for_mail_to(email)[0]
    assert "IBAN ES91 2100 0418 4502 0005 1332" in mail.text()
    assert order["number"] in mail.text()


def test_the_billing_address_with_company_and_tax_id(system: System, smtp: SmtpSink,
                                                     owner: dict[str, str]) -> None:
    email = new_email("billing")
    order = checkout(system, email, method="bank_transfer", billing_address=BILLING)
    assert order["billing_address"]["tax_id"] == "B12345678"
    assert order["billing_address"]["company"] == "Gil Suministros SL"
    mail = smtp.wait_for_mail_to(email)[0]
    assert "B12345678" in mail.text() and "Gil Suministros SL" in mail.text()
    plain = checkout(system, new_email("same"), method="bank_transfer")
    assert plain["billing_address"] == plain["shipping_address"]  # the default
    bad = requests.post(system.api("/checkout"), timeout=15, json={
        "email": new_email(), "lines": [{"sku": "MUG-LOGO", "quantity": 1}],
        "shipping_address": ADDRESS, "billing_address": {**BILLING, "tax_id": "<b>\n"}})
    assert bad.status_code == 422

    def listed() -> dict[str, Any] | None:
        items = requests.get(system.api("/admin/customers"), params={"q": email},
                             headers=owner, timeout=10).json()["items"]
        return items[0] if items else None

    wait_for(lambda: listed() is not None, timeout=15, message="customer listed")
    row = listed()
    assert (row["billing_country"], row["tax_id"]) == ("ES", "B12345678")
    csv = requests.get(system.api("/admin/orders/export"), headers=owner, timeout=30,
                       params={"from": "2020-01-01", "to": "2100-01-01"}).text
    assert "B12345678" in csv and "Gil Suministros SL" in csv
    printed = requests.get(system.api(f"/admin/orders/{order['id']}/print"), headers=owner,
                           timeout=10).text
    assert "B12345678" in printed and "Gil Suministros SL" in printed


def test_the_address_book_keeps_billing_details_for_checkout(
        system: System, smtp: SmtpSink, owner: dict[str, str]) -> None:
    set_accounts(system, owner, "optional")
    try:
        _, tokens = registered_account(system, smtp)
        headers = bearer(tokens)
        shipping = requests.post(system.api("/me/addresses"), headers=headers, timeout=10,
                                 json={**ADDRESS, "default_shipping": True})
        assert shipping.status_code == 201, shipping.text
        billing = requests.post(system.api("/me/addresses"), headers=headers, timeout=10,
                                json={**BILLING, "default_billing": True})
        assert billing.status_code == 201, billing.text
        assert billing.json()["tax_id"] == "B12345678"
        prefill = requests.get(system.api("/me/checkout-prefill"), headers=headers,
                               timeout=10).json()
        assert prefill["billing_address"]["tax_id"] == "B12345678"
        assert prefill["billing_address"]["company"] == "Gil Suministros SL"
        assert prefill["shipping_address"]["line1"] == ADDRESS["line1"]
        placed = requests.post(system.api("/checkout"), headers=headers, timeout=15, json={
            "lines": [{"sku": "MUG-LOGO", "quantity": 1}], "payment_method": "bank_transfer",
            "shipping_address_id": prefill["shipping_address"]["id"],
            "billing_address_id": prefill["billing_address"]["id"]})
        assert placed.status_code == 201, placed.text
        order = placed.json()["order"]
        assert order["billing_address"]["tax_id"] == "B12345678"
        assert order["shipping_address"]["line1"] == ADDRESS["line1"]
        # Someone else's address id is nobody's here.
        _, other = registered_account(system, smtp)
        stolen = requests.post(system.api("/checkout"), headers=bearer(other), timeout=15,
                               json={"lines": [{"sku": "MUG-LOGO", "quantity": 1}],
                                     "shipping_address": ADDRESS,
                                     "billing_address_id": prefill["billing_address"]["id"]})
        assert stolen.status_code == 404
    finally:
        set_accounts(system, owner, "disabled")


def test_a_digital_card_order_completes_when_the_provider_says_paid(
        system: System, smtp: SmtpSink, owner: dict[str, str]) -> None:
    response = requests.post(system.api("/checkout"), timeout=15, json={
        "email": new_email("ebook"), "lines": [{"sku": "EBOOK-RECIPES", "quantity": 1}],
        "payment_method": "card"})
    assert response.status_code == 201, response.text
    order = response.json()["order"]
    assert pay_on_test_page(response.json()["payment"]["redirect_url"]).status_code == 303
    detail = admin_order(system, owner, order["id"])
    assert (detail["status"], detail["payment_status"]) == ("completed", "paid")
    assert [(h["field"], h["to"], h["actor"]) for h in detail["history"][1:]] == [
        ("payment_status", "paid", "provider:test"), ("status", "paid", "system"),
        ("status", "completed", "system")]
