"""Does a second process raise checkout throughput, and do processes share the work without
doing any of it twice? Guest checkouts at one concurrency with: 1 orders process and the
gateway's 2 workers; 2 orders processes; and both again with 4 gateway workers (a second
gateway is more gunicorn processes behind one address, as a load balancer would give). After
each, the books: orders stored = order_placed events = confirmation emails (one per order).

    python -m bench.scaling [--seconds 15] [--concurrency 16] [--consumers-paused]

On one 2-core machine everything shares the same two cores, so a second process only helps
when it gets CPU the others are not using: --consumers-paused holds the customers and
notifications consumers (their events wait in RabbitMQ and are handled afterwards, and the
books are still checked) so the checkout path alone is measured.
"""

from __future__ import annotations

import argparse
from contextlib import nullcontext

from bench.checkout import _paused, checkout_call, drain, seed_products
from bench.common import Figure, load, report, running_system
from harness.system import replicas

SETUPS = [(1, 2), (2, 2), (1, 4), (2, 4)]  # (orders processes, gateway workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--consumers-paused", action="store_true")
    args = parser.parse_args()
    figures: list[Figure] = []
    notes: dict[str, str] = {}
    for orders_processes, workers in SETUPS:
        label = f"orders x{orders_processes}, gateway {workers} workers"
        with running_system(GATEWAY_WORKERS=str(workers)) as system, replicas(
                system, "services.orders.service:OrdersService", orders_processes - 1):
            checkout = checkout_call(system, seed_products(system))
            paused = (_paused("CustomersService", "NotificationsService")
                      if args.consumers_paused else nullcontext())
            with paused:
                figures.append(load(f"guest checkouts, {label}"
                                    f"{', consumers paused' if args.consumers_paused else ''}"
                                    f" (c={args.concurrency})", checkout, args.concurrency,
                                    args.seconds))
            drain(system, timeout=180)
            [(orders,)] = system.sql("orders", "SELECT count(*) FROM orders")
            [(events,)] = system.sql("orders", "SELECT count(*) FROM outbox WHERE event_type "
                                               "= 'order_placed' AND published_at IS NOT NULL")
            [(emails, distinct)] = system.sql(
                "notifications", "SELECT count(*), count(DISTINCT event_id) FROM deliveries "
                                 "WHERE kind = 'order_confirmation'")
            notes[label] = (f"orders {orders}, events published {events}, confirmation "
                            f"emails {emails} for {distinct} events")
            if not orders == events == emails == distinct:
                raise SystemExit(f"the books do not balance: {notes[label]}")
    rate = {setup: figure.per_second for setup, figure in zip(SETUPS, figures, strict=True)}
    for (orders_processes, workers), per_second in rate.items():
        if orders_processes > 1 and (1, workers) in rate:
            notes[f"orders x{orders_processes} vs x1, gateway {workers} workers"] = (
                f"x{per_second / rate[(1, workers)]:.2f}")
        if workers > 2 and (orders_processes, 2) in rate:
            notes[f"gateway {workers} vs 2 workers, orders x{orders_processes}"] = (
                f"x{per_second / rate[(orders_processes, 2)]:.2f}")
    report("scaling-consumers-paused" if args.consumers_paused else "scaling", figures, notes,
           module="scaling")


if __name__ == "__main__":
    main()
