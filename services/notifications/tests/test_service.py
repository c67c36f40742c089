"""The notifications service in-process, on a real migrated PostgreSQL database and a real
SMTP server (aiosmtpd): events handed to its handlers directly, the delivery log and the
mailbox checked. Each email kind's rules (email_kinds) in milliseconds, no system started."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import eventlet
import pytest
from nameko.containers import ServiceContainer
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from harness.containers import call, rows, service_container
from harness.smtp import SmtpSink
from messaging.contracts import (
    EMAIL_CHANGE_REQUESTED,
    ORDER_PLACED,
    PAYMENT_STATUS_CHANGED,
)
from messaging.envelope import Envelope
from messaging.keys import seal
from services.notifications import email_kinds, sending
from services.notifications.dependencies import TEMPLATES_DIR
from services.notifications.service import NotificationsService

SERVICE_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def notifications(tmp_path_factory: pytest.TempPathFactory, smtp: SmtpSink
                  ) -> Iterator[tuple[ServiceContainer, str]]:
    """One container and database for the module; each test mails addresses of its own."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("SMTP_URL", smtp.url)
        monkeypatch.setenv("STOREFRONT_URL", "https://shop.test")
        with service_container(NotificationsService, SERVICE_DIR,
                               "NOTIFICATIONS_DATABASE_URL", monkeypatch,
                               tmp_path_factory.mktemp("notifications")) as running:
            yield running


def order_placed(email: str, **extra: Any) -> Envelope:
    return Envelope(event_type=ORDER_PLACED, source="orders", payload={
        "order_id": str(uuid.uuid4()), "number": "#1001", "email": email, "locale": "en",
        "currency": "EUR", "subtotal": 1000, "shipping_total": 0, "total": 1000,
        "status": "placed", "payment_status": "pending", "placed_at": "2026-12-02T10:00:00+00:00",
        "lines": [{"sku": "MUG", "title": "Mug", "quantity": 1, "unit_price": 1000,
                   "line_total": 1000}], **extra})


def payment_changed(email: str, to: str, notify: bool = True) -> Envelope:
    return Envelope(event_type=PAYMENT_STATUS_CHANGED, source="orders", payload={
        "order_id": str(uuid.uuid4()), "number": "#1002", "email": email, "locale": "en",
        "currency": "EUR", "total": 1000, "from": "pending", "to": to, "actor": "system",
        "notify_customer": notify})


def unique_email(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}@example.com"


def test_every_kind_has_its_templates_in_every_locale() -> None:
    locales = [path.name for path in TEMPLATES_DIR.iterdir() if path.is_dir()]
    assert set(locales) >= {"en", "es"}
    for kind in email_kinds.KINDS:
        for locale in locales:
            for part in ("subject", "txt", "html"):
                assert (TEMPLATES_DIR / locale / f"{kind.name}.{part}.j2").is_file(), (
                    kind.name, locale, part)


def test_the_switchable_kinds_are_the_settings_the_contract_offers() -> None:
    from messaging.contracts.notifications import SWITCHABLE

    assert email_kinds.SWITCHABLE == SWITCHABLE


def test_an_event_asks_for_at_most_one_email() -> None:
    """The kinds answering one event exclude each other (one delivery per event)."""
    samples = {ORDER_PLACED: [{"payment_link": True}, {"payment_link": False}],
               EMAIL_CHANGE_REQUESTED: [{"address_taken": True}, {"address_taken": False}]}
    for event, payloads in samples.items():
        for payload in payloads:
            matching = [kind.name for kind in email_kinds.KINDS
                        if kind.event == event and kind.when(payload)]
            assert len(matching) == 1, (event, payload, matching)


def test_a_guest_confirmation_goes_once_with_its_order_link(
        notifications: tuple[ServiceContainer, str], smtp: SmtpSink) -> None:
    container, url = notifications
    email = unique_email("guest")
    envelope = order_placed(email, access_token_sealed=seal("t0ken"), offer_account=True)
    call(container, "handle_order_placed", [envelope])
    call(container, "handle_order_placed", [envelope])  # redelivered: no second email
    [mail] = smtp.wait_for_mail_to(email)
    order_id = envelope.payload["order_id"]
    assert f"https://shop.test/orders/{order_id}?token=t0ken" in mail.text()
    assert f"https://shop.test/create-account?order={order_id}&token=t0ken" in mail.text()
    [row] = rows(url, "SELECT kind, status, context::text AS context FROM deliveries "
                      "WHERE recipient = :r", r=email)
    assert (row.kind, row.status) == ("order_confirmation", "sent")
    assert "t0ken" not in row.context  # the token stays sealed in the log


