"""Envelope, contracts, retry policy, topology and logs: no broker or database needed."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from marshmallow import ValidationError

from messaging.consumer import EventConsumer, RetryPolicy, handler_queue_name
from messaging.contracts import ORDER_PLACED, build_envelope, load_payload
from messaging.envelope import Envelope, envelope_from_wire
from messaging.logs import JsonFormatter, mask_email, set_correlation_id
from messaging.topology import declarations
from services.customers.service import CustomersService
from services.identity.service import IdentityService
from services.notifications.service import NotificationsService
from services.orders.service import OrdersService


def order_payload(**changes: object) -> dict:
    payload = {
        "order_id": uuid.uuid4(), "number": "#1001", "customer_id": None,
        "email": "ana@example.com", "locale": "es", "currency": "EUR", "subtotal": 100,
        "shipping_total": 0, "total": 100, "status": "pending_payment",
        "payment_status": "pending", "payment_method": "cash",
        "placed_at": datetime.now(UTC),
        "lines": [{"sku": "A", "title": "A", "quantity": 1, "unit_price": 100,
                   "line_total": 100}],
        "shipping_address": None,
    }
    payload.update(changes)
    return payload


def test_envelope_round_trips_through_the_wire() -> None:
    envelope = build_envelope(ORDER_PLACED, order_payload(), correlation_id="req-1")
    wire = json.loads(json.dumps(envelope.to_wire()))
    parsed = envelope_from_wire(wire)
    assert parsed == envelope
    assert parsed.source == "orders" and parsed.version == 1
    assert load_payload(parsed)["order_id"] == uuid.UUID(wire["payload"]["order_id"])


def test_a_payload_breaking_its_contract_is_refused_at_emit_time() -> None:
    with pytest.raises(ValidationError) as error:
        build_envelope(ORDER_PLACED, order_payload(email="not-an-email", currency="EURO"))
    assert {"email", "currency"} <= set(error.value.messages)
    with pytest.raises(ValueError):
        build_envelope("no_such_event", {})


def test_malformed_envelopes_and_unknown_versions_are_rejected() -> None:
    with pytest.raises(ValidationError):
        envelope_from_wire({"event_type": "order_placed", "payload": {}})
    with pytest.raises(ValidationError):
        envelope_from_wire({"event_id": "nope", "event_type": "x", "source": "s", "version": 1,
                            "occurred_at": "2026-01-01T00:00:00+00:00", "payload": {}})
    future = Envelope(event_type=ORDER_PLACED, source="orders", version=2, payload={})
    with pytest.raises(ValidationError):
        load_payload(future)


def test_retry_policy_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert RetryPolicy().max_attempts == 6
    monkeypatch.setenv("RETRY_DELAYS_MS", "100, 200")
    assert RetryPolicy.from_env() == RetryPolicy((100, 200))
    assert RetryPolicy.from_env().max_attempts == 3


def test_topology_is_read_off_the_service_classes() -> None:
    entities = declarations([OrdersService, CustomersService, NotificationsService,
                             IdentityService],
                            RetryPolicy((1000,)))
    names = {entity.name for entity in entities}
    assert handler_queue_name("orders", "order_placed", "customers", "handle_order_placed") \
        == "evt-orders-order_placed--customers.handle_order_placed"
    assert {
        "orders.events",
        "evt-orders-order_placed--customers.handle_order_placed",
        "evt-orders-order_placed--notifications.handle_order_placed",
        "customers.retry", "customers.retry.1000ms", "customers.dead-letter",
        "notifications.dead-letter",
    } <= names
    assert "evt-identity-account_email_verified--orders.handle_account_email_verified" in names
    assert "evt-customers-customer_updated--identity.handle_customer_updated" in names


def test_json_logs_carry_the_request_id_and_extra_fields() -> None:
    record = logging.makeLogRecord({"name": "x", "levelno": logging.INFO, "levelname": "INFO",
                                    "msg": "order %s placed", "args": ("#1001",),
                                    "email": mask_email("ana.garcia@example.com")})
    set_correlation_id("req-42")
    try:
        line = json.loads(JsonFormatter("orders").format(record))
    finally:
        set_correlation_id(None)
    assert line["msg"] == "order #1001 placed"
    assert line["request_id"] == "req-42"
    assert line["service"] == "orders"
    assert line["email"] == "a***@example.com"


def test_mask_email() -> None:
    assert mask_email("bob@shop.es") == "b***@shop.es"
    assert mask_email(None) == "***"
    assert mask_email("garbage") == "***"


def test_addresses_are_trimmed_upper_cased_and_partially_updatable() -> None:
    from messaging.contracts import AddressSchema

    full = AddressSchema().load({"first_name": " Ana ", "last_name": "G", "line1": "C/ Mayor",
                                 "city": "Madrid", "country": "es"})
    assert (full["first_name"], full["country"], full["phone"]) == ("Ana", "ES", None)
    assert AddressSchema(partial=True).load({"city": " Cádiz "}) == {"city": "Cádiz"}
    with pytest.raises(ValidationError):
        AddressSchema().load({"first_name": "A", "last_name": "B", "line1": "x",
                              "city": "y", "country": "ESP"})


def test_a_consumer_sees_every_optional_field_of_a_terse_producer() -> None:
    from messaging.contracts import normalised_payload

    terse = order_payload(shipping_address={"first_name": "A", "last_name": "B",
                                            "line1": "C", "city": "D", "country": "ES"})
    envelope = envelope_from_wire(json.loads(json.dumps(build_envelope(
        ORDER_PLACED, terse).to_wire())))
    address = normalised_payload(envelope)["shipping_address"]
    assert address["line2"] is None and address["postal_code"] is None


def test_page_markers_round_trip_and_refuse_garbage() -> None:
    from sqlalchemy import Column, DateTime, MetaData, Table, Uuid

    from messaging.errors import ServiceError
    from messaging.paging import after_marker, page_marker

    rows = Table("rows", MetaData(), Column("at", DateTime(timezone=True)), Column("id", Uuid))
    at, row_id = datetime(2026, 11, 1, tzinfo=UTC), uuid.uuid4()
    marker = page_marker(at, row_id)
    assert marker == f"2026-11-01T00:00:00+00:00|{row_id}"
    assert "<" in str(after_marker(rows.c.at, rows.c.id, marker))
    assert ">" in str(after_marker(rows.c.at, rows.c.id, marker, descending=False))
    with pytest.raises(ServiceError) as error:
        after_marker(rows.c.at, rows.c.id, "not a marker", field="after")
    assert (error.value.status, error.value.errors) == (422, {"after": ["Not a page marker."]})


def test_forget_in_outbox_removes_published_rows_that_mention_the_email() -> None:
    from sqlalchemy import MetaData, create_engine, insert, select
    from sqlalchemy.orm import Session

    from messaging.envelope import utcnow
    from messaging.outbox import add_messaging_tables, forget_in_outbox

    metadata = MetaData()
    outbox, _ = add_messaging_tables(metadata)
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    now = utcnow()
    bodies = [(json.dumps({"email": "josé@example.com"}), now),  # escaped: jos\u00e9
              (json.dumps({"to": "Ana <ANA@Example.com>"}), now),  # as typed
              (json.dumps({"email": "josé@example.com"}), None),  # unpublished: still owed
              (json.dumps({"email": "other@example.com"}), now)]
    with Session(engine) as session:
        session.info["outbox_table"] = outbox
        for number, (body, published) in enumerate(bodies):
            session.execute(insert(outbox).values(
                event_id=str(number), event_type="t", body=body, created_at=now,
                next_attempt_at=now, published_at=published, attempts=0))
        assert forget_in_outbox(session, ["josé@example.com", "ana@example.com"]) == 2
        left = session.scalars(select(outbox.c.event_id).order_by(outbox.c.id)).all()
    assert left == ["2", "3"]


def test_a_locked_row_deleted_by_a_concurrent_transaction_is_made_again() -> None:
    """A login that succeeds deletes its throttle row; another login that had found the row
    there (so inserted nothing) then locks nothing: it must insert again, not fail (a 500
    that bench.login_burst found about once in a thousand logins)."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from messaging.database import locked_row
    from services.identity.models import Base, LoginThrottle

    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        session.add(LoginThrottle(key="k", failures=3, last_failure_at=now))
    with Session(engine) as session, session.begin():
        real_get, calls = session.get, []

        def vanishing_once(*args: object, **kwargs: object) -> object:
            if not calls:  # the concurrent delete, just before our lock
                calls.append(1)
                session.execute(LoginThrottle.__table__.delete())
                return None
            return real_get(*args, **kwargs)

        session.get = vanishing_once  # type: ignore[method-assign]
        row = locked_row(session, LoginThrottle, "k", key="k", failures=0,
                         last_failure_at=now, locked_until=None)
        assert row is not None and row.failures == 0


