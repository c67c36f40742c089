"""The gateway's RPC client: a small pool of AMQP channels, each publishing requests to
nameko's RPC exchange and taking replies on RabbitMQ's direct reply-to.

Direct reply-to (``amq.rabbitmq.reply-to``) means no reply queue at all: nothing to declare
per client (nameko's standalone proxy declared a durable one each, which outlived a lost node
and then could not be redeclared), nothing homed on a node that can die, nothing to leak. A
reply that comes after its call timed out is recognised by its correlation id and dropped, so
a client stays usable after a timeout.

Any connection or channel error marks the client broken: it is closed, never returned to the
pool, and the call answers 503 with Retry-After. A broker that cannot be reached is not
hammered: new connections back off (up to 2 s) while the last attempt failed. AMQP_URI may
list several brokers separated by ``;`` (kombu's failover): a connection takes the first that
answers.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from kombu import Connection, Consumer, Exchange, Producer, Queue
from nameko.exceptions import BadRequest, RemoteError, RpcTimeout, UnknownService, deserialize

from gateway.metrics import observe_rpc
from gateway.problems import Problem
from messaging.errors import ServiceError

log = logging.getLogger(__name__)

REPLY_TO = "amq.rabbitmq.reply-to"
RPC_EXCHANGE = Exchange("nameko-rpc", type="topic", durable=True)


def broker_unavailable() -> Problem:
    return Problem(503, "service_unavailable", "A service is unavailable. Try again shortly.",
                   headers={"Retry-After": "2"})


class RpcClient:
    """One connection and channel, used by one thread at a time."""

    def __init__(self, amqp_uri: str, timeout: float) -> None:
        self.timeout = timeout
        self.connection = Connection(amqp_uri, connect_timeout=min(timeout, 5.0),
                                     transport_options={"confirm_publish": True})
        # One try per broker listed: the caller gets its 503 now, not after minutes.
        self.connection.ensure_connection(max_retries=len(amqp_uri.split(";")))
        self.channel = self.connection.channel()
        self._waiting_for: str | None = None
        self._reply: dict[str, Any] | None = None
        self._returned: set[str] = set()
        self.consumer = Consumer(self.channel, queues=[Queue(REPLY_TO, no_declare=True)],
                                 no_ack=True, callbacks=[self._on_reply], accept=["json"])
        self.consumer.consume()
        self.producer = Producer(self.channel, exchange=RPC_EXCHANGE, serializer="json",
                                 on_return=self._on_return)

    def call(self, service: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any],
             correlation_id: str | None) -> Any:
        call_id = str(uuid.uuid4())
        self._waiting_for, self._reply = call_id, None
        headers = {"nameko.call_id_stack": [f"gateway.{service}.{method}.{call_id}"]}
        if correlation_id:  # this request's id, into the service's logs and events
            headers["nameko.correlation_id"] = correlation_id
        # mandatory + confirms: a request no queue takes (the service was never declared)
        # comes back before the confirm, instead of waiting out the timeout.
        self.producer.publish({"args": list(args), "kwargs": kwargs},
                              routing_key=f"{service}.{method}", mandatory=True,
                              reply_to=REPLY_TO, correlation_id=call_id, headers=headers)
        if call_id in self._returned:
            self._returned.discard(call_id)
            raise UnknownService(service)
        deadline = time.monotonic() + self.timeout
        while self._reply is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._waiting_for = None
                raise RpcTimeout(self.timeout)
            with suppress(socket.timeout, TimeoutError):
                self.connection.drain_events(timeout=min(remaining, 1.0))
        reply, self._reply, self._waiting_for = self._reply, None, None
        if reply.get("error"):
            raise deserialize(reply["error"])
        return reply.get("result")

    def _on_reply(self, body: dict[str, Any], message: Any) -> None:
        if message.properties.get("correlation_id") == self._waiting_for:
            self._reply = body
        # else: the late reply of a call that timed out; nobody waits for it

    def _on_return(self, exception: Any, exchange: Any, routing_key: str, message: Any
                   ) -> None:
        self._returned.add(message.properties.get("correlation_id"))

    def close(self) -> None:
        with suppress(Exception):  # broken already: nothing more to release
            self.connection.release()


class RpcPool:
    def __init__(self, amqp_uri: str, size: int = 16, timeout: float = 10.0) -> None:
        self.amqp_uri = amqp_uri
        self.timeout = timeout
        self._idle: queue.LifoQueue[RpcClient] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._failures = 0
        self._retry_at = 0.0

    @contextmanager
    def client(self) -> Iterator[RpcClient]:
        if not self._slots.acquire(timeout=self.timeout):
            raise Problem(503, "gateway_busy", "Too many requests in flight. Try again.",
                          headers={"Retry-After": "1"})
        client = None
        try:
            try:
                client = self._idle.get_nowait()
            except queue.Empty:
                client = self._connect()
            yield client
        except (ServiceError, RemoteError, BadRequest, RpcTimeout, UnknownService, Problem):
            raise  # the channel is fine: an answer, or a reply that may still come (dropped)
        except Exception as exc:  # a channel or connection error, whatever its class
            if client is not None:
                log.warning("rpc client broken, discarded: %s: %s", type(exc).__name__, exc)
                client.close()
                client = None
            raise broker_unavailable() from exc
        finally:
            if client is not None:
                self._idle.put(client)
            self._slots.release()

    def _connect(self) -> RpcClient:
        with self._lock:
            if time.monotonic() < self._retry_at:
                raise broker_unavailable()
        try:
            client = RpcClient(self.amqp_uri, self.timeout)
        except Exception as exc:
            with self._lock:
                self._failures += 1
                self._retry_at = time.monotonic() + min(0.1 * 2 ** self._failures, 2.0)
            log.warning("broker unreachable: %s: %s", type(exc).__name__, exc)
            raise broker_unavailable() from exc
        with self._lock:
            self._failures, self._retry_at = 0, 0.0
        return client

    def call(self, service: str, method: str, *args: Any, correlation_id: str | None = None,
             **kwargs: Any) -> Any:
        started, ok = time.perf_counter(), False
        try:
            with self.client() as client:
                result = client.call(service, method, args, kwargs, correlation_id)
            ok = True
            return result
        finally:
            observe_rpc(service, method, started, ok)

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return

