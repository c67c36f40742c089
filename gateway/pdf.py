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

LABEL_SIZE = (100 * mm, 150 * mm)


def _money(minor: int, currency: str) -> str:
    return format_currency(minor / 10 ** get_currency_precision(currency), currency,
                           locale="es")


def _address_lines(address: dict[str, Any] | None) -> list[str]:
    if not address:
        return []
    if not address.get("line1"):  # an erased customer's order keeps only the country
        return ["Datos personales borrados", *([address["country"]] if address.get("country")
                                               else [])]
    name = " ".join(p for p in (address.get("first_name"), address.get("last_name")) if p)
    city = " ".join(p for p in (address.get("postal_code"), address.get("city")) if p)
    lines = [name, address.get("company"), address.get("line1"), address.get("line2"), city,
             " ".join(p for p in (address.get("region"), address.get("country")) if p),
             address.get("phone")]
    return [str(line) for line in lines if line]


def order_pdf(order: dict[str, Any], store_name: str) -> bytes:
    """The order for the printer or the customer's records: lines, totals, where it goes."""
    buffer = io.BytesIO()
    document = SimpleDocTemplate(buffer, pagesize=A4, title=f"{store_name} {order['number']}",
                                 leftMargin=18 * mm, rightMargin=18 * mm, topMargin=18 * mm)
    currency = order["currency"]
    head = Table([[store_name, f"Pedido {order['number']}"],
                  ["", str(order["placed_at"])[:10]],
                  [order["email"], f"{order['status']} / {order['payment_status']}"]],
                 colWidths=[110 * mm, 64 * mm])
    head.setStyle(TableStyle([("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 14),
                              ("ALIGN", (1, 0), (1, -1), "RIGHT")]))
    rows = [["SKU", "Producto", "Cant.", "Precio", "Total"]]
    rows += [[line["sku"], line["title"][:60], str(line["quantity"]),
              _money(line["unit_price"], currency), _money(line["line_total"], currency)]
             for line in order["lines"]]
    rows += [["", "", "", "Subtotal", _money(order["subtotal"], currency)],
             ["", "", "", "Envío", _money(order["shipping_total"], currency)],
             ["", "", "", "Total", _money(order["total"], currency)]]
    lines = Table(rows, colWidths=[30 * mm, 76 * mm, 14 * mm, 26 * mm, 28 * mm], repeatRows=1)
    lines.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, 0), "Helvetica-Bold"),
        ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
        ("ALIGN", (2, 0), (-1, -1), "RIGHT"),
        ("FONT", (3, -1), (-1, -1), "Helvetica-Bold"),
        ("LINEABOVE", (3, -3), (-1, -3), 0.5, colors.grey),
    ]))
    story = [head, Spacer(1, 8 * mm), lines]
    address = _address_lines(order.get("shipping_address"))
    if address:
        story += [Spacer(1, 8 * mm), Table([["Envío a:"]] + [[line] for line in address])]
    document.build(story)
    return buffer.getvalue()


def label_pdf(order: dict[str, Any], store_name: str) -> bytes:
    """A shipping label: sender, the address large, the order number and its barcode."""
    buffer = io.BytesIO()
    width, height = LABEL_SIZE
    canvas = Canvas(buffer, pagesize=LABEL_SIZE)
    canvas.setTitle(f"{store_name} {order['number']}")
    canvas.setFont("Helvetica", 8)
    canvas.drawString(6 * mm, height - 10 * mm, f"De: {store_name}")
    canvas.line(6 * mm, height - 13 * mm, width - 6 * mm, height - 13 * mm)
    canvas.setFont("Helvetica-Bold", 10)
    canvas.drawString(6 * mm, height - 20 * mm, "PARA:")
    y = height - 28 * mm
    for index, line in enumerate(_address_lines(order.get("shipping_address"))):
        canvas.setFont("Helvetica-Bold" if index == 0 else "Helvetica", 13)
        canvas.drawString(8 * mm, y, line[:40])
        y -= 7 * mm
    number = order["number"].lstrip("#")
    barcode = Code128(number, barHeight=18 * mm, barWidth=0.45 * mm, humanReadable=False)
    barcode.drawOn(canvas, (width - barcode.width) / 2, 22 * mm)
    canvas.setFont("Helvetica-Bold", 16)
    canvas.drawCentredString(width / 2, 12 * mm, f"Pedido {order['number']}")
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()
