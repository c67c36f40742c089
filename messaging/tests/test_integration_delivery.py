"""The plumbing on real RabbitMQ and PostgreSQL, with nameko containers in this process."""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kombu import Connection, Exchange, Queue
from marshmallow import Schema, fields
from nameko.containers import ServiceContainer
from nameko.testing.services import entrypoint_hook
from sqlalchemy import Column, MetaData, String, Table, create_engine, func, insert, select

from harness.infra import amqp_uri_for, postgres_databases, rabbit_vhost, wait_for
from messaging import contracts, deadletters
from messaging.consumer import ATTEMPTS_HEADER, ERROR_HEADER, ORIGINAL_QUEUE_HEADER, consume_event
from messaging.database import Database
from messaging.envelope import Envelope
from messaging.outbox import add_messaging_tables, emit
from messaging.relay import ConfirmingPublisher, OutgoingEvent
from messaging.rpc import rpc
from messaging.topology import declare

EVENT = "thing_happened"

consumer_metadata = MetaData()
add_messaging_tables(consumer_metadata)
effects = Table("effects", consumer_metadata, Column("event_id", String(36), primary_key=True))

producer_metadata = MetaData()
add_messaging_tables(producer_metadata)

handler_calls: list[str] = []
FAIL_ENABLED = True  # an operator "fixes the bug" by turning this off


class ThingPayload(Schema):
    name = fields.String(required=True)
    fail = fields.Boolean(load_default=False)


class ThingConsumer:
    name = "thingconsumer"
    db = Database(consumer_metadata, url_env="THINGCONSUMER_DATABASE_URL", sqlite_name="x.db")

    @consume_event("thingsource", EVENT)
    def handle_thing_happened(self, envelope: Envelope) -> None:
        handler_calls.append(envelope.event_id)
        if envelope.payload.get("fail") and FAIL_ENABLED:
            raise RuntimeError("this handler always fails")
        with self.db.transaction() as session:
            if self.db.already_processed(session, envelope):
                return
            session.execute(insert(effects).values(event_id=envelope.event_id))


class ThingSource:
    name = "thingsource"
    db = Database(producer_metadata, url_env="THINGSOURCE_DATABASE_URL", sqlite_name="y.db")

    @rpc
    def make_thing(self, name: str) -> str:
        with self.db.transaction() as session:
            return emit(session, EVENT, {"name": name}).event_id

    @rpc
    def make_things(self, names: list[str]) -> list[str]:
        with self.db.transaction() as session:
            return [emit(session, EVENT, {"name": name}).event_id for name in names]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    monkeypatch.setitem(contracts.CONTRACTS, EVENT,
                        contracts.EventContract(EVENT, "thingsource", 1, ThingPayload))
    monkeypatch.setenv("RETRY_DELAYS_MS", "100,200")  # three attempts in all
    monkeypatch.setenv("OUTBOX_POLL_SECONDS", "0.2")
    handler_calls.clear()
    with rabbit_vhost() as vhost, postgres_databases("thingconsumer", "thingsource") as urls:
        for service, url in urls.items():
            monkeypatch.setenv(f"{service.upper()}_DATABASE_URL", url)
        engine = create_engine(urls["thingconsumer"])
        consumer_metadata.create_all(engine)
        engine.dispose()
        engine = create_engine(urls["thingsource"])
        producer_metadata.create_all(engine)
        engine.dispose()
        uri = amqp_uri_for(vhost)
        declare(uri, [ThingConsumer, ThingSource])
        yield {"AMQP_URI": uri, **urls}


@pytest.fixture
def containers(env: dict[str, str]) -> Iterator[dict[str, ServiceContainer]]:
    started = {}
    for cls in (ThingConsumer, ThingSource):
        container = ServiceContainer(cls, {"AMQP_URI": env["AMQP_URI"], "serializer": "json"})
        container.start()
        started[cls.name] = container
    yield started
    for container in started.values():
        container.stop()


def publish(uri: str, payload: dict[str, Any], event_id: str | None = None) -> str:
    envelope = Envelope(event_type=EVENT, source="thingsource", payload=payload,
                        **({"event_id": event_id} if event_id else {}))
    with Connection(uri) as connection:
        connection.Producer().publish(
            envelope.to_wire(), exchange=Exchange("thingsource.events", type="topic",
                                                  durable=True),
            routing_key=EVENT, serializer="json", retry=True)
    return envelope.event_id


