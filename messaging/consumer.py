"""Event consumer entrypoint: envelope parsing, delayed retry, and a dead-letter queue.

nameko's own ``event_handler`` acks a message whose handler raised: the event is lost. Here a
failure is republished to a delay queue (TTL, then dead-lettered straight back to the handler's
queue) with an attempt count, and after the last attempt it is parked in the service's
dead-letter queue for an operator to inspect and replay. The message is acked only after the
republish is confirmed, so at no point is the event held by nobody.

Idempotency is the handler's part, in its own transaction: ``self.db.already_processed``.
"""

from __future__ import annotations

import logging
import os
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import eventlet
from amqp.exceptions import ConnectionError as AMQPConnectionError
from kombu import Exchange, Queue
from kombu.exceptions import OperationalError
from marshmallow import ValidationError
from nameko.amqp.publish import Publisher, get_connection
from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.events import SERVICE_POOL, EventHandler
from nameko.exceptions import ContainerBeingKilled

from messaging.connections import EventQueueConsumer
from messaging.envelope import Envelope, envelope_from_wire
from messaging.metrics import EVENT_BATCH_EVENTS

log = logging.getLogger(__name__)

# Not "x-" names: a headers exchange ignores x- headers when it matches bindings.
ATTEMPTS_HEADER = "clientela-attempts"
ORIGINAL_QUEUE_HEADER = "clientela-original-queue"
ERROR_HEADER = "clientela-error"
FAILED_AT_HEADER = "clientela-failed-at"
DELAY_HEADER = "clientela-retry-delay-ms"
NAMEKO_HEADER_PREFIX = "nameko."

DEFAULT_RETRY_DELAYS_MS = (1_000, 5_000, 30_000, 120_000, 600_000)


@dataclass(frozen=True)
class RetryPolicy:
    """Delays between attempts; attempts allowed = len(delays) + 1."""

    delays_ms: tuple[int, ...] = DEFAULT_RETRY_DELAYS_MS

    @classmethod
    def from_env(cls) -> RetryPolicy:
        raw = os.environ.get("RETRY_DELAYS_MS")
        if not raw:
            return cls()
        return cls(tuple(int(part) for part in raw.split(",") if part.strip()))

    @property
    def max_attempts(self) -> int:
        return len(self.delays_ms) + 1


QUEUE_TYPES = ("classic", "quorum")


def queue_arguments() -> dict[str, Any]:
    """Arguments every durable queue of ours is declared with. ``QUEUE_TYPE=quorum`` in
    production: quorum queues are replicated over the cluster's nodes (Raft), so a broker node
    lost loses no message. Classic (no argument) is the local default. Changing a running
    system's type means new queues: RabbitMQ refuses to redeclare a queue as another type."""
    kind = os.environ.get("QUEUE_TYPE", "classic").strip().lower()
    if kind not in QUEUE_TYPES:
        raise ValueError(f"QUEUE_TYPE must be one of {QUEUE_TYPES}, not {kind!r}")
    if kind == "classic":
        return {}
    # Retries and the dead-letter queue are ours (above), so the broker must never drop a
    # message for being delivered often: RabbitMQ 4 gives quorum queues a limit of 20 by
    # default, and listing a dead-letter queue redelivers every message in it. (-1, "no
    # limit" on 4.x, drops at the first redelivery on 3.10: measured.)
    return {"x-queue-type": "quorum", "x-delivery-limit": 1_000_000}


def handler_queue_name(source_service: str, event_type: str, service: str, method: str) -> str:
    # nameko's own naming for SERVICE_POOL handlers, so its declaration and ours agree.
    return f"evt-{source_service}-{event_type}--{service}.{method}"


def retry_exchange(service: str) -> Exchange:
    return Exchange(f"{service}.retry", type="headers", durable=True)


def retry_queue(service: str, delay_ms: int) -> Queue:
    return Queue(
        f"{service}.retry.{delay_ms}ms",
        exchange=retry_exchange(service),
        binding_arguments={"x-match": "all", DELAY_HEADER: str(delay_ms)},
        durable=True,
        # Expired messages go back through the default exchange under their routing key,
        # which is the handler queue's name.
        queue_arguments={"x-message-ttl": delay_ms, "x-dead-letter-exchange": "",
                         **queue_arguments()},
    )


def dead_letter_queue(service: str) -> Queue:
    return Queue(f"{service}.dead-letter", durable=True, queue_arguments=queue_arguments())


def retry_topology(service: str, policy: RetryPolicy) -> list[Exchange | Queue]:
    entities: list[Exchange | Queue] = [retry_exchange(service)]
    entities += [retry_queue(service, delay) for delay in sorted(set(policy.delays_ms))]
    entities.append(dead_letter_queue(service))
    return entities


def worker_context(message: Any, envelope: Envelope | None) -> dict[str, Any]:
    """nameko's own context (call id stack, ...) from the message, not our retry headers, and
    the event's correlation id (the request that caused it) for the logs."""
    context_data = {
        key[len(NAMEKO_HEADER_PREFIX):]: value
        for key, value in (message.headers or {}).items()
        if key.startswith(NAMEKO_HEADER_PREFIX)
    }
    if envelope is not None and envelope.correlation_id:
        context_data["correlation_id"] = envelope.correlation_id
    return context_data


