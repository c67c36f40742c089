"""RPC between the gateway's client and a nameko service, on real RabbitMQ: replies on direct
reply-to (no reply queue declared), a service's refusal back as itself, timeouts that leave the
client usable, and a broker fault answered 503 with Retry-After, never 500."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import eventlet
import pytest
from nameko.containers import ServiceContainer
from nameko.exceptions import RpcTimeout, UnknownService

from gateway.problems import Problem
from gateway.rpc import RpcPool
from harness.infra import amqp_uri_for, free_port, queue_types, rabbit_vhost
from messaging.errors import ServiceError
from messaging.rpc import rpc


class EchoService:
    name = "echo"

    @rpc
    def echo(self, value: Any, twice: bool = False) -> Any:
        return [value, value] if twice else value

    @rpc
    def refuse(self) -> None:
        raise ServiceError("nope", "Refused.", 409, extra={"allowed": ["x"]})

    @rpc
    def slow(self, seconds: float) -> str:
        eventlet.sleep(seconds)
        return "late"


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    with rabbit_vhost() as vhost:
        uri = amqp_uri_for(vhost)
        container = ServiceContainer(EchoService, {"AMQP_URI": uri, "serializer": "json"})
        container.start()
        try:
            yield vhost
        finally:
            container.stop()


def test_calls_answer_on_direct_reply_to_without_a_reply_queue(broker: str) -> None:
    pool = RpcPool(amqp_uri_for(broker), size=4, timeout=5)
    try:
        assert pool.call("echo", "echo", {"a": 1}) == {"a": 1}
        assert pool.call("echo", "echo", "x", twice=True) == ["x", "x"]
        for _ in range(20):
            pool.call("echo", "echo", 1)
        # only the service's request queue: no reply queue per client or per call
        assert set(queue_types(broker)) == {"rpc-echo"}
        with pytest.raises(ServiceError) as refused:
            pool.call("echo", "refuse")
        assert (refused.value.code, refused.value.extra) == ("nope", {"allowed": ["x"]})
        with pytest.raises(UnknownService):
            pool.call("nobody", "anything")
        assert pool.call("echo", "echo", 2) == 2  # the client survived both
    finally:
        pool.close()


def test_a_late_reply_is_dropped_and_the_client_stays_usable(broker: str) -> None:
    pool = RpcPool(amqp_uri_for(broker), size=1, timeout=0.5)
    try:
        with pytest.raises(RpcTimeout):
            pool.call("echo", "slow", 1.0)
        time.sleep(0.8)  # the late reply arrives on the same channel
        pool.timeout = 5
        assert pool.call("echo", "echo", "fresh") == "fresh"
    finally:
        pool.close()


def test_an_unreachable_broker_is_a_503_with_retry_after_and_backs_off() -> None:
    pool = RpcPool(f"amqp://guest:guest@127.0.0.1:{free_port()}/", size=2, timeout=1)
    with pytest.raises(Problem) as first:
        pool.call("echo", "echo", 1)
    assert (first.value.status, first.value.code) == (503, "service_unavailable")
    assert first.value.headers["Retry-After"]
    started = time.monotonic()
    with pytest.raises(Problem):  # within the back-off: no new connection attempt
        pool.call("echo", "echo", 1)
    assert time.monotonic() - started < 0.1


def test_a_list_of_brokers_uses_the_first_that_answers(broker: str) -> None:
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/{broker}"
    pool = RpcPool(f"{dead};{amqp_uri_for(broker)}", size=1, timeout=5)
    try:
        assert pool.call("echo", "echo", "via the second") == "via the second"
    finally:
        pool.close()
