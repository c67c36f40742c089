"""A service's AMQP consumer connections, each with its state for /readyz: RPC requests and
events consume on connections of their own (nameko shares one), so a broker fault that keeps
one from coming back (a queue that cannot be redeclared) never stops the other, and readiness
says which one is down."""

from __future__ import annotations

from typing import Any

from nameko.extensions import DependencyProvider
from nameko.messaging import QueueConsumer


class TrackedQueueConsumer(QueueConsumer):
    """nameko's QueueConsumer that knows whether it is consuming now."""

    kind = "consumer"
    consuming = False

    def get_consumers(self, consumer_cls: Any, channel: Any) -> Any:
        # Called on every (re)connection before the queues are declared: until they are and
        # the consumers are ready, this connection is not consuming.
        self.consuming = False
        return super().get_consumers(consumer_cls, channel)

    def on_consume_ready(self, connection: Any, channel: Any, consumers: Any,
                         **kwargs: Any) -> None:
        self.consuming = True
        super().on_consume_ready(connection, channel, consumers, **kwargs)

    def on_connection_error(self, exc: Any, interval: Any) -> None:
        self.consuming = False
        super().on_connection_error(exc, interval)


class RpcQueueConsumer(TrackedQueueConsumer):
    kind = "rpc"


class EventQueueConsumer(TrackedQueueConsumer):
    kind = "events"

    @property
    def prefetch_count(self) -> int:
        # Per consumer (RabbitMQ's basic.qos without global), one value for all of this
        # connection's: enough for the worker pool, and for a batch consumer's batches.
        wanted = [getattr(provider, "prefetch", 0) for provider in self._providers]
        return max([self.container.max_workers, *wanted])


class ConsumerStates(DependencyProvider):
    """``self.consumers()``: {"rpc": "consuming" | "reconnecting", "events": ...}. Every
    worker of the service is handed this provider; the states are read only when asked (by
    readiness), not for each request."""

    def get_dependency(self, worker_ctx: Any) -> ConsumerStates:
        return self

    def __call__(self) -> dict[str, str]:
        return {extension.kind: "consuming" if extension.consuming else "reconnecting"
                for extension in self.container.shared_extensions.values()
                if isinstance(extension, TrackedQueueConsumer)}
