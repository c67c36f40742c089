"""Every email the store owes, delivered once, logged, resendable, on a real SMTP server."""

from __future__ import annotations

import time
import uuid
from typing import Any

import requests

from harness.infra import wait_for
from harness.smtp import SmtpSink
from harness.system import System

ADDRESS = {"first_name": "Rosa", "last_name": "Gil", "line1": "Calle 3", "city": "Vigo",
           "country": "ES"}


def place(system: System, smtp: SmtpSink, address: dict[str, Any] | None = None
          ) -> dict[str, Any]:
    email = f"n-{uuid.uuid4().hex[:8]}@example.com"
    response = requests.post(system.api("/checkout"), timeout=15, json={
        "email": email, "lines": [{"sku": "MUG-LOGO", "quantity": 1}],
        "shipping_address": address or ADDRESS})
    assert response.status_code == 201, response.text
    smtp.wait_for_mail_to(email)  # the confirmation
    return response.json()["order"]


def change(system: System, owner: dict[str, str], order: dict[str, Any], what: str,
           **body: Any) -> dict[str, Any]:
    response = requests.post(system.api(f"/admin/orders/{order['id']}/{what}"), headers=owner,
                             json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def deliveries(system: System, owner: dict[str, str], **query: Any) -> list[dict[str, Any]]:
    return requests.get(system.api("/admin/notifications"), params=query, headers=owner,
                        timeout=10).json()["items"]


def test_status_emails_go_only_when_the_customer_should_hear(
    system: System, smtp: SmtpSink, owner: dict[str, str]
) -> None:
    order = place(system, smtp)
    email = order["email"]
    change(system, owner, order, "payment-status", payment_status="paid", notify_customer=True)
    change(system, owner, order, "fulfillment", fulfillment_status="requested")  # silent
    change(system, owner, order, "fulfillment", fulfillment_status="in_transit",
           carrier="Correos", tracking_number="PK77",
           tracking_url="https://track.example/PK77", notify_customer=True)
    change(system, owner, order, "fulfillment", fulfillment_status="delivered",
           notify_customer=True)
    mails = smtp.wait_for_mail_to(email, count=4)
    subjects = [m.subject for m in mails]
    assert subjects[1:] == [f"Pago recibido del pedido {order['number']}",
                            f"Tu pedido {order['number']} está en camino",
                            f"Tu pedido {order['number']} ha sido entregado"]
    assert "https://track.example/PK77" in mails[2].html() and "Correos" in mails[2].text()
    time.sleep(1)
    assert len(smtp.to(email)) == 4

    other = place(system, smtp)
    change(system, owner, other, "status", status="canceled", comment="Sin existencias",
           notify_customer=True)
    [*_, canceled] = smtp.wait_for_mail_to(other["email"], count=2)
    assert "cancelado" in canceled.subject and "Sin existencias" in canceled.text()


def test_the_store_switches_emails_off_but_never_account_emails(
    system: System, smtp: SmtpSink, owner: dict[str, str]
) -> None:
    settings = system.api("/admin/notifications/settings")
    assert requests.get(settings, headers=owner, timeout=10).json()["payment_received"] is True
    assert requests.put(settings, headers=owner, timeout=10,
                        json={"password_reset": False}).status_code == 422
    off = requests.put(settings, headers=owner, timeout=10, json={"payment_received": False})
    assert off.json()["payment_received"] is False
    try:
        order = place(system, smtp)
        change(system, owner, order, "payment-status", payment_status="paid",
               notify_customer=True)
        row = wait_for(lambda: next(iter(deliveries(
            system, owner, recipient=order["email"], kind="payment_received")), None),
            message="the skipped delivery")
        assert (row["status"], row["last_error"]) == ("skipped", "switched off")
        time.sleep(1)
        assert len(smtp.to(order["email"])) == 1  # only the confirmation
    finally:
        requests.put(settings, headers=owner, timeout=10, json={"payment_received": True})


def test_a_temporary_smtp_failure_is_retried_and_a_permanent_one_is_not(
    system: System, smtp: SmtpSink, owner: dict[str, str]
) -> None:
    smtp.scripted_replies = ["451 4.3.0 Mailbox busy, try later"]
    order = place(system, smtp)  # waits until the retry delivered it
    [row] = deliveries(system, owner, recipient=order["email"])
    assert (row["status"], row["attempts"]) == ("sent", 2)

    smtp.scripted_replies = ["550 5.1.1 No such user"]
    email = f"gone-{uuid.uuid4().hex[:6]}@example.com"
    requests.post(system.api("/checkout"), timeout=15, json={
        "email": email, "lines": [{"sku": "MUG-LOGO", "quantity": 1}],
        "shipping_address": ADDRESS})
    row = wait_for(lambda: next((d for d in deliveries(system, owner, recipient=email)
                                 if d["status"] == "failed"), None), message="failed")
    time.sleep(4)  # two sweeps of the retry timer
    [row] = deliveries(system, owner, recipient=email)
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert "550" in row["last_error"] and smtp.to(email) == []
    assert row["recipient"].startswith("g***@")  # masked in the log


def test_resend_makes_a_new_logged_delivery(system: System, smtp: SmtpSink,
                                            owner: dict[str, str]) -> None:
    order = place(system, smtp)
    [row] = deliveries(system, owner, recipient=order["email"])
    resent = requests.post(system.api(f"/admin/notifications/{row['id']}/resend"),
                           headers=owner, timeout=10)
    assert resent.status_code == 200 and resent.json()["status"] == "sent"
    assert resent.json()["id"] != row["id"]
    assert len(smtp.wait_for_mail_to(order["email"], count=2)) == 2
    assert len(deliveries(system, owner, recipient=order["email"])) == 2
    assert requests.post(system.api(f"/admin/notifications/{uuid.uuid4()}/resend"),
                         headers=owner, timeout=10).status_code == 404


def test_a_hostile_name_arrives_escaped_and_injects_no_header(
    system: System, smtp: SmtpSink
) -> None:
    # A header injection does not even get in: names are one line (422 at the door).
    injected = requests.post(system.api("/checkout"), timeout=15, json={
        "email": f"n-{uuid.uuid4().hex[:8]}@example.com",
        "lines": [{"sku": "MUG-LOGO", "quantity": 1}],
        "shipping_address": {**ADDRESS, "last_name": "Gil\r\nBcc: victim@example.com"}})
    assert injected.status_code == 422, injected.text
    hostile = {**ADDRESS, "first_name": "<script>alert(1)</script>",
               "last_name": "Gil Bcc: victim@example.com"}
    order = place(system, smtp, hostile)
    [mail] = smtp.to(order["email"])
    assert "<script>" not in mail.html() and "&lt;script&gt;" in mail.html()
    assert mail.message["Bcc"] is None
    assert mail.envelope_to == [order["email"]]
    assert smtp.to("victim@example.com") == []
