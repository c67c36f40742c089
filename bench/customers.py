"""The merchant's customer list and insights at store scale, through the gateway.

    python -m bench.customers [--customers 100000] [--orders 1000000] [--seconds 6]

Seeds 100,000 customers and 1,000,000 orders' worth of figures (bench.seed_customers), then
measures GET /admin/customers for the common filter and sort combinations, a second page by
cursor, and GET /admin/customers/insights, one request at a time (the latency a merchant
sees), with the one-RPC ceiling for comparison. Target: list p99 < 50 ms.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import requests
from sqlalchemy import create_engine, text

from bench.common import load, owner_headers, report, running_system
from bench.seed_customers import seed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()

    with running_system() as system:
        seeded = seed(system.database_urls["customers"], args.customers, args.orders)
        print(f"seeded: {seeded}")
        headers = owner_headers(system)

        def listing(query: dict[str, Any]) -> Callable[[requests.Session, int], bool]:
            def call(session: requests.Session, i: int) -> bool:
                response = session.get(system.api("/admin/customers"), params=query,
                                       headers=headers, timeout=30)
                return response.status_code == 200
            return call

        first = requests.get(system.api("/admin/customers"), headers=headers, timeout=30,
                             params={"sort": "-total_spent"}).json()
        combos = [
            ("list: newest first (default)", {}),
            ("list: best by spend (-total_spent)", {"sort": "-total_spent"}),
            ("list: most orders (-orders_count)", {"sort": "-orders_count"}),
            ("list: recent buyers (-last_order_at)", {"sort": "-last_order_at"}),
            ("list: by name", {"sort": "name"}),
            ("list: country=ES, -total_spent", {"country": "ES", "sort": "-total_spent"}),
            ("list: registered, -last_order_at", {"type": "registered",
                                                  "sort": "-last_order_at"}),
            ("list: min_orders=20, -orders_count", {"min_orders": 20, "sort": "-orders_count"}),
            ("list: marketing, country=FR", {"accepts_marketing": "true", "country": "FR"}),
            ("list: category (10% of customers)", {"category": seeded["category_id"]}),
            ("list: search q=garcia", {"q": "garcia"}),
            ("list: search q=<one email>", {"q": "nora.gil.4242@example.com"}),
            ("list: page 2 by cursor, -total_spent", {"sort": "-total_spent",
                                                      "cursor": first["next_cursor"]}),
        ]

        def products(session: requests.Session, i: int) -> bool:
            return session.get(system.api("/products"), timeout=10).status_code == 200

        def insights(session: requests.Session, i: int) -> bool:
            return session.get(system.api("/admin/customers/insights"), headers=headers,
                               timeout=60).status_code == 200

        figures = [load("ceiling: one RPC per request (/products)", products,
                        args.concurrency, args.seconds)]
        figures += [load(name, listing(query), args.concurrency, args.seconds)
                    for name, query in combos]
        figures.append(load("insights (last 90 days)", insights, args.concurrency,
                            args.seconds))
        engine = create_engine(system.database_urls["customers"])
        with engine.connect() as connection:
            indexes = [row[0] for row in connection.execute(text(
                "SELECT indexname FROM pg_indexes WHERE tablename IN ('customers', "
                "'customer_spend', 'customer_orders', 'customer_categories') "
                "ORDER BY indexname"))]
        engine.dispose()
    report("customers", figures, {
        "data": f"{seeded['customers']} customers, {seeded['orders']} ledger orders "
                f"(seeded in {seeded['total_s']} s)",
        "target": "list p99 < 50 ms",
        "indexes": ", ".join(indexes),
    })


if __name__ == "__main__":
    main()
