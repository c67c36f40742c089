"""Orders as PDF, drawn with ReportLab: an invoice-style page and a 100 x 150 mm shipping
label with a Code 128 barcode of the order number.

Text from customers is only ever drawn as plain strings (never parsed as ReportLab markup), so
a name cannot inject anything. The built-in Helvetica covers Latin-1: Spanish, Portuguese,
French and the like; other scripts would need an embedded font.
"""

from __future__ import annotations

import io
from typing import Any

from babel.numbers import format_currency, get_currency_precision
from reportlab.graphics.barcode.code128 import Code128
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import SimpleDocTemplate, Spacer, Table, TableStyle

from gateway.printouts import Printout

LABEL_SIZE = (100 * mm, 150 * mm)


def _money(minor: int, currency: str, locale: str) -> str:
    return format_currency(minor / 10 ** get_currency_precision(currency), currency,
                           locale=locale)


def _address_lines(address: dict[str, Any] | None, p: Printout) -> list[str]:
    if not address:
        return []
    if not address.get("line1"):  # an erased customer's order keeps only the country
        return [p.word("erased"), *([address["country"]] if address.get("country") else [])]
    name = " ".join(part for part in (address.get("first_name"), address.get("last_name"))
                    if part)
    city = " ".join(part for part in (address.get("postal_code"), address.get("city")) if part)
    lines = [name, address.get("company"), address.get("line1"), address.get("line2"), city,
             " ".join(part for part in (address.get("region"), address.get("country"))
                      if part),
             address.get("phone")]
    return [str(line) for line in lines if line]


def order_pdf(order: dict[str, Any], p: Printout) -> bytes:
    """The order for the printer or the customer's records: lines, totals, where it goes,
    in the store's words and time zone."""
    buffer = io.BytesIO()
    document = SimpleDocTemplate(buffer, pagesize=A4, title=f"{p.store_name} {order['number']}",
                                 leftMargin=18 * mm, rightMargin=18 * mm, topMargin=18 * mm)
    currency = order["currency"]

    def money(minor: int) -> str:
        return _money(minor, currency, p.locale)

    states = f"{p.word(order['status'])} / {p.word('payment')}: " \
             f"{p.word(order['payment_status'])} ({p.word(order['payment_method'])})"
    head = Table([[p.store_name, f"{p.word('order')} {order['number']}"],
                  ["", p.when(order["placed_at"])],
                  [order["email"], states],
                  ["", f"{p.word('shipping')}: {p.word(order['fulfillment_status'])}"]],
                 colWidths=[90 * mm, 84 * mm])
    head.setStyle(TableStyle([("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 14),
                              ("ALIGN", (1, 0), (1, -1), "RIGHT")]))
    rows = [[p.word("sku"), p.word("product"), p.word("quantity"), p.word("price"),
             p.word("total")]]
    # A customer's category price shows with the catalogue price it replaced.
    rows += [[line["sku"], line["title"][:60], str(line["quantity"]),
              money(line["unit_price"]) + (f" ({money(line['list_price'])})"
                                           if line.get("list_price") else ""),
              money(line["line_total"])]
             for line in order["lines"]]
    rows += [["", "", "", p.word("subtotal"), money(order["subtotal"])],
             ["", "", "", p.word("shipping_cost"), money(order["shipping_total"])],
             ["", "", "", p.word("total"), money(order["total"])]]
    total_row = len(rows) - 1
    if order.get("refunded_total"):
        rows.append(["", "", "", p.word("refunds"), "-" + money(order["refunded_total"])])
    lines = Table(rows, colWidths=[30 * mm, 76 * mm, 14 * mm, 26 * mm, 28 * mm], repeatRows=1)
    lines.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, 0), "Helvetica-Bold"),
        ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
        ("ALIGN", (2, 0), (-1, -1), "RIGHT"),
        ("FONT", (3, total_row), (-1, total_row), "Helvetica-Bold"),
        ("LINEABOVE", (3, total_row - 2), (-1, total_row - 2), 0.5, colors.grey),
    ]))
    story = [head, Spacer(1, 8 * mm), lines]
    address = _address_lines(order.get("shipping_address"), p)
    if address:
        story += [Spacer(1, 8 * mm),
                  Table([[f"{p.word('ship_to')}:"]] + [[line] for line in address])]
    billing = order.get("billing_address")
    if billing and (billing != order.get("shipping_address") or billing.get("tax_id")):
        bill_to = _address_lines({k: v for k, v in billing.items() if k != "phone"}, p)
        if billing.get("tax_id") and billing.get("line1"):
            bill_to.insert(1, f"{p.word('tax_id')}: {billing['tax_id']}")
        story += [Spacer(1, 6 * mm),
                  Table([[f"{p.word('bill_to')}:"]] + [[line] for line in bill_to])]
    document.build(story)
    return buffer.getvalue()


def label_pdf(order: dict[str, Any], p: Printout) -> bytes:
    """A shipping label: the sender (the store, with its address), the address large, the
    carrier and tracking number, the order number and its barcode; as the HTML label."""
    buffer = io.BytesIO()
    width, height = LABEL_SIZE
    canvas = Canvas(buffer, pagesize=LABEL_SIZE)
    canvas.setTitle(f"{p.store_name} {order['number']}")
    canvas.setFont("Helvetica", 8)
    y = height - 8 * mm
    for line in [f"{p.word('from')}: {p.store_name}", *p.store_address][:5]:
        canvas.drawString(6 * mm, y, line[:70])
        y -= 3.5 * mm
    canvas.line(6 * mm, y, width - 6 * mm, y)
    canvas.setFont("Helvetica-Bold", 10)
    canvas.drawString(6 * mm, y - 7 * mm, f"{p.word('to').upper()}:")
    y -= 15 * mm
    for index, line in enumerate(_address_lines(order.get("shipping_address"), p)):
        canvas.setFont("Helvetica-Bold" if index == 0 else "Helvetica", 13)
        canvas.drawString(8 * mm, y, line[:40])
        y -= 7 * mm
    if order.get("tracking_number"):
        canvas.setFont("Helvetica", 10)
        canvas.drawString(8 * mm, 45 * mm, f"{p.word('tracking')}: "
                                           f"{order.get('carrier') or ''} "
                                           f"{order['tracking_number']}"[:60])
    number = order["number"].lstrip("#")
    barcode = Code128(number, barHeight=18 * mm, barWidth=0.45 * mm, humanReadable=False)
    barcode.drawOn(canvas, (width - barcode.width) / 2, 22 * mm)
    canvas.setFont("Helvetica-Bold", 16)
    canvas.drawCentredString(width / 2, 12 * mm, f"{p.word('order')} {order['number']}")
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()
