"""Operator's view of a service's dead-letter queue: list, show, replay, discard."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from amqp.exceptions import NotFound
from kombu import Connection, Producer

from messaging.consumer import (
    ATTEMPTS_HEADER,
    DELAY_HEADER,
    ERROR_HEADER,
    FAILED_AT_HEADER,
    ORIGINAL_QUEUE_HEADER,
    dead_letter_queue,
)


@dataclass(frozen=True)
class DeadLetter:
    event_id: str | None
    event_type: str | None
    original_queue: str | None
    attempts: int
    error: str | None
    failed_at: str | None

    @classmethod
    def from_message(cls, message: Any) -> DeadLetter:
        body = message.payload if isinstance(message.payload, dict) else {}
        headers = message.headers or {}
        return cls(
            event_id=body.get("event_id") or message.properties.get("message_id"),
            event_type=body.get("event_type"),
            original_queue=headers.get(ORIGINAL_QUEUE_HEADER),
            attempts=int(headers.get(ATTEMPTS_HEADER, 0)),
            error=headers.get(ERROR_HEADER),
            failed_at=headers.get(FAILED_AT_HEADER),
        )


def depth(amqp_uri: str, service: str) -> int:
    """Messages in the service's dead-letter queue (0 if it was never declared). Passive: the
    queue is looked at as it is, whatever type it was declared with."""
    with Connection(amqp_uri, connect_timeout=5) as connection:
        queue = dead_letter_queue(service).bind(connection.channel())
        try:
            return queue.queue_declare(passive=True).message_count
        except NotFound:
            return 0


def _each(amqp_uri: str, service: str, act: Callable[[Any, DeadLetter, Producer], bool]
          ) -> list[DeadLetter]:
    """Take every message off the queue once; ``act`` says whether it was consumed (ack) or
    should stay (requeued after the pass, so no message is seen twice in one pass)."""
    handled = []
    with Connection(amqp_uri, connect_timeout=5) as connection:
        channel = connection.channel()
        queue = dead_letter_queue(service).bind(channel)
        queue.declare()
        producer = Producer(connection.channel())
        kept = []
        try:
            while (message := queue.get(no_ack=False)) is not None:
                letter = DeadLetter.from_message(message)
                if act(message, letter, producer):
                    message.ack()
                    handled.append(letter)
                else:
                    kept.append(message)
        finally:
            for message in kept:
                message.requeue()
    return handled


def peek(amqp_uri: str, service: str) -> list[DeadLetter]:
    seen: list[DeadLetter] = []

    def look(message: Any, letter: DeadLetter, producer: Producer) -> bool:
        seen.append(letter)
        return False

    _each(amqp_uri, service, look)
    return seen


def replay(amqp_uri: str, service: str, event_id: str | None = None) -> list[DeadLetter]:
    """Send dead letters back to the handler queue they came from, with a fresh attempt count."""

    def send_back(message: Any, letter: DeadLetter, producer: Producer) -> bool:
        if (event_id and letter.event_id != event_id) or not letter.original_queue:
            return False
        headers = {k: v for k, v in (message.headers or {}).items()
                   if k not in (ATTEMPTS_HEADER, DELAY_HEADER, ERROR_HEADER, FAILED_AT_HEADER,
                                ORIGINAL_QUEUE_HEADER)}
        producer.publish(message.body, exchange="", routing_key=letter.original_queue,
                         headers=headers, content_type=message.content_type,
                         content_encoding=message.content_encoding, delivery_mode=2,
                         message_id=message.properties.get("message_id"))
        return True

    return _each(amqp_uri, service, send_back)


def discard(amqp_uri: str, service: str, event_id: str) -> list[DeadLetter]:
    return _each(amqp_uri, service, lambda m, letter, p: letter.event_id == event_id)
