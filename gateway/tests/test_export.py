"""The CSV export, page by page, without a broker."""

from __future__ import annotations

import csv
import io

from gateway.export import COLUMNS, csv_rows


def row(number: int, email: str = "a@example.com", currency: str = "EUR") -> dict:
    return {"number": f"#{number}", "placed_at": "2026-11-01T10:00:00+00:00", "status": "paid",
            "payment_status": "paid", "fulfillment_status": "unfulfilled",
            "payment_method": "cash", "email": email, "customer_id": "", "currency": currency,
            "subtotal": 1990, "shipping_total": 0, "total": 1990, "items": "MUG x1",
            "country": "ES", "city": "Madrid", "carrier": "", "tracking_number": ""}


def test_pages_are_streamed_in_order_with_money_and_formulas_made_safe() -> None:
    pages = {None: {"rows": [row(1001), row(1002, '=HYPERLINK("x")')], "after": "p1"},
             "p1": {"rows": [row(1003, currency="CLP")], "after": "p2"},
             "p2": {"rows": [], "after": None}}
    chunks = list(csv_rows(lambda after: pages[after]))
    assert len(chunks) == 3  # one chunk per page, as they come
    table = list(csv.DictReader(io.StringIO("".join(chunks))))
    assert list(table[0]) == COLUMNS
    assert [r["number"] for r in table] == ["#1001", "#1002", "#1003"]
    assert table[0]["total"] == "19.90" and table[2]["total"] == "1990"
    assert table[1]["email"].startswith("'=")  # never run as a formula
