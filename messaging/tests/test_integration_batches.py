"""Batch consumers (``@consume_events``) on real RabbitMQ and PostgreSQL: batches form under
load, each event takes effect once, and a failing event is retried and dead-lettered alone."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import eventlet
import pytest
from kombu import Connection, Queue
from nameko.containers import ServiceContainer
from prometheus_client import REGISTRY
from sqlalchemy import Column, MetaData, String, Table, create_engine, insert, select

from harness.infra import amqp_uri_for, postgres_databases, rabbit_vhost, wait_for
from messaging import contracts
from messaging.consumer import ATTEMPTS_HEADER, consume_events
from messaging.database import Database
from messaging.envelope import Envelope
from messaging.outbox import add_messaging_tables
from messaging.tests.test_integration_delivery import EVENT, ThingPayload, publish
from messaging.topology import declare

metadata = MetaData()
add_messaging_tables(metadata)
effects = Table("batch_effects", metadata, Column("event_id", String(36), primary_key=True))

batches: list[list[str]] = []  # the event ids of each call, in call order
PAUSE_FIRST_BATCH_S = 0.5


class BatchConsumer:
    name = "batchconsumer"
    db = Database(metadata, url_env="BATCHCONSUMER_DATABASE_URL", sqlite_name="b.db")

    @consume_events("thingsource", EVENT, max_batch=10, concurrency=1)
    def handle_things(self, envelopes: list[Envelope]) -> None:
        batches.append([envelope.event_id for envelope in envelopes])
        if len(batches) == 1:
            eventlet.sleep(PAUSE_FIRST_BATCH_S)  # the rest arrive meanwhile, and wait
        with self.db.transaction() as session:
            for envelope in self.db.first_deliveries(session, envelopes):
                session.execute(insert(effects).values(event_id=envelope.event_id))
            if any(envelope.payload.get("fail") for envelope in envelopes):
                raise RuntimeError("a bad event in the batch")


LINGER_S = 1.0  # well above the time to publish a handful (a connection each)


class LingeringConsumer:
    """Slots free (two), deliveries a few ms apart: they wait LINGER_S for company."""

    name = "lingeringconsumer"
    db = Database(metadata, url_env="LINGERINGCONSUMER_DATABASE_URL", sqlite_name="l.db")

    @consume_events("thingsource", EVENT, max_batch=6, concurrency=2, linger=LINGER_S)
    def handle_things(self, envelopes: list[Envelope]) -> None:
        batches.append([envelope.event_id for envelope in envelopes])
        with self.db.transaction() as session:
            for envelope in self.db.first_deliveries(session, envelopes):
                session.execute(insert(effects).values(event_id=envelope.event_id))


def _running(monkeypatch: pytest.MonkeyPatch, service: type) -> Iterator[tuple[str, str]]:
    monkeypatch.setitem(contracts.CONTRACTS, EVENT,
                        contracts.EventContract(EVENT, "thingsource", 1, ThingPayload))
    monkeypatch.setenv("RETRY_DELAYS_MS", "100,200")  # three attempts in all
    batches.clear()
    with rabbit_vhost() as vhost, postgres_databases(service.name) as urls:
        monkeypatch.setenv(f"{service.name.upper()}_DATABASE_URL", urls[service.name])
        engine = create_engine(urls[service.name])
        metadata.create_all(engine)
        engine.dispose()
        uri = amqp_uri_for(vhost)
        declare(uri, [service])
        container = ServiceContainer(service, {"AMQP_URI": uri, "serializer": "json"})
        container.start()
        try:
            yield uri, urls[service.name]
        finally:
            container.stop()


@pytest.fixture
def batch_consumer(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    yield from _running(monkeypatch, BatchConsumer)


@pytest.fixture
def lingering_consumer(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    yield from _running(monkeypatch, LingeringConsumer)


def effect_ids(url: str) -> list[str]:
    engine = create_engine(url)
    with engine.connect() as connection:
        ids = list(connection.scalars(select(effects.c.event_id)))  # unique: the primary key
    engine.dispose()
    return ids


def test_events_that_wait_go_together_each_taking_effect_once(
        batch_consumer: tuple[str, str]) -> None:
    uri, url = batch_consumer
    labels = {"service": "batchconsumer", "handler": "handle_things"}
    counted_before = [REGISTRY.get_sample_value(f"clientela_event_batch_events_{figure}",
                                                labels) or 0.0 for figure in ("count", "sum")]
    again = str(uuid.uuid4())
    sent = [publish(uri, {"name": f"thing-{i}"}) for i in range(24)]
    sent += [publish(uri, {"name": "twice"}, event_id=again) for _ in range(2)]
    wait_for(lambda: len(effect_ids(url)) == 25, timeout=15, message="every event's effect")
    time.sleep(0.3)
    assert sorted(effect_ids(url)) == sorted(set(sent))
    assert batches[0] == [sent[0]]  # the first found a free slot: it went alone, at once
    assert max(len(batch) for batch in batches) == 10  # the others waited, and went together
    assert sum(len(batch) for batch in batches) == 26  # each delivery handled once
    # What operators see (GET /metrics): how many batches, and how many events they held.
    counted = [REGISTRY.get_sample_value(f"clientela_event_batch_events_{figure}", labels)
               - before for figure, before in zip(("count", "sum"), counted_before,
                                                  strict=True)]
    assert counted == [len(batches), 26]


def test_a_bad_event_fails_alone_and_the_rest_of_its_batch_takes_effect(
        batch_consumer: tuple[str, str]) -> None:
    uri, url = batch_consumer
    first = publish(uri, {"name": "first"})
    good = [publish(uri, {"name": f"good-{i}"}) for i in range(4)]
    poison = publish(uri, {"name": "poison", "fail": True})
    good += [publish(uri, {"name": f"more-{i}"}) for i in range(4)]
    wait_for(lambda: len(effect_ids(url)) == 9, timeout=15, message="the good events' effect")
    dead_letters = Queue("batchconsumer.dead-letter", durable=True)
    with Connection(uri) as connection:
        letter = wait_for(lambda: dead_letters.bind(connection.channel()).get(no_ack=True),
                          timeout=15, message="the dead letter")
    assert letter.payload["event_id"] == poison
    assert letter.headers[ATTEMPTS_HEADER] == 3
    assert sorted(effect_ids(url)) == sorted([first, *good])
    # The batch with the poison in it failed as a whole, then each of its events went alone.
    [failed] = [batch for batch in batches if poison in batch and len(batch) > 1]
    assert all([event_id] in batches for event_id in failed)
    assert [batch for batch in batches if poison in batch][-3:] == [[poison]] * 3


def test_with_a_linger_events_that_come_apart_go_together_and_a_full_batch_goes_at_once(
        lingering_consumer: tuple[str, str]) -> None:
    """Each delivery finds a slot free: without the linger each would go alone."""
    uri, url = lingering_consumer
    started = time.monotonic()
    spaced = []
    for i in range(4):
        spaced.append(publish(uri, {"name": f"spaced-{i}"}))
        time.sleep(0.03)
    wait_for(lambda: len(effect_ids(url)) == 4, timeout=15, message="the spaced events")
    assert time.monotonic() - started >= LINGER_S  # they waited for company...
    assert batches == [spaced]  # ...and went as one batch
    batches.clear()
    started = time.monotonic()
    burst = [publish(uri, {"name": f"burst-{i}"}) for i in range(6)]
    wait_for(lambda: len(effect_ids(url)) == 10, timeout=15, message="the burst")
    assert batches[0] == burst  # a full batch does not wait out the linger
    assert time.monotonic() - started < LINGER_S
