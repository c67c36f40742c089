"""Orders out of the system: CSV (streamed, never held whole in memory) and printable pages."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

from babel.numbers import format_currency, get_currency_precision
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from gateway.printouts import Printout
from messaging.contracts import AddressSchema, is_erased_email

COLUMNS = ["number", "placed_at", "status", "payment_status", "fulfillment_status",
           "payment_method", "email", "customer_id", "currency", "subtotal",
           "shipping_total", "total", "country", "city", "carrier", "tracking_number",
           "sku", "title", "quantity", "unit_price", "line_total",
           # added with billing (issue #19): after the old columns, so their places hold
           "refunded_total", "billing_name", "billing_company", "billing_tax_id",
           "billing_address", "billing_country",
           # added with category prices (issue #20)
           "list_price", "price_source"]
ADDRESS_FIELDS = tuple(AddressSchema().fields)
MONEY = ("subtotal", "shipping_total", "total", "unit_price", "line_total", "refunded_total",
         "list_price")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    # A cell a spreadsheet would run as a formula (CSV injection) is kept as text.
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _amount(minor: int, currency: str) -> str:
    digits = get_currency_precision(currency)
    return f"{minor / 10**digits:.{digits}f}"


def csv_rows(fetch_page: Callable[[str | None], dict[str, Any]], bom: bool = False
             ) -> Iterator[str]:
    """The CSV text, a chunk per page: ``fetch_page(after)`` returns {rows, after}. With
    ``bom``, a UTF-8 byte order mark first, so spreadsheets read the accents right."""
    buffer = io.StringIO()
    if bom:
        buffer.write("\ufeff")
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    after: str | None = None
    while True:
        page = fetch_page(after)
        for row in page["rows"]:
            row = {**row, **{k: _amount(row[k], row["currency"]) for k in MONEY
                             if row.get(k) is not None}}
            writer.writerow({k: _cell(v) for k, v in row.items()})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if not page["rows"] or page["after"] is None:
            return
        after = page["after"]


@cache
def _pages() -> Environment:
    return Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                       autoescape=select_autoescape(["html.j2"]), undefined=StrictUndefined)


def printable(template: str, order: dict[str, Any], printout: Printout) -> str:
    """An order as an HTML page for the printer (names and addresses escaped), in the
    store's words and time zone."""
    return _pages().get_template(template).render(
        order={**order, "shipping_address": printable_address(order),
               "billing_address": printable_address(order, "billing_address")}, p=printout,
        money=lambda minor, currency: format_currency(
            minor / 10 ** get_currency_precision(currency), currency, locale=printout.locale))


def printable_address(order: dict[str, Any], kind: str = "shipping_address"
                      ) -> dict[str, Any] | None:
    """The order's shipping (or billing) address with every field present (None where
    missing), and ``erased`` when the customer's data was erased: such an order keeps only
    the country."""
    address = order.get(kind)
    if not address:
        return None
    full = {name: address.get(name) for name in ADDRESS_FIELDS}
    full["erased"] = is_erased_email(order.get("email") or "") or not address.get("line1")
    return full
