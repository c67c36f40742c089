"""The CSV export, page by page, without a broker."""

from __future__ import annotations

import csv
import io

from gateway.export import COLUMNS, csv_rows


def row(number: int, email: str = "a@example.com", currency: str = "EUR") -> dict:
    return {"number": f"#{number}", "placed_at": "2026-11-01T10:00:00+00:00", "status": "paid",
            "payment_status": "paid", "fulfillment_status": "unfulfilled",
            "payment_method": "cash", "email": email, "customer_id": "", "currency": currency,
            "subtotal": 1990, "shipping_total": 0, "total": 1990, "country": "ES",
            "city": "Madrid", "carrier": "", "tracking_number": "", "sku": "MUG",
            "title": "Taza", "quantity": 1, "unit_price": 1990, "line_total": 1990}


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
    with_bom = "".join(csv_rows(lambda after: pages[after], bom=True))
    assert with_bom.startswith("\ufeffnumber,")


def test_printable_pages_escape_what_customers_typed() -> None:
    from gateway.export import printable

    order = {"number": "#1001", "placed_at": "2026-11-01", "status": "paid",
             "payment_status": "paid", "payment_method": "cash",
             "fulfillment_status": "requested", "email": "a@example.com", "currency": "EUR",
             "total": 1990, "carrier": None, "tracking_number": None,
             "lines": [{"sku": "MUG", "title": "<b>Taza</b>", "quantity": 1,
                        "unit_price": 1990, "line_total": 1990}],
             "shipping_address": {"first_name": "<script>x</script>", "last_name": "G",
                                  "company": None, "line1": "C/ Mayor 1", "line2": None,
                                  "city": "Madrid", "region": None, "postal_code": "28013",
                                  "country": "ES", "phone": None}}
    page = printable("order_print.html.j2", order)
    assert "&lt;script&gt;" in page and "<script>x" not in page and "19,90" in page
    label = printable("order_label.html.j2", order)
    assert "28013 Madrid" in label and "&lt;script&gt;" in label
