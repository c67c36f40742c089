"""The ceilings every other figure is read against, measured in one run on this machine:
a gateway route that does nothing, a route that makes one no-op RPC, and RabbitMQ itself
(persistent messages published with confirms to a durable queue, and consumed with acks).

    python -m bench.ceilings [--seconds 10] [--concurrency 16] [--messages 20000]
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid

import requests
from kombu import Connection, Consumer, Exchange, Producer, Queue

from bench.common import Figure, load, report, running_system
from harness.infra import amqp_uri_for, rabbit_vhost


def broker_figures(messages: int) -> list[Figure]:
    """Publish ``messages`` 1 KiB persistent messages with publisher confirms (one at a time,
    as our outbox relay does), then consume them all with manual acks (prefetch 10, as our
    consumers do)."""
    body = {"payload": "x" * 1000}
    with rabbit_vhost("clientela_bench_raw") as vhost, Connection(amqp_uri_for(vhost)) as conn:
        exchange = Exchange("bench", type="topic", durable=True)
        queue = Queue(f"bench-{uuid.uuid4().hex[:6]}", exchange, routing_key="bench",
                      durable=True)
        channel = conn.channel()
        queue.bind(channel).declare()
        producer = Producer(conn.channel(), exchange=exchange)
        producer.channel.confirm_select()
        latencies = []
        start = time.monotonic()
        for _ in range(messages):
            sent = time.monotonic()
            producer.publish(body, routing_key="bench", serializer="json", delivery_mode=2)
            latencies.append(time.monotonic() - sent)
        published_in = time.monotonic() - start

        received = 0
        done = threading.Event()

        def on_message(_body: object, message: object) -> None:
            nonlocal received
            message.ack()  # type: ignore[attr-defined]
            received += 1
            if received >= messages:
                done.set()

        consumer_channel = conn.channel()
        consumer_channel.basic_qos(0, 10, False)
        start = time.monotonic()
        with Consumer(consumer_channel, [queue], callbacks=[on_message]):
            while not done.is_set():
                conn.drain_events(timeout=10)
        consumed_in = time.monotonic() - start
        queue.bind(channel).delete()
    latencies.sort()
    return [
        Figure("ceiling: broker publish, confirmed (1 KiB)", messages, 0, published_in,
               messages / published_in, latencies[len(latencies) // 2] * 1000,
               latencies[int(len(latencies) * 0.99)] * 1000, 1),
        Figure("ceiling: broker consume, acked (prefetch 10)", messages, 0, consumed_in,
               messages / consumed_in, 0.0, 0.0, 1),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--messages", type=int, default=20000)
    args = parser.parse_args()
    figures = broker_figures(args.messages)
    with running_system(BENCH_ROUTES="1") as system:
        def noop(session: requests.Session, i: int) -> bool:
            return session.get(f"{system.url}/_bench/noop", timeout=10).status_code == 200

        def noop_rpc(session: requests.Session, i: int) -> bool:
            return session.get(f"{system.url}/_bench/noop-rpc", timeout=10).status_code == 200

        figures.append(load(f"ceiling: no-op gateway route (c={args.concurrency})", noop,
                            args.concurrency, args.seconds))
        figures.append(load(f"ceiling: one no-op RPC per request (c={args.concurrency})",
                            noop_rpc, args.concurrency, args.seconds))
    report("ceilings", figures, {"broker": "RabbitMQ on this machine, its own vhost"})


if __name__ == "__main__":
    main()
