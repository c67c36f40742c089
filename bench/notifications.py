"""Events to emails: order confirmations accepted by SMTP per second, and the time from each
event's occurred_at to the SMTP server's acceptance, at a steady rate.

    python -m bench.notifications [--rate 100] [--seconds 20]

order_placed events are published straight to the orders exchange at the given rate (what
the orders relay does); the notifications service renders and sends each over SMTP to a
local aiosmtpd server, which records when it accepted it. Customers consumes the same
events meanwhile, as in production.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import UTC, datetime

from kombu import Connection, Exchange

from bench.common import Figure, cpu_seconds, cpu_share, report, running_system
from messaging.contracts import ORDER_PLACED, build_envelope


def order_event(email: str) -> dict:
    return build_envelope(ORDER_PLACED, {
        "order_id": uuid.uuid4(), "number": "#9999", "customer_id": None, "email": email,
        "locale": "es", "currency": "EUR", "subtotal": 1990, "shipping_total": 0,
        "total": 1990, "status": "pending_payment", "payment_status": "pending",
        "payment_method": "bank_transfer", "placed_at": datetime.now(UTC),
        "lines": [{"sku": "MUG", "title": "Taza", "quantity": 1, "unit_price": 1990,
                   "line_total": 1990}],
        "shipping_address": {"first_name": "Bench", "last_name": "Mark", "line1": "Calle 1",
                             "city": "Madrid", "country": "ES"},
    }).to_wire()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=100.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()

    with running_system() as system:
        from harness.smtp import SmtpSink  # the system's sink is the one running

        sink: SmtpSink = system.smtp  # type: ignore[attr-defined]
        exchange = Exchange("orders.events", type="topic", durable=True)
        sent: dict[str, float] = {}
        with Connection(system.env["AMQP_URI"]) as connection:
            producer = connection.Producer()
            before, started = cpu_seconds(), time.monotonic()
            count = int(args.rate * args.seconds)
            for i in range(count):
                due = started + i / args.rate
                time.sleep(max(0.0, due - time.monotonic()))
                email = f"nb-{i}-{uuid.uuid4().hex[:6]}@example.com"
                body = order_event(email)
                sent[email] = datetime.fromisoformat(body["occurred_at"]).timestamp()
                producer.publish(body, exchange=exchange, routing_key=ORDER_PLACED,
                                 serializer="json", message_id=body["event_id"])
            published_in = time.monotonic() - started
            deadline = time.monotonic() + 60
            while len(sink.messages) < count and time.monotonic() < deadline:
                time.sleep(0.2)
            elapsed = time.monotonic() - started
            share = cpu_share(before, cpu_seconds(), elapsed)
        latencies = sorted(m.received_at - sent[m.envelope_to[0]] for m in sink.messages
                           if m.envelope_to[0] in sent)
    accepted = len(latencies)
    figure = Figure(
        name=f"order confirmations, events at {args.rate:g}/s", requests=accepted,
        errors=count - accepted, seconds=round(elapsed, 1),
        per_second=round(accepted / elapsed, 1),
        p50_ms=round(statistics.median(latencies) * 1000, 1) if latencies else 0.0,
        p99_ms=round(latencies[min(accepted - 1, int(accepted * 0.99))] * 1000, 1)
        if latencies else 0.0,
        concurrency=1,
    )
    report("notifications", [figure], {
        "published": f"{count} events in {published_in:.1f} s",
        "latency": "event occurred_at to SMTP acceptance",
        "cores used": ", ".join(f"{k} {v:.2f}" for k, v in share.items()),
        "target": "p99 < 250 ms at a steady 100 events/s",
    })


if __name__ == "__main__":
    main()
