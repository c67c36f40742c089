"""What each service's part of a checkout costs in its own process, without the broker: the
handler alone, on its own migrated PostgreSQL database, with green psycopg2 as the services
run it (eventlet).

    python -m bench.handlers [--orders 1000]

- orders: ``checkout.place_order`` called ``--orders`` times (guest checkouts of 1 of 50
  products, each with its own email and Idempotency-Key, as the gateway sends them);
- customers: ``ledger.handle_orders_placed`` on those orders' own ``order_placed`` events (read
  from orders' outbox), one event at a time and in batches of four;
- notifications: ``sending.record_events`` on the same events, alone and in fours, mail to an
  aiosmtpd sink in another process (its CPU is not this process's).

CPU is ``time.process_time`` of this process around the calls (the database's own CPU is not
in it: bench.checkout_cost counts that); statements per call from SQLAlchemy's
``before_cursor_execute``. The system-wide profiles (py-spy ``--gil``) charge a green
thread's wait for a core to the C call it was in; these figures have no such noise, which
is why changes to a handler are measured here first.
"""

from __future__ import annotations

import eventlet

eventlet.monkey_patch()  # before anything opens a socket, as nameko's runner does

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from eventlet.support import psycopg2_patcher  # noqa: E402
from sqlalchemy import MetaData, event, text  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from harness.infra import free_port, postgres_databases, wait_for  # noqa: E402
from messaging.database import Database, DatabaseAccess, create_engine_for  # noqa: E402
from messaging.envelope import Envelope, envelope_from_wire  # noqa: E402
from messaging.keys import ensure_local_keys  # noqa: E402
from messaging.migrations import upgrade  # noqa: E402

psycopg2_patcher.make_psycopg_green()
SERVICES = Path(__file__).resolve().parents[1] / "services"
WARM = 50
ADDRESS = {"first_name": "Bench", "last_name": "Mark", "line1": "Calle 1", "city": "Madrid",
           "postal_code": "28001", "country": "ES"}


class Measured:
    """A service's database as its handlers see it (``self.db``), and its statements."""

    def __init__(self, service: str, metadata: MetaData, url: str) -> None:
        upgrade(SERVICES / service, url)
        provider = Database(metadata, url_env="UNUSED", sqlite_name="unused.db")
        provider.url, provider.engine = url, create_engine_for(url, pool_size=10)
        provider.sessions = sessionmaker(provider.engine, expire_on_commit=False)
        provider.outbox = metadata.tables["outbox"]
        provider.processed_events = metadata.tables["processed_events"]
        provider.wake_relay = lambda: None  # type: ignore[method-assign]  # no relay here
        self.provider = provider
        self.db = DatabaseAccess(provider, None, f"{service}.bench")
        self.statements = 0
        for engine in (provider.engine, provider.autocommit_engine()):  # execute_alone's too
            event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, *_: Any) -> None:
        self.statements += 1

    def measure(self, calls: list[Callable[[], Any]], per: int) -> tuple[float, float]:
        """(CPU ms, statements) per item, over ``calls`` each handling ``per`` items."""
        self.statements = 0
        started = time.process_time()
        for call in calls:
            call()
        items = len(calls) * per
        return (time.process_time() - started) / items * 1e3, self.statements / items


def orders_part(url: str, count: int) -> tuple[tuple[float, float], list[str]]:
    from services.orders import checkout
    from services.orders.models import Base, Product

    orders = Measured("orders", Base.metadata, url)
    with Session(orders.provider.engine) as session, session.begin():
        session.add_all(Product(sku=f"BENCH-{n:03d}", title=f"Product {n}", titles={},
                                price=1000 + n, currency="EUR", stock=10**7, digital=False,
                                active=True) for n in range(50))
    run = uuid.uuid4().hex[:8]

    def checkout_of(n: int) -> Callable[[], Any]:
        return lambda: checkout.place_order(orders.db, None, {
            "email": f"bench-{run}-{n}@example.com",
            "lines": [{"sku": f"BENCH-{n % 50:03d}", "quantity": 1}],
            "shipping_address": ADDRESS, "payment_method": "bank_transfer",
            "payment_instructions": "IBAN ES00 0000", "locale": "es",
            "idempotency_key": f"storefront:{run}-{n}", "customer_id": None,
            "offer_account": True, "account_exists": False, "save_shipping_address": False})

    for n in range(WARM):
        checkout_of(n)()
    figures = orders.measure([checkout_of(WARM + n) for n in range(count)], 1)
    with orders.provider.engine.connect() as connection:
        bodies = list(connection.scalars(text(
            "SELECT body FROM outbox WHERE event_type = 'order_placed' ORDER BY id")))
    orders.provider.engine.dispose()
    orders.provider.autocommit_engine().dispose()
    return figures, bodies


