"""Queue topology, declared before anything publishes.

RabbitMQ drops an event published to an exchange with no bound queue, so every handler queue
must exist before the first service starts. The topology is read off the service classes'
``@consume_event`` entrypoints, so it cannot drift from the code.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator

from kombu import Connection, Exchange, Queue
from nameko.standalone.events import get_event_exchange

from messaging.consumer import (
    EventConsumer,
    RetryPolicy,
    handler_queue_name,
    queue_arguments,
    retry_topology,
)


def consumers_of(service_cls: type) -> Iterator[tuple[str, EventConsumer]]:
    for method_name, member in inspect.getmembers(service_cls, inspect.isfunction):
        for entrypoint in getattr(member, "nameko_entrypoints", ()):
            if isinstance(entrypoint, EventConsumer):
                yield method_name, entrypoint


def declarations(
    service_classes: Iterable[type], policy: RetryPolicy | None = None
) -> list[Exchange | Queue]:
    policy = policy or RetryPolicy.from_env()
    entities: list[Exchange | Queue] = []
    for cls in service_classes:
        entities.append(get_event_exchange(cls.name, {}))
        consumers = list(consumers_of(cls))
        if consumers:
            entities += retry_topology(cls.name, policy)
        for method_name, entrypoint in consumers:
            entities.append(
                Queue(
                    handler_queue_name(
                        entrypoint.source_service, entrypoint.event_type, cls.name, method_name
                    ),
                    exchange=get_event_exchange(entrypoint.source_service, {}),
                    routing_key=entrypoint.event_type,
                    durable=True,
                    queue_arguments=queue_arguments(),
                )
            )
    return entities


def declare(amqp_uri: str, service_classes: Iterable[type]) -> list[str]:
    """Declare every exchange and queue; returns the names declared."""
    names = []
    with Connection(amqp_uri, connect_timeout=5) as connection:
        channel = connection.channel()
        for entity in declarations(service_classes):
            bound = entity.bind(channel)
            bound.declare()
            names.append(entity.name)
    return names
