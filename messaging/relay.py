"""The outbox relay's broker side: a batch of events published, then confirmed once.

nameko's ``Publisher`` waits for the broker's confirm after every message and looks its
producer up in kombu's pool by building a new ``Connection`` each time (a quarter of a
publish's CPU, profiled). The relay publishes only from its own thread, so it keeps one
connection with one channel in confirm mode, sends a batch without waiting, and then waits
for the acks of the whole batch: one round trip per batch instead of one per event.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from amqp import spec
from kombu import Connection, Exchange

log = logging.getLogger(__name__)

PERSISTENT = 2  # delivery mode: the broker writes the message to disk


class NotConfirmed(Exception):
    """The broker refused (nacked) a message, or did not confirm it in time."""


class PartlyPublished(Exception):
    """The first ``confirmed`` events of a batch are the broker's; the rest may or may not
    have reached it and must go again (consumers are idempotent by event id)."""

    def __init__(self, confirmed: int, cause: Exception) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.confirmed = confirmed
        self.cause = cause


@dataclass(frozen=True)
class OutgoingEvent:
    event_id: str
    event_type: str
    body: str  # the envelope, already JSON (as the outbox stores it)
    correlation_id: str | None


class ConfirmingPublisher:
    """One connection and channel, publisher confirms on, used by one thread at a time."""

    def __init__(self, amqp_uri: str, exchange: Exchange, transport_options: dict[str, Any],
                 confirm_timeout: float = 5.0) -> None:
        self.amqp_uri = amqp_uri
        self.exchange = exchange
        self.transport_options = transport_options
        self.confirm_timeout = confirm_timeout
        self._connection: Connection | None = None
        self._channel: Any = None
        self._published = 0  # delivery tags handed out on this channel
        # The batch in flight's tags: not yet confirmed, confirmed, refused.
        self._open: set[int] = set()
        self._acked: set[int] = set()
        self._nacked: set[int] = set()

    def publish(self, events: list[OutgoingEvent]) -> None:
        """Publish ``events`` in order, then wait once for all their confirms.

        Raises ``PartlyPublished`` with how many of them, from the first on, the broker
        confirmed, if not all were. A kept connection that turns out dead before any of
        them was confirmed (the broker restarted while the relay was idle) is replaced
        once, at once."""
        if not events:
            return
        for fresh_connection in (self._channel is None, True):
            tags, failure = self._publish_and_wait(events)
            confirmed = 0
            for tag in tags:
                if tag not in self._acked:
                    break
                confirmed += 1
            self._open.clear()
            self._acked.clear()
            self._nacked.clear()
            if confirmed == len(events):
                return
            self.reset()
            if confirmed or fresh_connection:
                break
        raise PartlyPublished(confirmed, failure or NotConfirmed("not confirmed"))

    def reset(self) -> None:
        """Drop the connection (after an error, or at stop); the next publish opens one."""
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            try:
                connection.release()
            except Exception as exc:  # already broken: nothing to close cleanly
                log.debug("relay connection closed uncleanly: %s", exc)

    def _publish_and_wait(self, events: list[OutgoingEvent]
                          ) -> tuple[list[int], Exception | None]:
        tags: list[int] = []
        try:
            channel = self._ensure_channel()
            for event in events:
                self._send(channel, event)
                self._published += 1
                tags.append(self._published)
                self._open.add(self._published)
        except Exception as exc:  # what was sent may still be confirmed: wait for it
            failure: Exception | None = exc
        else:
            failure = None
        if tags:
            try:
                self._wait_for(tags)
            except Exception as exc:
                failure = failure or exc
        return tags, failure

    def _send(self, channel: Any, event: OutgoingEvent) -> None:
        headers = ({"nameko.correlation_id": event.correlation_id}
                   if event.correlation_id else {})
        message = channel.prepare_message(
            event.body.encode(), content_type="application/json", content_encoding="utf-8",
            headers=headers,
            properties={"delivery_mode": PERSISTENT, "message_id": event.event_id})
        channel.basic_publish(message, exchange=self.exchange.name,
                              routing_key=event.event_type)

    def _ensure_channel(self) -> Any:
        if self._channel is None:
            connection = Connection(self.amqp_uri, transport_options=self.transport_options)
            connection.ensure_connection(max_retries=1)
            channel = connection.channel()
            self.exchange(channel).declare()
            channel.confirm_select()
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
            self._connection, self._channel = connection, channel
            self._published = 0
        return self._channel

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(self._acked, delivery_tag, multiple)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(self._nacked, delivery_tag, multiple)

    def _settle(self, into: set[int], delivery_tag: int, multiple: bool) -> None:
        # multiple: "every tag up to this one" (RabbitMQ coalesces acks)
        settled = ({tag for tag in self._open if tag <= delivery_tag} if multiple
                   else {delivery_tag} & self._open)
        self._open -= settled
        into |= settled

    def _wait_for(self, tags: list[int]) -> None:
        deadline = time.monotonic() + self.confirm_timeout
        while self._open:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NotConfirmed(f"no confirm within {self.confirm_timeout:.0f}s")
            self._channel.wait([spec.Basic.Ack, spec.Basic.Nack], timeout=remaining)
        refused = [tag for tag in tags if tag in self._nacked]
        if refused:
            raise NotConfirmed(f"the broker refused {len(refused)} message(s)")
