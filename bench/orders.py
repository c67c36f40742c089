"""Orders at store scale: the CSV export of 1,000,000 orders and the admin order list.

    python -m bench.orders [--orders 1000000] [--seconds 6]

Seeds the orders service's PostgreSQL database with COPY (orders of 1 to 3 lines over two
years, as checkouts would have left them: it writes the service's tables directly, as a data
import would), then through the gateway: the whole export streamed as CSV (rows per second,
and the peak memory of the gateway and orders processes while it ran), and the admin order list
(newest first, by status, by email search, a later page) one request at a time.
"""

from __future__ import annotations

import argparse
import io
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine, text

from bench.common import Figure, load, owner_headers, report, running_system

STATUSES = [("completed", "paid", "delivered")] * 70 + [("paid", "paid", "unfulfilled")] * 10 \
    + [("pending_payment", "pending", "unfulfilled")] * 10 + \
    [("canceled", "voided", "canceled")] * 6 + [("abandoned", "pending", "unfulfilled")] * 4
PRODUCTS = [(f"SKU-{n:04d}", f"Producto {n}", 500 + n * 25) for n in range(200)]


def _row(values: Any) -> str:
    return "\t".join(r"\N" if v is None else str(v) for v in values) + "\n"


def seed(url: str, orders: int, seed_value: int = 11) -> dict[str, Any]:
    rng = random.Random(seed_value)
    now = datetime.now(UTC)
    started = time.monotonic()
    order_lines, line_lines = io.StringIO(), io.StringIO()
    line_count = 0
    for number in range(orders):
        order_id = uuid.uuid4()
        placed = now - timedelta(seconds=rng.uniform(0, 730 * 86400))
        status, payment, fulfillment = rng.choice(STATUSES)
        subtotal = 0
        for _ in range(rng.choice((1, 1, 2, 3))):
            sku, title, price = rng.choice(PRODUCTS)
            quantity = rng.randint(1, 3)
            subtotal += price * quantity
            line_lines.write(_row((order_id, sku, title, quantity, price, price * quantity,
                                   "false")))
            line_count += 1
        address = ('{"first_name": "Ana", "last_name": "Ruiz", "line1": "Calle Mayor 1", '
                   '"city": "Madrid", "country": "ES"}')
        order_lines.write(_row((
            order_id, 100_000 + number, status, payment, fulfillment, "card",
            f"buyer{number % 100_000}@example.com", "es", "EUR", subtotal, 0, subtotal,
            address, placed.isoformat(), placed.isoformat(), "storefront")))
    generated = time.monotonic() - started
    engine = create_engine(url)
    with engine.begin() as connection:
        cursor = connection.connection.cursor()
        order_lines.seek(0)
        cursor.copy_expert(
            "COPY orders (id, number, status, payment_status, fulfillment_status, "
            "payment_method, email, locale, currency, subtotal, shipping_total, total, "
            "shipping_address, placed_at, updated_at, channel) FROM STDIN", order_lines)
        line_lines.seek(0)
        cursor.copy_expert("COPY order_lines (order_id, sku, title, quantity, unit_price, "
                           "line_total, digital) FROM STDIN", line_lines)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE orders"))
        connection.execute(text("VACUUM ANALYZE order_lines"))
    engine.dispose()
    return {"orders": orders, "lines": line_count, "generate_s": round(generated, 1),
            "total_s": round(time.monotonic() - started, 1)}


def _peak_rss_mb(needle: str) -> float:
    """The largest peak resident memory (VmHWM) among processes whose command line has
    ``needle``, in MiB."""
    peak = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "cmdline").read_bytes().decode(errors="replace"):
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            continue
    return round(peak / 1024, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=6)
    args = parser.parse_args()

    with running_system() as system:
        seeded = seed(system.database_urls["orders"], args.orders)
        print(f"seeded: {seeded}")
        headers = owner_headers(system)

        def listing(query: dict[str, Any]) -> Callable[[requests.Session, int], bool]:
            def call(session: requests.Session, i: int) -> bool:
                return session.get(system.api("/admin/orders"), params=query, headers=headers,
                                   timeout=30).status_code == 200
            return call

        first = requests.get(system.api("/admin/orders"), headers=headers, timeout=30).json()
        figures: list[Figure] = [
            load("admin orders: newest first", listing({}), 1, args.seconds),
            load("admin orders: status=paid", listing({"status": "paid"}), 1, args.seconds),
            load("admin orders: q=<an email>", listing({"q": "buyer4242@example.com"}), 1,
                 args.seconds),
            load("admin orders: page 2", listing({"before": first["next_before"]}), 1,
                 args.seconds),
        ]

        before = {name: _peak_rss_mb(name) for name in ("gunicorn", "OrdersService")}
        started = time.monotonic()
        rows = 0
        size = 0
        with requests.get(system.api("/admin/orders/export"), headers=headers, stream=True,
                          timeout=600, params={
                              "from": (datetime.now(UTC) - timedelta(days=800)).isoformat(),
                              "to": datetime.now(UTC).isoformat()}) as response:
            response.raise_for_status()
            for chunk in response.iter_content(chunk_size=1 << 16):
                rows += chunk.count(b"\n")
                size += len(chunk)
        seconds = time.monotonic() - started
        after = {name: _peak_rss_mb(name) for name in ("gunicorn", "OrdersService")}
        rows -= 1  # the header
    report("orders", figures, {
        "data": f"{seeded['orders']} orders, {seeded['lines']} lines (seeded in "
                f"{seeded['total_s']} s)",
        "export": f"{rows} CSV rows ({size / 1e6:.0f} MB) in {seconds:.1f} s = "
                  f"{rows / seconds:.0f} rows/s",
        "peak RSS (MiB) before -> after the export": f"gateway worker {before['gunicorn']} -> "
        f"{after['gunicorn']}, orders {before['OrdersService']} -> {after['OrdersService']}",
    })


if __name__ == "__main__":
    main()