def describe_error(exc_info: Any) -> str:
    exc = exc_info[1]
    frames = traceback.extract_tb(exc_info[2])
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"[:1000]


class EventConsumer(EventHandler):
    """``@consume_event(source, event_type)``: the handler gets a validated ``Envelope``."""

    queue_consumer = EventQueueConsumer()  # the events' own connection (messaging.connections)

    def __init__(self, source_service: str, event_type: str, **kwargs: Any) -> None:
        super().__init__(
            source_service,
            event_type,
            handler_type=SERVICE_POOL,
            reliable_delivery=True,
            requeue_on_error=False,
            **kwargs,
        )

    def setup(self) -> None:
        super().setup()
        # nameko declares the handler queue when it starts consuming: with our arguments,
        # so its declaration and the topology's agree.
        self.queue.queue_arguments = {**(self.queue.queue_arguments or {}), **queue_arguments()}
        self.policy = RetryPolicy.from_env()
        service = self.container.service_name
        amqp_uri = self.container.config[AMQP_URI_CONFIG_KEY]
        self.publisher = Publisher(amqp_uri, use_confirms=True)
        with get_connection(amqp_uri) as connection:
            for entity in retry_topology(service, self.policy):
                entity.maybe_bind(connection)
                entity.declare()
        self.dead_letter_queue_name = dead_letter_queue(service).name

    def handle_message(self, body: Any, message: Any) -> None:
        envelope = self._envelope_or_park(body, message)
        if envelope is None:
            return
        handle_result = partial(self.handle_result, message)
        try:
            self.container.spawn_worker(
                self, (envelope,), {}, context_data=worker_context(message, envelope),
                handle_result=handle_result
            )
        except ContainerBeingKilled:
            self.queue_consumer.requeue_message(message)

    def _envelope_or_park(self, body: Any, message: Any) -> Envelope | None:
        """The message's validated envelope; a malformed one is parked (None)."""
        try:
            envelope = envelope_from_wire(body)
            if envelope.event_type != self.event_type:
                raise ValidationError({"event_type": [f"expected {self.event_type}"]})
        except ValidationError as exc:
            # A malformed event will never succeed: park it now rather than retry it.
            self._settle(message, f"invalid envelope: {exc.messages}", dead_letter=True)
            return None
        return envelope

    def handle_message_processed(
        self, message: Any, result: Any = None, exc_info: Any = None
    ) -> None:
        if exc_info is None:
            self._ack(message)
            return
        # A payload that breaks its contract fails the same way every time.
        permanent = isinstance(exc_info[1], ValidationError)
        self._settle(message, describe_error(exc_info), dead_letter=permanent)

    def _settle(self, message: Any, error: str, dead_letter: bool) -> None:
        headers = dict(message.headers or {})
        attempts = int(headers.get(ATTEMPTS_HEADER, 0)) + 1
        headers.update({
            ATTEMPTS_HEADER: attempts,
            ORIGINAL_QUEUE_HEADER: self.queue.name,
            ERROR_HEADER: error,
            FAILED_AT_HEADER: datetime.now(UTC).isoformat(),
        })
        headers.pop("x-death", None)  # RabbitMQ's own bookkeeping; ours says enough
        try:
            if dead_letter or attempts >= self.policy.max_attempts:
                log.error(
                    "event dead-lettered after %d attempt(s): %s", attempts, error,
                    extra={"queue": self.queue.name, "message_id": message.properties.get(
                        "message_id")},
                )
                self.publisher.publish(
                    message.payload,
                    exchange="",
                    routing_key=self.dead_letter_queue_name,
                    headers=headers,
                    message_id=message.properties.get("message_id"),
                )
            else:
                delay = self.policy.delays_ms[attempts - 1]
                log.warning(
                    "event handler failed (attempt %d of %d), retrying in %d ms: %s",
                    attempts, self.policy.max_attempts, delay, error,
                    extra={"queue": self.queue.name},
                )
                headers[DELAY_HEADER] = str(delay)
                self.publisher.publish(
                    message.payload,
                    exchange=retry_exchange(self.container.service_name),
                    routing_key=self.queue.name,
                    headers=headers,
                    message_id=message.properties.get("message_id"),
                )
        except Exception:
            # Could not park it anywhere: give it back to the broker rather than drop it.
            log.exception("could not republish a failed event; requeueing it")
            eventlet.sleep(1)
            try:
                self.queue_consumer.requeue_message(message)
            except BROKER_GONE as exc:
                _left_on_dead_connection("requeue", exc)
            return
        self._ack(message)

    def _ack(self, message: Any) -> None:
        """Ack, unless the connection it came on is gone: an exception here would kill the
        worker's container, and with it the service (found by tests/faults). Unacked on a
        dead connection, the broker delivers it again once it notices, and the handler's
        processed mark makes that second delivery a no-op."""
        try:
            self.queue_consumer.ack_message(message)
        except BROKER_GONE as exc:
            _left_on_dead_connection("ack", exc)


