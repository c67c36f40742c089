"""Email as a receiving mail server reads it: through the real SMTP test server, signed with
DKIM, checked under the strict policy, with every header RFC 5322 and RFC 3834 ask for, and
links that are absolute under STOREFRONT_URL. (Every kind in both languages is checked the
same way, without a server, in services/notifications/tests/test_domain.py.)"""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from email import policy
from pathlib import Path

import dkim
import pytest
import requests

from harness.infra import wait_for
from harness.smtp import SmtpSink
from harness.system import System
from services.notifications.dependencies import new_dkim_key
from tests.conftest import start_system
from tests.e2e.test_accounts import ADDRESS, new_email

KEY, RECORD = new_dkim_key("s2026", "shop.test")


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, vhost: str, databases: dict[str, str],
           smtp: SmtpSink) -> Iterator[System]:
    keys = tmp_path_factory.mktemp("dkim")
    (keys / "dkim.pem").write_bytes(KEY)
    running = start_system(tmp_path_factory.mktemp("system"), vhost, databases, smtp,
                           MAIL_FROM="Tienda <hola@shop.test>", DKIM_SELECTOR="s2026",
                           DKIM_DOMAIN="shop.test",
                           DKIM_PRIVATE_KEY_FILE=str(Path(keys / "dkim.pem")))
    yield running
    running.stop()


def test_an_order_confirmation_as_a_mail_server_sees_it(system: System, smtp: SmtpSink,
                                                         owner: dict[str, str]) -> None:
    assert requests.put(system.api("/admin/settings"), headers=owner, timeout=10,
                        json={"reply_to": "Ayuda@Shop.test"}).status_code == 200
    wait_for(lambda: system.sql("notifications", "SELECT 1 FROM sender_profile WHERE "
                                "reply_to = 'ayuda@shop.test'"), message="the reply-to known")
    customer = new_email("inbox")
    placed = requests.post(system.api("/checkout"), timeout=15, json={
        "email": customer, "locale": "en", "lines": [{"sku": "MUG-LOGO", "quantity": 1}],
        "shipping_address": ADDRESS})
    assert placed.status_code == 201, placed.text
    [mail] = smtp.wait_for_mail_to(customer)
    raw = mail.message.as_bytes(policy=policy.SMTP)
    parsed = email.message_from_bytes(raw, policy=policy.strict)
    assert parsed["Date"].datetime.tzinfo is not None
    assert re.fullmatch(r"<[0-9a-f-]+@shop\.test>", parsed["Message-ID"])
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["Content-Language"] == "en"
    assert parsed["From"] == "Tienda <hola@shop.test>"
    assert parsed["Reply-To"] == "ayuda@shop.test"
    txt = RECORD.split('"')[1].encode()
    assert dkim.verify(raw, dnsfunc=lambda name, timeout=5: txt), raw[:600]
    links = re.findall(r'href="([^"]+)"', parsed.get_body(("html",)).get_content())
    assert links and all(link.startswith("http://shop.test/") for link in links), links


def test_a_bouncing_address_is_marked_and_spared_order_emails(
        system: System, smtp: SmtpSink, owner: dict[str, str]) -> None:
    gone = new_email("gone")
    smtp.refused_recipients.add(gone)
    order = requests.post(system.api("/checkout"), timeout=15, json={
        "email": gone, "payment_method": "bank_transfer",
        "lines": [{"sku": "MUG-LOGO", "quantity": 1}], "shipping_address": ADDRESS}).json()
    # the confirmation is tried (the one email a shopper waits for), and bounces
    bounced = wait_for(lambda: requests.get(
        system.api("/admin/notifications"), headers=owner, timeout=10,
        params={"status": "bounced", "recipient": gone}).json()["items"],
        message="the bounce in the delivery log")
    assert bounced[0]["kind"] == "order_confirmation"
    assert system.sql("notifications", "SELECT bounces FROM bouncing_addresses WHERE "
                                       "email = :e", e=gone)[0][0] == 1
    # later order emails are held back, and say why
    paid = requests.post(system.api(f"/admin/orders/{order['order']['id']}/payment-status"),
                         headers=owner, timeout=10,
                         json={"payment_status": "paid", "notify_customer": True})
    assert paid.status_code == 200, paid.text
    skipped = wait_for(lambda: requests.get(
        system.api("/admin/notifications"), headers=owner, timeout=10,
        params={"status": "skipped", "recipient": gone}).json()["items"],
        message="the payment email held back")
    assert skipped[0]["kind"] == "payment_received"
    assert smtp.to(gone) == []
