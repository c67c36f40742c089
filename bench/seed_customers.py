"""Seed the customers service's PostgreSQL database with a large, realistic store, fast.

    python -m bench.seed_customers POSTGRES_URL [--customers 100000] [--orders 1000000]

Writes customers (guests and registered, 20 countries, consent, a category of 10%), their
order ledger (what order events would have left: statuses, payments, totals over two years)
and the figures computed from it, with PostgreSQL COPY. It writes the service's tables
directly, as a data import would: running a million checkouts through the system would
measure checkout, not the merchant's list. The database must be migrated (clientela migrate).
"""

from __future__ import annotations

import argparse
import io
import random
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, text

COUNTRIES = ["ES", "ES", "ES", "ES", "FR", "FR", "PT", "DE", "IT", "GB", "US", "MX", "AR",
             "CL", "CO", "NL", "BE", "IE", "PL", "SE"]
CITIES = {"ES": ["Madrid", "Barcelona", "Sevilla", "Valencia"], "FR": ["Paris", "Lyon"]}
FIRST = ["Ana", "Bruno", "Carla", "Dario", "Elena", "Fabio", "Gema", "Hugo", "Irene", "Jorge",
         "Laura", "Mario", "Nora", "Oscar", "Paula", "Raul", "Sara", "Tomas", "Vera", "Xavi"]
LAST = ["Garcia", "Martin", "Lopez", "Sanchez", "Perez", "Gomez", "Ruiz", "Diaz", "Moreno",
        "Alvarez", "Romero", "Navarro", "Torres", "Dominguez", "Vazquez", "Ramos", "Gil",
        "Serrano", "Blanco", "Molina"]
STATUSES = [("completed", "paid")] * 70 + [("paid", "paid")] * 10 + \
    [("pending_payment", "pending")] * 8 + [("canceled", "voided")] * 6 + \
    [("abandoned", "pending")] * 4 + [("completed", "refunded")] * 2
COUNTED = {"pending_payment", "paid", "completed"}
NULL = r"\N"


def _row(values: Iterable[object]) -> str:
    return "\t".join(NULL if v is None else str(v) for v in values) + "\n"


def _copy(connection: object, table: str, columns: list[str], lines: io.StringIO) -> None:
    lines.seek(0)
    cursor = connection.connection.cursor()  # type: ignore[attr-defined]
    cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", lines)


def seed(url: str, customers: int = 100_000, orders: int = 1_000_000, seed_value: int = 7
         ) -> dict[str, object]:
    """Seed and return what was written (and the id of the seeded category)."""
    rng = random.Random(seed_value)
    now = datetime.now(UTC)
    started = time.monotonic()
    mean = orders / customers
    per_customer = [int(rng.expovariate(1 / mean)) for _ in range(customers)]
    scale = orders / max(1, sum(per_customer))
    per_customer = [int(n * scale + rng.random()) for n in per_customer]

    customer_lines, ledger_lines, spend_lines, member_lines = (io.StringIO() for _ in range(4))
    category_id = uuid.uuid4()
    written_orders = 0
    for index, count in enumerate(per_customer):
        customer_id = uuid.uuid4()
        country = rng.choice(COUNTRIES)
        city = rng.choice(CITIES.get(country, ["Capital"]))
        first, last = rng.choice(FIRST), rng.choice(LAST)
        registered = rng.random() < 0.3
        created = now - timedelta(days=rng.uniform(0, 730))
        marketing = rng.random() < 0.3
        placed = sorted(created + timedelta(seconds=rng.uniform(
            0, max(1.0, (now - created).total_seconds()))) for _ in range(count))
        counted, spent, last_status = 0, 0, None
        for when in placed:
            status, payment = rng.choice(STATUSES)
            total = rng.randrange(500, 25_000)
            ledger_lines.write(_row((uuid.uuid4(), customer_id, "EUR", total, status, payment,
                                     when.isoformat())))
            if status in COUNTED:
                counted += 1
                if payment == "paid":
                    spent += total
            last_status = status
        written_orders += count
        spend_lines.write(_row((customer_id, "EUR", spent)))  # every customer: see models
        if index % 10 == 0:
            member_lines.write(_row((customer_id, category_id, now.isoformat())))
        customer_lines.write(_row((
            customer_id, f"{first}.{last}.{index}@example.com".lower(), first, last,
            f"+34 6{index:08d}", "es" if country == "ES" else "en",
            "registered" if registered else "guest",
            customer_id if registered else None, "active" if registered else None,
            created.isoformat(), counted, placed[0].isoformat() if placed else None,
            placed[-1].isoformat() if placed else None, last_status,
            "card" if placed else None, country, city, marketing,
            created.isoformat() if marketing else None)))
    generated = time.monotonic() - started

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO spend_currencies (currency) VALUES ('EUR') "
                                "ON CONFLICT DO NOTHING"))
        connection.execute(text("INSERT INTO categories (id, name, created_at) "
                                "VALUES (:id, :name, now())"),
                           {"id": category_id, "name": f"Wholesale {category_id.hex[:6]}"})
        _copy(connection, "customers", [
            "id", "email", "first_name", "last_name", "phone", "locale", "type", "account_id",
            "account_status", "created_at", "orders_count", "first_order_at", "last_order_at",
            "last_order_status", "last_payment_method", "country", "city", "accepts_marketing",
            "marketing_consent_at"], customer_lines)
        _copy(connection, "customer_orders", ["order_id", "customer_id", "currency", "total",
                                              "status", "payment_status", "placed_at"],
              ledger_lines)
        _copy(connection, "customer_spend", ["customer_id", "currency", "amount"], spend_lines)
        _copy(connection, "customer_categories", ["customer_id", "category_id", "added_at"],
              member_lines)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return {"customers": customers, "orders": written_orders, "category_id": str(category_id),
            "generate_s": round(generated, 1),
            "total_s": round(time.monotonic() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="the customers database, e.g. "
                                    "postgresql+psycopg2://postgres@127.0.0.1/customers")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    args = parser.parse_args()
    print(seed(args.url, args.customers, args.orders))


if __name__ == "__main__":
    main()
