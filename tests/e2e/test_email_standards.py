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

from services.notifications.dependencies import new_dkim_key
from tests.conftest import start_system
from tests.e2e.test_accounts import ADDRESS, new_email
from tests.support.infra import wait_for
from tests.support.smtp import SmtpSink
from tests.support.system import System

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
