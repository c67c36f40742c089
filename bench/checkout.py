"""Guest checkouts per second through the gateway, next to the ceiling of a gateway route
doing one no-op RPC, in the same run.

    python -m bench.checkout [--seconds 15] [--concurrency 8 16]

The system runs as `make run` starts it, on PostgreSQL. The catalogue gets 50 products with
unlimited stock (a store's spread of products; a single hot SKU measures its row lock, not
checkout). Each checkout buys 1 to 3 of them, with a shipping address.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from sqlalchemy import create_engine, text

from bench.common import (
    Figure,
    cpu_seconds,
    cpu_share,
    load,
    report,
    running_system,
)
from harness.system import System, replicas

ADDRESS = {"first_name": "Bench", "last_name": "Mark", "line1": "Calle 1", "city": "Madrid",
           "postal_code": "28001", "country": "ES"}


@contextmanager
def _paused(*needles: str) -> Iterator[None]:
    """SIGSTOP the services whose command line names one of ``needles``; SIGCONT after."""
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
            and any(n in _cmdline(p) for n in needles) and "python" in _cmdline(p)]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _drain(system: System, timeout: float = 60.0) -> None:
    """Let the consumers finish the last phase's events before the next measurement."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        [(pending,)] = system.sql("notifications", "SELECT count(*) FROM deliveries "
                                                   "WHERE status <> 'sent'")
        [(orders,)] = system.sql("orders", "SELECT count(*) FROM orders")
        [(mails,)] = system.sql("notifications", "SELECT count(*) FROM deliveries")
        if pending == 0 and mails >= orders:
            return
        time.sleep(0.5)


def seed_products(system: System) -> list[str]:
    """50 products with unlimited stock; their SKUs."""
    engine = create_engine(system.database_urls["orders"])
    with engine.begin() as connection:
        for i in range(50):
            connection.execute(text(
                "INSERT INTO products (sku, title, price, currency, stock, digital, active, "
                "created_at, updated_at) VALUES (:sku, :title, :price, 'EUR', NULL, false, "
                "true, now(), now())"), {"sku": f"BENCH-{i:03d}", "title": f"Bench {i}",
                                        "price": 500 + i * 10})
    engine.dispose()
    return [f"BENCH-{i:03d}" for i in range(50)]


def checkout_call(system: System, skus: list[str]) -> Callable[[requests.Session, int], bool]:
    """One guest checkout of 1 to 3 of the products, with an address."""
    def checkout(session: requests.Session, i: int) -> bool:
        rng = random.Random(i)
        lines = [{"sku": sku, "quantity": rng.randint(1, 3)}
                 for sku in rng.sample(skus, rng.randint(1, 3))]
        response = session.post(system.api("/checkout"), timeout=30, json={
            "email": f"bench-{uuid.uuid4().hex[:12]}@example.com", "lines": lines,
            "shipping_address": ADDRESS})
        return response.status_code == 201
    return checkout


def drain(system: System, timeout: float = 60.0) -> None:
    _drain(system, timeout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--orders-replicas", type=int, default=1,
                        help="orders processes (the relay and consumers share work safely)")
    args = parser.parse_args()

    with running_system(BENCH_ROUTES="1") as system, replicas(
            system, "services.orders.service:OrdersService", args.orders_replicas - 1):
        checkout = checkout_call(system, seed_products(system))

        def noop_rpc(session: requests.Session, i: int) -> bool:
            return session.get(f"{system.url}/_bench/noop-rpc", timeout=10).status_code == 200

        figures: list[Figure] = []
        cpu: dict[str, str] = {}
        for concurrency in args.concurrency:
            ceiling = load(f"ceiling: one no-op RPC per request (c={concurrency})", noop_rpc,
                           concurrency, args.seconds)
            before, started = cpu_seconds(), time.monotonic()
            ours = load(f"guest checkouts (c={concurrency})", checkout, concurrency,
                        args.seconds)
            share = cpu_share(before, cpu_seconds(), time.monotonic() - started)
            cpu[f"cores used during checkouts c={concurrency}"] = ", ".join(
                f"{name} {cores:.2f}" for name, cores in share.items())
            figures += [ceiling, ours]
            _drain(system)
        # The same, with the event consumers paused: what checkout itself costs. Their events
        # wait in RabbitMQ (durable queues) and are handled when they resume.
        concurrency = args.concurrency[-1]
        with _paused("CustomersService", "NotificationsService"):
            before, started = cpu_seconds(), time.monotonic()
            paused = load(f"guest checkouts, consumers paused (c={concurrency})", checkout,
                          concurrency, args.seconds)
            share = cpu_share(before, cpu_seconds(), time.monotonic() - started)
        cpu["cores used, consumers paused"] = ", ".join(
            f"{name} {cores:.2f}" for name, cores in share.items())
        figures.append(paused)
        _drain(system, timeout=180)
        [(orders,)] = system.sql("orders", "SELECT count(*) FROM orders")
        [(unsent,)] = system.sql("orders", "SELECT count(*) FROM outbox "
                                           "WHERE published_at IS NULL")
    pairs = list(zip(args.concurrency, figures[0:-1:2], figures[1:-1:2], strict=True))
    notes = {
        f"ratio c={c}": f"{o.per_second / max(ceil.per_second, 0.1):.2f} of the ceiling"
        for c, ceil, o in pairs
    }
    notes["ratio, consumers paused"] = (
        f"{figures[-1].per_second / max(pairs[-1][1].per_second, 0.1):.2f} of the ceiling")
    notes.update(cpu)
    notes["orders stored"] = f"{orders} (events still in the outbox at the end: {unsent})"
    notes["gateway"] = (f"gunicorn gthread, 2 workers x 8 threads; orders: "
                        f"{args.orders_replicas} process(es), 10 workers each")
    report("checkout", figures, notes)


if __name__ == "__main__":
    main()