class BatchEventConsumer(EventConsumer):
    """``@consume_events(source, event_type)``: the handler gets a list of validated envelopes
    (in delivery order) to handle in one transaction, with one processed mark per event
    (``self.db.first_deliveries``): one commit, one worker, one round of marks for many events.

    Batches form by themselves: a delivery that finds a free slot (``concurrency`` batches
    run at once) starts at once, alone; the ones that arrive while the slots are busy wait
    and go together, up to ``max_batch``. A light load sees no added latency; a heavy one
    pays per batch, not per event. After the commit every message is acked. If the batch
    fails, each event is handled again on its own, so one bad event is retried and
    dead-lettered alone and does not hold the others back (a handler must therefore commit
    a batch's effects together or make each replayable: the processed marks do that).

    ``linger`` (seconds, default none): a delivery that finds a slot free waits that long
    for company before its batch starts (unless a batch fills first), as Kafka's linger.ms
    or Nagle's algorithm do. For a handler whose fixed cost per batch is most of its cost,
    and whose effects nobody waits for within that time, it buys batches at a steady load
    too, where slots are rarely busy and each event would otherwise go alone."""

    def __init__(self, source_service: str, event_type: str, max_batch: int = 25,
                 concurrency: int = 2, linger: float = 0.0, **kwargs: Any) -> None:
        super().__init__(source_service, event_type, **kwargs)
        self.max_batch, self.concurrency, self.linger = max_batch, concurrency, linger
        self._waiting: list[tuple[Envelope, Any]] = []
        self._running = 0
        self._lingering = False

    @property
    def prefetch(self) -> int:
        """Deliveries this consumer wants in hand: every slot's batch full, and the next
        batch waiting for a slot."""
        return self.max_batch * (self.concurrency + 1)

    def handle_message(self, body: Any, message: Any) -> None:
        envelope = self._envelope_or_park(body, message)
        if envelope is not None:
            self._waiting.append((envelope, message))
            if (self.linger and len(self._waiting) < self.max_batch
                    and self._running < self.concurrency):
                if not self._lingering:
                    self._lingering = True
                    self.container.spawn_managed_thread(self._start_after_linger)
                return
            self._start_batches()

    def _start_after_linger(self) -> None:
        eventlet.sleep(self.linger)
        self._lingering = False
        self._start_batches()

    def _start_batches(self) -> None:
        while self._waiting and self._running < self.concurrency:
            batch = self._waiting[:self.max_batch]
            del self._waiting[:self.max_batch]
            self._running += 1  # before the spawn, which may wait for a free worker
            if not self._spawn(batch, partial(self._batch_done, batch)):
                self._running -= 1

    def _spawn(self, batch: list[tuple[Envelope, Any]], handle_result: Any) -> bool:
        # One event's worker carries its context (correlation id in the logs); a batch's
        # events come from many requests, so it carries none of theirs.
        context_data = worker_context(batch[0][1], batch[0][0]) if len(batch) == 1 else {}
        try:
            self.container.spawn_worker(
                self, ([envelope for envelope, _ in batch],), {},
                context_data=context_data, handle_result=handle_result)
        except ContainerBeingKilled:
            for _, message in batch:
                self.queue_consumer.requeue_message(message)
            return False
        EVENT_BATCH_EVENTS.labels(self.container.service_name, self.method_name
                                  ).observe(len(batch))
        return True

    def _batch_done(self, batch: list[tuple[Envelope, Any]], worker_ctx: Any,
                    result: Any = None, exc_info: Any = None) -> tuple[Any, Any]:
        if exc_info is None:
            for _, message in batch:
                self._ack(message)
        elif len(batch) == 1:
            self.handle_message_processed(batch[0][1], result, exc_info)
        else:
            log.warning("a batch of %d events failed (%s); handling each on its own",
                        len(batch), describe_error(exc_info), extra={"queue": self.queue.name})
            self.container.spawn_managed_thread(partial(self._one_by_one, batch))
        self._running -= 1
        # Not from this worker: waiting here for a free worker, while holding one, could
        # leave every worker waiting for another.
        self.container.spawn_managed_thread(self._start_batches)
        return result, exc_info

    def _one_by_one(self, batch: list[tuple[Envelope, Any]]) -> None:
        for envelope, message in batch:
            self._spawn([(envelope, message)], partial(self.handle_result, message))


# What a dead or half-dead broker connection raises when we write to it.
BROKER_GONE = (OSError, ConnectionError, OperationalError, AMQPConnectionError)


def _left_on_dead_connection(what: str, exc: BaseException) -> None:
    log.warning("event %s not sent, broker connection lost: %s; the broker will deliver "
                "it again", what, f"{type(exc).__name__}: {exc}"[:200])


consume_event = EventConsumer.decorator
consume_events = BatchEventConsumer.decorator
