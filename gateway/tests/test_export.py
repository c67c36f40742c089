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
    from gateway.printouts import Printout

    store = Printout({"locale": "es", "timezone": "Europe/Madrid", "store_name": "<i>Tienda</i>",
                      "store_address": ["Calle Sol 1", "28001 Madrid"]})
    order = {"number": "#1001", "placed_at": "2026-11-01T23:30:00+00:00", "status": "paid",
             "payment_status": "paid", "payment_method": "cash",
             "fulfillment_status": "requested", "email": "a@example.com", "currency": "EUR",
             "total": 1990, "carrier": None, "tracking_number": None,
             "lines": [{"sku": "MUG", "title": "<b>Taza</b>", "quantity": 1,
                        "unit_price": 1990, "line_total": 1990}],
             "shipping_address": {"first_name": "<script>x</script>", "last_name": "G",
                                  "company": None, "line1": "C/ Mayor 1", "line2": None,
                                  "city": "Madrid", "region": None, "postal_code": "28013",
                                  "country": "ES", "phone": None}}
    page = printable("order_print.html.j2", order, store)
    assert "&lt;script&gt;" in page and "<script>x" not in page and "19,90" in page
    assert "&lt;i&gt;Tienda" in page
    label = printable("order_label.html.j2", order, store)
    assert "28013 Madrid" in label and "&lt;script&gt;" in label
    assert "Calle Sol 1" in label  # the sender's address


def test_printouts_speak_the_stores_language_and_time() -> None:
    """What the admin shows, on paper: states, methods and dates in the store's words."""
    from gateway.export import printable
    from gateway.pdf import label_pdf, order_pdf
    from gateway.printouts import Printout

    order = {"number": "#1002", "placed_at": "2026-12-02T00:59:42.366860+00:00",
             "status": "completed", "payment_status": "refunded",
             "payment_method": "bank_transfer", "fulfillment_status": "delivered",
             "email": "a@example.com", "currency": "EUR", "subtotal": 1990,
             "shipping_total": 0, "total": 1990, "carrier": "Correos",
             "tracking_number": "PK123ES",
             "lines": [{"sku": "MUG", "title": "Taza", "quantity": 1, "unit_price": 1990,
                        "line_total": 1990}],
             "shipping_address": {"first_name": "Ana", "last_name": "G", "line1": "C/ Mayor 1",
                                  "city": "Madrid", "postal_code": "28013", "country": "ES"}}
    spanish = Printout({"locale": "es", "timezone": "Europe/Madrid", "store_name": "Tienda",
                        "store_address": ["Calle Sol 1", "28001 Madrid"]})
    page = printable("order_print.html.j2", order, spanish)
    assert "completado" in page and "reembolsado" in page and "transferencia" in page
    assert "2026-12-02T00:59" not in page and "2 dic 2026, 1:59" in page  # Madrid, not UTC
    english = printable("order_print.html.j2", order,
                        Printout({"locale": "en", "timezone": "UTC", "store_name": "Shop"}))
    assert "completed" in english and "bank transfer" in english
    pdf_text = _pdf_text(order_pdf(order, spanish))
    assert "completado" in pdf_text and "reembolsado" in pdf_text
    label_text = _pdf_text(label_pdf(order, spanish))
    assert "Correos PK123ES" in label_text and "Calle Sol 1" in label_text


def _pdf_text(content: bytes) -> str:
    import io

    from pypdf import PdfReader

    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