def test_no_password_of_any_broker_reaches_a_log_line() -> None:
    """AMQP_URI may list several brokers; nameko and kombu mask only the first password."""
    import json
    import logging

    from messaging.logs import JsonFormatter

    record = logging.LogRecord(
        "nameko", logging.INFO, __file__, 1,
        "Connected to amqp://guest:**@h1:5681// via amqp://app:s3cret@h2:5682/;"
        "amqp://app:0ther@h3:5683/shop", None, None)
    line = json.loads(JsonFormatter("orders").format(record))["msg"]
    assert "s3cret" not in line and "0ther" not in line
    assert "amqp://app:********@h2:5682/" in line and "@h3:5683/shop" in line


def test_check_succeeds_when_any_listed_broker_answers() -> None:
    import socket

    from ops.infra import check_rabbitmq

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            dead = unused.getsockname()[1]
        answer = check_rabbitmq(f"amqp://a:pw1@127.0.0.1:{dead}/;amqp://a:pw2@127.0.0.1:{port}/",
                                timeout=1)
        assert answer is None
    refused = check_rabbitmq(f"amqp://a:pw1@127.0.0.1:{dead}/;amqp://a:pw2@127.0.0.1:{dead}/",
                             timeout=1)
    assert refused is not None and "pw1" not in refused and "pw2" not in refused