def effect_count(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as connection:
        count = connection.execute(select(func.count()).select_from(effects)).scalar_one()
    engine.dispose()
    return count


def test_failing_handler_dead_letters_after_n_attempts_while_others_flow(
    env: dict[str, str], containers: dict[str, ServiceContainer]
) -> None:
    poison = publish(env["AMQP_URI"], {"name": "poison", "fail": True})
    good = [publish(env["AMQP_URI"], {"name": f"good-{i}"}) for i in range(5)]

    wait_for(lambda: effect_count(env["thingconsumer"]) == 5, timeout=10,
             message="the good events processed")
    wait_for(lambda: handler_calls.count(poison) == 3, timeout=10, message="three attempts")

    dead_letters = Queue("thingconsumer.dead-letter", durable=True)
    with Connection(env["AMQP_URI"]) as connection:
        message = wait_for(lambda: dead_letters.bind(connection.channel()).get(no_ack=True),
                           timeout=10, message="the dead letter")
        assert dead_letters.bind(connection.channel()).get(no_ack=True) is None  # only one
    assert message.payload["event_id"] == poison
    assert message.headers[ATTEMPTS_HEADER] == 3
    assert message.headers[ORIGINAL_QUEUE_HEADER] == \
        "evt-thingsource-thing_happened--thingconsumer.handle_thing_happened"
    assert "this handler always fails" in message.headers[ERROR_HEADER]
    time.sleep(0.5)
    assert handler_calls.count(poison) == 3  # no fourth attempt
    assert all(handler_calls.count(event_id) == 1 for event_id in good)


def test_an_operator_can_inspect_and_replay_a_dead_letter(
    env: dict[str, str], containers: dict[str, ServiceContainer],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = env["AMQP_URI"]
    poison = publish(uri, {"name": "poison", "fail": True})
    wait_for(lambda: deadletters.depth(uri, "thingconsumer") == 1, timeout=10,
             message="the dead letter")
    [letter] = deadletters.peek(uri, "thingconsumer")
    assert (letter.event_id, letter.attempts) == (poison, 3)
    assert deadletters.depth(uri, "thingconsumer") == 1  # peeking keeps it

    # the bug is fixed: the handler now succeeds, and the replayed event takes effect once
    monkeypatch.setattr(sys.modules[__name__], "FAIL_ENABLED", False)
    calls_before = handler_calls.count(poison)
    assert [r.event_id for r in deadletters.replay(uri, "thingconsumer", poison)] == [poison]
    wait_for(lambda: effect_count(env["thingconsumer"]) == 1, timeout=10,
             message="the replayed event's effect")
    assert handler_calls.count(poison) == calls_before + 1
    assert deadletters.depth(uri, "thingconsumer") == 0


def test_a_redelivered_event_takes_effect_once(
    env: dict[str, str], containers: dict[str, ServiceContainer]
) -> None:
    event_id = str(uuid.uuid4())
    for _ in range(3):
        publish(env["AMQP_URI"], {"name": "again"}, event_id=event_id)
    wait_for(lambda: handler_calls.count(event_id) == 3, timeout=10, message="3 deliveries")
    # A call is counted when it starts: wait for the first one's commit, then give the
    # others time to do harm.
    wait_for(lambda: effect_count(env["thingconsumer"]) >= 1, timeout=10, message="the effect")
    time.sleep(0.5)
    assert effect_count(env["thingconsumer"]) == 1


def test_relay_crash_between_publish_and_mark_is_absorbed_by_the_consumer(
    env: dict[str, str], containers: dict[str, ServiceContainer],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    crashes = []
    original = ConfirmingPublisher.publish

    def crash_once(self: ConfirmingPublisher, events: list[OutgoingEvent]) -> None:
        original(self, events)  # the broker has them, confirmed...
        if not crashes:
            crashes.extend(event.event_id for event in events)
            raise RuntimeError("relay died after publishing, before the mark committed")

    monkeypatch.setattr(ConfirmingPublisher, "publish", crash_once)
    with entrypoint_hook(containers["thingsource"], "make_thing") as make_thing:
        event_id = make_thing("once")
    wait_for(lambda: handler_calls.count(event_id) == 2, timeout=10,
             message="the event published twice")
    assert crashes, "the crash was not simulated"
    assert effect_count(env["thingconsumer"]) == 1
    engine = create_engine(env["thingsource"])
    with engine.connect() as connection:
        outbox = producer_metadata.tables["outbox"]
        published = connection.execute(
            select(outbox.c.published_at).where(outbox.c.event_id == event_id)
        ).scalar_one()
    engine.dispose()
    assert published is not None


def test_a_publish_that_fails_mid_batch_leaves_it_and_the_rest_due(
    env: dict[str, str], containers: dict[str, ServiceContainer],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relay claims a batch and marks it published in one statement: a row the broker
    did not take, and the rows after it, are unmarked in the same transaction and go later,
    each once."""
    refused: list[str] = []
    original = ConfirmingPublisher._send

    def refuse_once(self: ConfirmingPublisher, channel: Any, event: OutgoingEvent) -> None:
        if json.loads(event.body)["payload"]["name"] == "second" and not refused:
            refused.append(event.event_id)
            raise ConnectionError("broker went away")
        original(self, channel, event)

    monkeypatch.setattr(ConfirmingPublisher, "_send", refuse_once)
    with entrypoint_hook(containers["thingsource"], "make_things") as make_things:
        ids = make_things(["first", "second", "third"])
    wait_for(lambda: effect_count(env["thingconsumer"]) == 3, timeout=10,
             message="all three events handled")
    assert refused == [ids[1]]
    assert sorted(handler_calls) == sorted(ids)  # each delivered once
    engine = create_engine(env["thingsource"])
    outbox = producer_metadata.tables["outbox"]
    with engine.connect() as connection:
        rows = dict(connection.execute(select(outbox.c.event_id, outbox.c.attempts)
                                       .where(outbox.c.published_at.is_not(None))).all())
    engine.dispose()
    assert rows == {ids[0]: 0, ids[1]: 1, ids[2]: 0}


def test_a_consumer_the_broker_cancels_comes_back_and_rpc_carries_on(
    env: dict[str, str], containers: dict[str, ServiceContainer]
) -> None:
    """RabbitMQ cancels a consumer when its queue goes away under it (a lost node's classic
    queue, an operator's delete, a failover): the event consumer reconnects, declares its queue
    again and consumes, and RPC, on its own connection, never stops meanwhile."""
    queue_name = "evt-thingsource-thing_happened--thingconsumer.handle_thing_happened"
    with Connection(env["AMQP_URI"]) as connection:
        Queue(queue_name).bind(connection.channel()).delete()
    from gateway.rpc import RpcPool

    rpc_pool = RpcPool(env["AMQP_URI"], size=1, timeout=10)
    try:  # over the broker, while the event consumer comes back
        assert rpc_pool.call("thingsource", "make_thing", "during the cancel")
    finally:
        rpc_pool.close()

    def consumed_again() -> bool:
        publish(env["AMQP_URI"], {"name": f"after-{uuid.uuid4().hex[:6]}"})
        return effect_count(env["thingconsumer"]) > 0

    wait_for(consumed_again, timeout=30, interval=1.0,
             message="the cancelled consumer consuming again")


def test_rpc_replies_reuse_the_brokers_producer_pool(
    env: dict[str, str], containers: dict[str, ServiceContainer],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reply takes a producer from a pool found once, not by building a kombu Connection
    to look the pool up on every publish (nameko's get_producer: most of a reply's cost)."""
    from gateway.rpc import RpcPool

    rpc_pool = RpcPool(env["AMQP_URI"], size=1, timeout=10)
    try:
        assert rpc_pool.call("thingsource", "make_thing", "warm")  # connections made
        built = []
        original_init = Connection.__init__

        def counted_init(self: Connection, *args: Any, **kwargs: Any) -> None:
            built.append(args[:1])
            original_init(self, *args, **kwargs)

        monkeypatch.setattr(Connection, "__init__", counted_init)
        answers = [rpc_pool.call("thingsource", "make_thing", f"call {n}") for n in range(5)]
    finally:
        rpc_pool.close()
    assert all(answers)
    assert built == []
