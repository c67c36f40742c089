"""Templates, header safety and the Maildir mailer, without a broker."""

from __future__ import annotations

import mailbox
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest

from services.notifications import domain
from services.notifications.dependencies import Mailer, build_message, money, render_email


def order_context(first_name: str = "Ana") -> dict:
    return {"order_url": "https://shop.test/orders/42?token=t", "account_url": None, "order": {
        "order_id": "42", "number": "#1001", "currency": "EUR", "total": 3400,
        "lines": [{"sku": "MUG", "title": "Taza", "quantity": 2, "line_total": 2500}],
        "shipping_address": {"first_name": first_name, "last_name": "García",
                             "line1": "Calle Mayor 1", "line2": None, "city": "Madrid",
                             "postal_code": "28013", "country": "ES"}}}


def test_order_confirmation_in_both_languages() -> None:
    subject, text, html = render_email("order_confirmation", "es", order_context())
    assert subject == "Hemos recibido tu pedido #1001"
    assert "34,00\xa0€" in text and "https://shop.test/orders/42" in html
    subject, text, _ = render_email("order_confirmation", "en", order_context())
    assert subject == "Order #1001 received"
    assert "€34.00" in text
    # an unknown locale falls back to English rather than failing the email
    assert render_email("order_confirmation", "de", order_context())[0] == subject


def test_the_account_offer_appears_only_when_made() -> None:
    context = {**order_context(), "account_url": "https://shop.test/create-account?order=42"}
    _, text, html = render_email("order_confirmation", "en", context)
    assert "create an account" in text and 'href="https://shop.test/create-account' in html
    _, text, _ = render_email("order_confirmation", "en", order_context())
    assert "create-account" not in text


def test_names_cannot_inject_markup_or_headers() -> None:
    evil = '<script>alert(1)</script>\r\nBcc: victim@example.com'
    subject, text, html = render_email("order_confirmation", "en", order_context(evil))
    assert "<script>" not in html and "&lt;script&gt;" in html
    message = build_message(delivery_id="1", sender="Shop\r\nBcc: x@y.z <s@shop.test>",
                            recipient="a@example.com", subject=subject, text=text, html=html,
                            locale="en")
    raw = message.as_bytes(policy=policy.SMTP)
    headers = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in headers


def test_non_ascii_names_and_subjects_arrive_as_written() -> None:
    """Encoded words (RFC 2047) on the wire, the same text once a mail client decodes it."""
    import email

    message = build_message(delivery_id="1", sender="Tiénda Ñandú <hola@shop.test>",
                            recipient="a@example.com", subject="¡Gracias! Pedido «1001» — " * 4,
                            text="Envío: 3 €", html="<p>Envío: 3 €</p>", locale="es")
    raw = Mailer.wire_bytes(message)
    headers = raw.split(b"\r\n\r\n", 1)[0]
    assert headers.isascii() and all(len(line) <= 78 for line in headers.split(b"\r\n"))
    parsed = email.message_from_bytes(raw, policy=policy.strict)
    assert parsed["Subject"] == " ".join(("¡Gracias! Pedido «1001» — " * 4).split())
    assert (parsed["From"].addresses[0].display_name, parsed["From"].addresses[0].addr_spec) \
        == ("Tiénda Ñandú", "hola@shop.test")
    assert parsed.get_body(("plain",)).get_content().strip() == "Envío: 3 €"
    assert parsed.get_body(("html",)).get_content().strip() == "<p>Envío: 3 €</p>"


def test_money_uses_the_currency_precision() -> None:
    assert money(1990, "EUR", "es") == "19,90\xa0€"
    assert money(1990, "CLP", "es") == "1.990\xa0CLP"  # no minor unit: 1990 pesos


def test_delivery_ids_are_derived_from_the_event() -> None:
    first = domain.delivery_id("e1", "order_confirmation", "a@example.com")
    assert first == domain.delivery_id("e1", "order_confirmation", "a@example.com")
    assert first != domain.delivery_id("e2", "order_confirmation", "a@example.com")


