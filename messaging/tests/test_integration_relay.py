"""The relay's publisher on a real RabbitMQ: a batch is sent, then confirmed once; what the
broker refuses is reported by position; a dead kept connection is replaced."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator

import pytest
from amqp import spec
from kombu import Connection, Exchange, Queue

from harness.infra import amqp_uri_for, rabbit_vhost
from messaging.relay import ConfirmingPublisher, OutgoingEvent, PartlyPublished

EXCHANGE = Exchange("relaytest.events", type="topic", durable=True)


@pytest.fixture
def uri() -> Iterator[str]:
    with rabbit_vhost() as vhost:
        yield amqp_uri_for(vhost)


def events(count: int, correlation_id: str | None = "req-1") -> list[OutgoingEvent]:
    return [OutgoingEvent(str(uuid.uuid4()), "thing_happened",
                          json.dumps({"payload": {"n": n}}), correlation_id)
            for n in range(count)]


def bound_queue(uri: str, **arguments: object) -> Queue:
    queue = Queue(f"q-{uuid.uuid4().hex[:8]}", exchange=EXCHANGE, routing_key="thing_happened",
                  durable=True, queue_arguments=arguments or None)
    with Connection(uri) as connection:
        queue(connection.channel()).declare()
    return queue


def drain(uri: str, queue: Queue) -> list[object]:
    got = []
    with Connection(uri) as connection:
        bound = queue(connection.channel())
        while (message := bound.get(no_ack=True)) is not None:
            got.append(message)
    return got


def test_a_batch_is_published_in_order_and_confirmed_with_one_wait(
    uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = bound_queue(uri)
    publisher = ConfirmingPublisher(uri, EXCHANGE, transport_options={})
    batch = events(20)
    waits = []
    publisher.publish(batch[:1])  # opens the connection
    original_wait = type(publisher._channel).wait

    def counted_wait(channel: object, *args: object, **kwargs: object) -> object:
        waits.append(args[0])
        return original_wait(channel, *args, **kwargs)

    monkeypatch.setattr(type(publisher._channel), "wait", counted_wait)
    publisher.publish(batch[1:])
    publisher.reset()
    # Waited for confirms only (never per message): at most a few frames for 19 messages,
    # since RabbitMQ coalesces its acks (multiple=True).
    assert all(wanted == [spec.Basic.Ack, spec.Basic.Nack] for wanted in waits)
    assert 1 <= len(waits) < 19
    got = drain(uri, queue)
    assert [message.properties["message_id"] for message in got] == [
        event.event_id for event in batch]
    first = got[0]
    assert first.content_type == "application/json"
    assert first.properties["delivery_mode"] == 2  # persistent
    assert first.headers == {"nameko.correlation_id": "req-1"}
    assert json.loads(first.body) == {"payload": {"n": 0}}


def test_messages_the_broker_refuses_are_reported_by_position(uri: str) -> None:
    # A full queue that rejects new messages makes RabbitMQ nack them.
    bound_queue(uri, **{"x-max-length": 2, "x-overflow": "reject-publish"})
    publisher = ConfirmingPublisher(uri, EXCHANGE, transport_options={})
    with pytest.raises(PartlyPublished) as refused:
        publisher.publish(events(5))
    assert refused.value.confirmed == 2
    assert "refused" in str(refused.value.cause)


def test_a_dead_kept_connection_is_replaced_before_anything_is_lost(uri: str) -> None:
    queue = bound_queue(uri)
    publisher = ConfirmingPublisher(uri, EXCHANGE, transport_options={})
    publisher.publish(events(1))
    # The connection dies while the relay is idle (a broker restart, a dropped link).
    publisher._connection.connection.sock.shutdown(socket.SHUT_RDWR)
    publisher.publish(events(3))
    publisher.reset()
    assert len(drain(uri, queue)) == 4


def test_no_broker_is_a_failure_with_nothing_confirmed() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    publisher = ConfirmingPublisher(f"amqp://guest:guest@127.0.0.1:{port}//", EXCHANGE,
                                    transport_options={"max_retries": 0})
    with pytest.raises(PartlyPublished) as failed:
        publisher.publish(events(2))
    assert failed.value.confirmed == 0
