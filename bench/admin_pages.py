"""The merchant admin's pages in a real browser, with a store's worth of data behind them.

    python -m bench.admin_pages [--customers 100000] [--ledger 1000000] [--orders 300000]
                                [--rounds 20]

Seeds customers (with their order figures) and orders straight into PostgreSQL, then drives
Debian's headless chromium (Playwright) through /admin/: each figure is the time from the
click (or the reload) until the page shows its data, what a merchant waits for, measured
round after round from another page. One browser, one tab: the latency, not a throughput.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from playwright.sync_api import Page, sync_playwright

from bench.common import Figure, report, running_system
from bench.orders import seed as seed_orders
from bench.seed_customers import seed as seed_customers
from harness.browser import CHROMIUM, CHROMIUM_ARGS
from harness.system import OWNER_EMAIL, OWNER_PASSWORD

IDLE = "() => { const d = Alpine.$data(document.body); return !d.customers.loading "\
       "&& !d.orders.loading; }"


def measure(name: str, page: Page, rounds: int, prepare: Callable[[], None],
            act: Callable[[], None], done: str) -> Figure:
    """``prepare`` leaves the page somewhere else; the clock runs from ``act`` until the
    selector ``done`` is visible."""
    samples = []
    for _ in range(rounds + 1):  # the first round warms caches and is not counted
        prepare()
        started = time.perf_counter()
        act()
        page.wait_for_selector(done, state="visible")
        page.wait_for_function(IDLE)
        samples.append(time.perf_counter() - started)
    samples = sorted(samples[1:])
    total = sum(samples)
    return Figure(name=name, requests=len(samples), errors=0, seconds=round(total, 2),
                  per_second=round(len(samples) / total, 1),
                  p50_ms=round(statistics.median(samples) * 1000, 1),
                  p99_ms=round(samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000,
                               1),
                  concurrency=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--ledger", type=int, default=1_000_000,
                        help="orders in the customers' figures")
    parser.add_argument("--orders", type=int, default=300_000,
                        help="orders in the orders service")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    with running_system() as system:
        customers = seed_customers(system.database_urls["customers"], args.customers,
                                   args.ledger)
        orders = seed_orders(system.database_urls["orders"], args.orders)
        print(f"seeded: {customers}; {orders}")
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-US")
            page.set_default_timeout(60_000)
            page.goto(f"{system.url}/admin/")
            page.get_by_label("Email").fill(OWNER_EMAIL)
            page.get_by_label("Password").fill(OWNER_PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_selector("table[aria-label=customers] tbody tr")

            def go(hash_: str) -> Callable[[], None]:
                return lambda: page.evaluate(f"location.hash = {hash_!r}")

            # Pages keep their last data in the component; it is cleared before each round so
            # the clock stops on fresh data, not on the previous round's.
            forget = ("(() => { const d = Alpine.$data(document.body); d.customers.items = []; "
                      "d.orders.items = []; d.customer = null; d.order = null; "
                      "d.insights = null; d.stats = null; })()")

            def away() -> None:
                page.evaluate("location.hash = '#/settings'")
                page.wait_for_selector("input[name=customer_accounts]")
                page.evaluate(forget)

            def on_customers() -> None:
                away()
                page.evaluate("location.hash = '#/customers'")
                page.wait_for_selector("table[aria-label=customers] tbody tr")
                page.wait_for_function(IDLE)
                page.evaluate(forget)

            category = customers["category_id"]
            customer_id = page.evaluate(
                "Alpine.$data(document.body).customers.items[0].id")
            page.evaluate("location.hash = '#/orders'")
            page.wait_for_selector("table[aria-label=orders] tbody tr")
            order_id = page.evaluate("Alpine.$data(document.body).orders.items[0].id")
            page.evaluate("location.hash = '#/customers'")  # where the reloads start
            page.wait_for_selector("table[aria-label=customers] tbody tr")
            rows = "table[aria-label=customers] tbody tr"
            figures = [
                measure("reload: /admin/ to the customer list", page, args.rounds,
                        lambda: None, page.reload, rows),
                measure("customers: list (newest first)", page, args.rounds, away,
                        go("#/customers"), rows),
                measure("customers: filtered by a category", page, args.rounds, on_customers,
                        lambda: page.evaluate(
                            f"Alpine.$data(document.body).filterByCategory({str(category)!r})"),
                        rows),
                measure("customers: sorted by spend", page, args.rounds, on_customers,
                        lambda: page.evaluate(
                            "Alpine.$data(document.body).sortCustomers('total_spent')"), rows),
                measure("customer page", page, args.rounds, away,
                        go(f"#/customers/{customer_id}"), "dl.figures"),
                measure("orders: list", page, args.rounds, away, go("#/orders"),
                        "table[aria-label=orders] tbody tr"),
                measure("order page", page, args.rounds, away, go(f"#/orders/{order_id}"),
                        "table[aria-label=lines] tbody tr"),
                measure("insights: figures and three charts drawn", page, args.rounds, away,
                        go("#/insights"), "#chart-share"),
            ]
            browser.close()
    report("admin_pages", figures, {
        "data": f"{customers['customers']} customers with {customers['orders']} ledger "
                f"orders; {orders['orders']} orders",
        "measured": "click or reload until the page shows its data, in headless chromium; "
                    "the first round of each is a warm-up",
    })


if __name__ == "__main__":
    main()