def test_maildir_mailer_writes_the_message(tmp_path: Path) -> None:
    subject, text, html = render_email("order_confirmation", "es", order_context())
    message = build_message(delivery_id="1", sender="s@shop.test", recipient="a@example.com",
                            subject=subject, text=text, html=html, locale="es")
    Mailer(None, tmp_path / "mail").send(message)
    [stored] = mailbox.Maildir(tmp_path / "mail").values()
    assert stored["Subject"] == subject


def test_bodies_come_back_exactly_from_the_wire_bytes() -> None:
    """Quoted-printable from binascii: non-ASCII, '=', trailing spaces, a line far over 76
    characters, a leading dot and "From " all decode back to what was rendered; a body
    that quotes the message's own boundary line (ours: "=_" and the delivery id) does not
    end its part."""
    text = ("Hola Ñandú — total = 12,50\xa0€  \n.solo un punto\nFrom here\n"
            + "x" * 300 + "\n\tTab\n--=_1\n--=_1--\n")
    html = "<p>" + "Taza \u00d7 2 = 25,00 € " * 40 + "</p>\n"
    message = build_message(delivery_id="1", sender="s@shop.test", recipient="a@example.com",
                            subject="Pedido", text=text, html=html, locale="es")
    wire = Mailer.wire_bytes(message)
    assert max(len(line) for line in wire.split(b"\r\n")) <= 78
    parsed = message_from_bytes(wire, policy=policy.default)
    plain, rich = parsed.get_body(("plain",)), parsed.get_body(("html",))
    assert plain["Content-Transfer-Encoding"] == "quoted-printable"
    assert plain.get_content_charset() == "utf-8"
    assert plain.get_content().replace("\r\n", "\n") == text
    assert rich.get_content().replace("\r\n", "\n") == html
    assert wire.count(b"MIME-Version") == 1
    assert [part.get_content_type() for part in parsed.iter_parts()] == [
        "text/plain", "text/html"]


def test_retry_schedule_runs_out() -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    delays = domain.mail_retry_delays()
    assert domain.next_attempt(1, now) is not None
    assert domain.next_attempt(len(delays) + 1, now) is None


ACCOUNT = {"first_name": "Ana", "store_name": "Tienda", "email": "ana@example.com",
           "old_email": "old@example.com", "new_email": "new@example.com", "reason": "reset"}
CHANGE = {"number": "#1001", "total": 1990, "currency": "EUR", "carrier": "Correos",
          "tracking_number": "PK1", "tracking_url": "https://track.example/PK1",
          "comment": "sin stock", "order_url": "https://shop.test/orders/1"}
EVERY_EMAIL = {
    "order_confirmation": (order_context(), "https://shop.test/orders/42"),
    "welcome": ({**ACCOUNT, "verify_url": "https://shop.test/verify-email?token=v"},
                "verify-email?token=v"),
    "password_reset": ({**ACCOUNT, "reset_url": "https://shop.test/reset-password?token=r"},
                       "reset-password?token=r"),
    "password_changed": ({**ACCOUNT, "forgot_url": "https://shop.test/forgot-password"},
                         "forgot-password"),
    "invitation": ({**ACCOUNT, "activate_url": "https://shop.test/activate?token=a"},
                   "activate?token=a"),
    "account_approved": ({**ACCOUNT, "login_url": "https://shop.test/login"}, "/login"),
    "email_change_confirm": ({**ACCOUNT, "confirm_url": "https://shop.test/confirm?token=c"},
                             "confirm?token=c"),
    "email_change_notice": ({**ACCOUNT, "revert_url": "https://shop.test/revert?token=x"},
                            "revert?token=x"),
    "email_address_in_use": ({**ACCOUNT, "new_email": "taken@example.com",
                              "login_url": "https://shop.test/login"}, "shop.test/login"),
    "payment_received": (CHANGE, "https://shop.test/orders/1"),
    "payment_refunded": (CHANGE, "https://shop.test/orders/1"),
    "order_shipped": (CHANGE, "https://track.example/PK1"),
    "order_delivered": (CHANGE, "https://shop.test/orders/1"),
    "order_canceled": (CHANGE, "sin stock"),
    "order_recovery": ({**CHANGE, "recover_url": "https://shop.test/recover/r3c"},
                       "https://shop.test/recover/r3c"),
    "order_payment_link": ({**order_context(), "pay_url": "https://shop.test/orders/9?token=p"},
                           "https://shop.test/orders/9?token=p"),
}