def test_a_batch_logs_each_event_once_and_skips_by_each_recipients_facts(
        notifications: tuple[ServiceContainer, str], smtp: SmtpSink) -> None:
    """One transaction for a batch: an event twice in it sends once, a bouncing recipient
    is skipped while the others in the batch go, an event that asks for no email logs
    nothing."""
    container, url = notifications
    anna, ben, bouncing = (unique_email(name) for name in ("anna", "ben", "bounce"))
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO bouncing_addresses (email, bounces, "
                                "first_bounced_at, last_bounced_at) VALUES (:e, 1, now(), "
                                "now())"), {"e": bouncing})
    engine.dispose()
    for_anna = order_placed(anna)
    call(container, "handle_payment_status_changed", [
        payment_changed(ben, "paid"), payment_changed(ben, "paid", False),
        payment_changed(bouncing, "paid")])
    call(container, "handle_order_placed", [for_anna, for_anna])
    assert len(smtp.wait_for_mail_to(anna)) == 1
    assert len(smtp.wait_for_mail_to(ben)) == 1
    logged = {row.recipient: (row.kind, row.status, row.last_error) for row in rows(
        url, "SELECT recipient, kind, status, last_error FROM deliveries "
             "WHERE recipient IN (:a, :b, :c)", a=anna, b=ben, c=bouncing)}
    assert logged == {anna: ("order_confirmation", "sent", None),
                      ben: ("payment_received", "sent", None),
                      bouncing: ("payment_received", "skipped", "recipient bouncing")}


def test_order_changes_send_only_what_the_customer_should_hear(
        notifications: tuple[ServiceContainer, str], smtp: SmtpSink) -> None:
    container, url = notifications
    email = unique_email("buyer")
    call(container, "handle_payment_status_changed", [payment_changed(email, "pending")])
    call(container, "handle_payment_status_changed", [payment_changed(email, "paid", False)])
    call(container, "handle_payment_status_changed", [payment_changed(email, "paid")])
    call(container, "handle_payment_status_changed", [payment_changed(email, "refunded")])
    kinds = [row.kind for row in rows(url, "SELECT kind FROM deliveries WHERE recipient = :r "
                                           "ORDER BY created_at", r=email)]
    assert kinds == ["payment_received", "payment_refunded"]
    assert len(smtp.wait_for_mail_to(email, count=2)) == 2


def test_a_switched_off_kind_is_logged_as_skipped_and_security_emails_cannot_be(
        notifications: tuple[ServiceContainer, str]) -> None:
    container, url = notifications
    settings = call(container, "update_settings", {"payment_received": False})
    assert settings["payment_received"] is False and "password_reset" not in settings
    email = unique_email("quiet")
    try:
        call(container, "handle_payment_status_changed", [payment_changed(email, "paid")])
    finally:  # the module's other tests send it
        call(container, "update_settings", {"payment_received": True})
    [row] = rows(url, "SELECT status, last_error FROM deliveries WHERE recipient = :r",
                 r=email)
    assert (row.status, row.last_error) == ("skipped", "switched off")
    catalogue = {kind["kind"]: kind for kind in call(container, "list_email_kinds")}
    assert catalogue["payment_received"]["switchable"] is True
    assert catalogue["password_reset"] == {"kind": "password_reset",
                                           "event": "password_reset_requested",
                                           "switchable": False}


def test_a_change_to_a_taken_address_sends_its_owner_a_notice_without_a_link(
        notifications: tuple[ServiceContainer, str], smtp: SmtpSink) -> None:
    container, _ = notifications
    taken = unique_email("owner")
    call(container, "handle_email_change_requested", [Envelope(
        event_type=EMAIL_CHANGE_REQUESTED, source="identity", payload={
            "account_id": str(uuid.uuid4()), "email": unique_email("asker"), "locale": "en",
            "new_email": taken, "address_taken": True})])
    [mail] = smtp.wait_for_mail_to(taken)
    assert "confirm-email" not in mail.text() and "https://shop.test/login" in mail.text()