def batched(handle: Callable[[list[Envelope]], Any], envelopes: list[Envelope], size: int
            ) -> list[Callable[[], Any]]:
    return [lambda batch=envelopes[i:i + size]: handle(batch)
            for i in range(0, len(envelopes) - size + 1, size)]


def consumer_part(measured: Measured, handle: Callable[[list[Envelope]], Any],
                  envelopes: list[Envelope]) -> dict[int, tuple[float, float]]:
    for envelope in envelopes[:WARM]:
        handle([envelope])
    rest = envelopes[WARM:]
    half = len(rest) // 2
    return {1: measured.measure(batched(handle, rest[:half], 1), 1),
            4: measured.measure(batched(handle, rest[half:], 4), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 2)[2])
    parser.add_argument("--orders", type=int, default=1000, help="checkouts measured")
    args = parser.parse_args()
    port = free_port()
    sink = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
                             "-c", "aiosmtpd.handlers.Sink"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    var = tempfile.TemporaryDirectory(prefix="bench-handlers-")
    os.environ["CLIENTELA_VAR_DIR"] = var.name
    os.environ["SMTP_URL"] = f"smtp://127.0.0.1:{port}"
    ensure_local_keys()
    try:
        wait_for(lambda: _accepting(port), timeout=10, message="the SMTP sink")
        with postgres_databases("orders", "customers", "notifications") as urls:
            report(args.orders, *measure_all(args.orders, urls))
    finally:
        sink.terminate()
        var.cleanup()


def _accepting(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def measure_all(count: int, urls: dict[str, str]) -> tuple[Any, ...]:
    from services.customers import ledger
    from services.customers.models import Base as CustomersBase
    from services.notifications import sending
    from services.notifications.dependencies import MailerProvider
    from services.notifications.models import Base as NotificationsBase

    placed, bodies = orders_part(urls["orders"], count)
    envelopes = [envelope_from_wire(json.loads(body)) for body in bodies]
    customers = Measured("customers", CustomersBase.metadata, urls["customers"])
    by_customers = consumer_part(
        customers, lambda batch: ledger.handle_orders_placed(customers.db, batch), envelopes)
    notifications = Measured("notifications", NotificationsBase.metadata,
                             urls["notifications"])
    os.environ["NOTIFICATIONS_DATABASE_URL"] = urls["notifications"]
    mail = MailerProvider()
    mail.setup()
    by_notifications = consumer_part(
        notifications, lambda batch: sending.record_events(notifications.db, mail, batch),
        envelopes)
    for measured in (customers, notifications):
        measured.provider.engine.dispose()
        measured.provider.autocommit_engine().dispose()
    return placed, by_customers, by_notifications


def report(count: int, placed: tuple[float, float],
           by_customers: dict[int, tuple[float, float]],
           by_notifications: dict[int, tuple[float, float]]) -> None:
    print(f"handlers: {os.cpu_count()} cores, {sys.version.split()[0]}, in process, "
          "PostgreSQL on this machine")
    print(f"{'part':58} {'CPU ms':>8} {'statements':>11}  (BEGIN/COMMIT not counted)")
    print(f"{'orders: place_order, one checkout':58} {placed[0]:8.2f} {placed[1]:11.1f}")
    for size, (cpu, statements) in by_customers.items():
        print(f"{f'customers: order_placed, per event in batches of {size}':58} "
              f"{cpu:8.2f} {statements:11.1f}")
    for size, (cpu, statements) in by_notifications.items():
        print(f"{f'notifications: order_placed, per email in batches of {size}':58} "
              f"{cpu:8.2f} {statements:11.1f}")
    print(f"  {count} checkouts measured after {WARM} to warm up; the events are those "
          "checkouts' own order_placed")
    print(f"command: python -m bench.handlers --orders {count}")


if __name__ == "__main__":
    main()