@pytest.mark.parametrize("locale", ["es", "en"])
@pytest.mark.parametrize("kind", sorted(EVERY_EMAIL))
def test_every_email_in_both_languages_carries_its_link(kind: str, locale: str) -> None:
    context, needle = EVERY_EMAIL[kind]
    subject, text, html = render_email(kind, locale, context)
    assert subject and "{{" not in subject + text + html
    assert needle in text and needle in html
    assert f'lang="{locale}"' in html



@pytest.fixture(scope="module")
def dkim_key() -> tuple[bytes, bytes]:
    """A fresh key as `clientela dkim-keygen` makes it: (private PEM, the TXT record's text)."""
    from services.notifications.dependencies import new_dkim_key

    private, record = new_dkim_key("s2026", "shop.test")
    return private, record.split('"')[1].encode()


@pytest.fixture(scope="module")
def smtp_server() -> Any:
    from harness.smtp import SmtpSink

    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.mark.parametrize("locale", ["es", "en"])
@pytest.mark.parametrize("kind", sorted(EVERY_EMAIL))
def test_every_email_meets_the_standards_and_its_dkim_signature_verifies(
        kind: str, locale: str, dkim_key: tuple[bytes, bytes], smtp_server: Any) -> None:
    """What a receiving server checks, on the message as it arrives through a real SMTP
    server (aiosmtpd): it parses under the strict policy, has Date (RFC 5322), a Message-ID on
    the sender's domain, Reply-To, Auto-Submitted (RFC 3834), its language, both
    alternatives, a DKIM signature that verifies with the published key, and links that
    are absolute URLs under STOREFRONT_URL."""
    import email
    import re
    import uuid

    import dkim

    from services.notifications.dependencies import DkimSigner

    context, _ = EVERY_EMAIL[kind]
    subject, text, html = render_email(kind, locale, context)
    recipient = f"{kind}-{locale}-{uuid.uuid4().hex[:6]}@example.com"
    message = build_message(delivery_id=f"6f0f5d8e-{kind}-{locale}",
                            sender="Tienda <hola@shop.test>", recipient=recipient,
                            subject=subject, text=text, html=html, locale=locale,
                            reply_to="ayuda@shop.test")
    Mailer(smtp_server.url, Path("/nonexistent"),
           signer=DkimSigner("s2026", "shop.test", dkim_key[0])).send(message)
    [received] = smtp_server.wait_for_mail_to(recipient)
    raw = received.message.as_bytes(policy=policy.SMTP)
    parsed = email.message_from_bytes(raw, policy=policy.strict)
    assert parsed["Message-ID"] == f"<6f0f5d8e-{kind}-{locale}@shop.test>"
    assert parsed["Date"].datetime.tzinfo is not None
    assert (parsed["Reply-To"], parsed["Auto-Submitted"], parsed["Content-Language"]) == (
        "ayuda@shop.test", "auto-generated", locale)
    assert {part.get_content_type() for part in parsed.walk()} >= {"text/plain", "text/html"}
    record = dkim_key[1]
    assert dkim.verify(raw, dnsfunc=lambda name, timeout=5: record)
    tampered = raw.replace(recipient.encode(), b"eve@example.com", 1)
    assert not dkim.verify(tampered, dnsfunc=lambda name, timeout=5: record)
    links = re.findall(r'href="([^"]+)"', parsed.get_body(("html",)).get_content())
    # the contexts' storefront is https://shop.test; a shipping email links the carrier too
    assert all(link.startswith(("https://shop.test/", "https://track.example/"))
               for link in links), links