class WritesAlone:
    """``Database.execute_alone`` on the test's real database, each write a round trip that
    takes a while (as on a busy server), counted; ``failures`` of them fail first."""

    def __init__(self, url: str, failures: int = 0) -> None:
        self.engine = create_engine(url)
        self.statements: list[dict[str, Any]] = []
        self.failures = failures

    def execute_alone(self, statement: Any, parameters: dict[str, Any]) -> Any:
        eventlet.sleep(0.02)
        if self.failures:
            self.failures -= 1
            raise OperationalError("UPDATE", {}, Exception("server closed the connection"))
        self.statements.append(parameters)
        with self.engine.begin() as connection:
            return connection.execute(statement, parameters)


def claimed_deliveries(url: str, count: int) -> list[uuid.UUID]:
    """``count`` deliveries logged and claimed for sending, as a batch leaves them."""
    ids = [uuid.uuid4() for _ in range(count)]
    engine = create_engine(url)
    with engine.begin() as connection:
        for delivery_id in ids:
            connection.execute(text(
                "INSERT INTO deliveries (id, event_id, kind, recipient, locale, status, "
                "attempts, context, created_at, next_attempt_at, locked_until) VALUES (:id, "
                ":event, 'order_confirmation', :to, 'en', 'sending', 1, '{}', now(), now(), "
                "now() + interval '5 minutes')"),
                {"id": delivery_id, "event": str(uuid.uuid4()), "to": unique_email("out")})
    engine.dispose()
    return ids


def outcomes_of(url: str, ids: list[uuid.UUID]) -> list[tuple[Any, ...]]:
    return [(row.status, row.sent_at is not None, row.locked_until, row.last_error)
            for row in (rows(url, "SELECT * FROM deliveries WHERE id = :id", id=delivery_id)[0]
                        for delivery_id in ids)]


def test_a_batchs_outcomes_are_written_together_and_each_sender_waits_for_its_own(
        notifications: tuple[ServiceContainer, str]) -> None:
    """Group commit: the first outcome goes at once; the three that finish while it is on
    the wire go in one UPDATE after it; every sender returns with its outcome stored."""
    _, url = notifications
    ids = claimed_deliveries(url, 4)
    db = WritesAlone(url)
    outcomes = sending.OutcomeLog(db)  # type: ignore[arg-type]
    returned = []

    def sender(delivery_id: uuid.UUID) -> None:
        outcomes.record(delivery_id, status="sent")
        returned.append(outcomes_of(url, [delivery_id])[0])  # stored when record returns

    pool = eventlet.GreenPool()
    for delivery_id in ids:
        pool.spawn(sender, delivery_id)
    pool.waitall()
    assert returned == [("sent", True, None, None)] * 4
    assert [len(statement["delivery_ids"]) for statement in db.statements] == [1, 3]


def test_a_failed_outcome_write_is_retried_by_the_next_sender_and_outcomes_keep_their_kind(
        notifications: tuple[ServiceContainer, str]) -> None:
    """The database drops the first write: that sender raises (its email stays claimed
    until the sweep, as before), and the next sender writes its outcome with theirs; a
    deferral keeps its error and retry time beside the "sent" ones."""
    _, url = notifications
    ids = claimed_deliveries(url, 3)
    db = WritesAlone(url, failures=1)
    outcomes = sending.OutcomeLog(db)  # type: ignore[arg-type]
    retry_at = datetime(2030, 1, 1, tzinfo=UTC)
    calls = [lambda: outcomes.record(ids[0], status="sent"),
             lambda: outcomes.record(ids[1], status="sent"),
             lambda: outcomes.record(ids[2], status="pending", error="421 try later",
                                     next_attempt_at=retry_at)]
    threads = [eventlet.spawn(call_) for call_ in calls]
    with pytest.raises(OperationalError):
        threads[0].wait()
    for thread in threads[1:]:
        thread.wait()
    assert outcomes_of(url, ids) == [("sent", True, None, None), ("sent", True, None, None),
                                     ("pending", False, None, "421 try later")]
    [pending] = rows(url, "SELECT next_attempt_at FROM deliveries WHERE id = :id", id=ids[2])
    assert pending.next_attempt_at.year == 2030
