"""Orders as CSV, streamed: rows go out as the pages come in, never held whole in memory."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from typing import Any

from babel.numbers import get_currency_precision

COLUMNS = ["number", "placed_at", "status", "payment_status", "fulfillment_status",
           "payment_method", "email", "customer_id", "currency", "subtotal",
           "shipping_total", "total", "items", "country", "city", "carrier",
           "tracking_number"]
MONEY = ("subtotal", "shipping_total", "total")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    # A cell a spreadsheet would run as a formula (CSV injection) is kept as text.
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _amount(minor: int, currency: str) -> str:
    digits = get_currency_precision(currency)
    return f"{minor / 10**digits:.{digits}f}"


def csv_rows(fetch_page: Callable[[str | None], dict[str, Any]]) -> Iterator[str]:
    """The CSV text, a chunk per page: ``fetch_page(after)`` returns {rows, after}."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    after: str | None = None
    while True:
        page = fetch_page(after)
        for row in page["rows"]:
            row = {**row, **{k: _amount(row[k], row["currency"]) for k in MONEY}}
            writer.writerow({k: _cell(v) for k, v in row.items()})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if not page["rows"] or page["after"] is None:
            return
        after = page["after"]