class _LostConnection:
    """A queue consumer whose broker connection died under it (what RabbitMQ cut away)."""

    def ack_message(self, message: object) -> None:
        raise BrokenPipeError(32, "Broken pipe")


def test_an_ack_on_a_lost_broker_connection_does_not_kill_the_service(
        caplog: pytest.LogCaptureFixture) -> None:
    """nameko treats an exception from handle_result as fatal and kills the container (and
    honcho then the whole system: tests/faults found it). The message stays unacked on the
    dead connection instead; the broker delivers it again, the processed mark absorbs it."""
    consumer = EventConsumer("orders", ORDER_PLACED)
    consumer.queue_consumer = _LostConnection()  # type: ignore[assignment]
    consumer.handle_message_processed(object())
    assert "broker connection lost" in caplog.text


def test_a_sealing_key_is_read_once_and_again_when_its_file_changes(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The key and its cipher are kept (every checkout seals, every order email unseals), but
    a key file replaced on disk is used from then on, and a missing one is still an error."""
    from cryptography.fernet import Fernet, InvalidToken

    from messaging import keys

    monkeypatch.delenv("TOKEN_SEALING_KEY", raising=False)
    key_file = tmp_path / "sealing.key"
    monkeypatch.setenv("TOKEN_SEALING_KEY_FILE", str(key_file))
    key_file.write_bytes(Fernet.generate_key())
    sealed = keys.seal("secret")
    assert keys.unseal(sealed) == "secret"
    key_file.write_bytes(Fernet.generate_key() + b"\n")  # rotated (another size, too)
    with pytest.raises(InvalidToken):
        keys.unseal(sealed)
    assert keys.unseal(keys.seal("again")) == "again"
    key_file.unlink()
    with pytest.raises(keys.MissingKey):
        keys.seal("nowhere")
