"""The words of printouts (order pages, labels, their PDFs) in the store's language, and their
dates in the store's time zone: what the admin shows, on paper."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from babel.dates import format_datetime

from gateway.dates import store_zone

WORDS: dict[str, dict[str, str]] = {
    "es": {
        "order": "Pedido", "print": "Imprimir", "payment": "pago", "shipping": "envío",
        "ship_to": "Envío a", "from": "De", "to": "Para", "sku": "SKU", "product": "Producto",
        "quantity": "Cant.", "price": "Precio", "total": "Total", "subtotal": "Subtotal",
        "shipping_cost": "Envío", "erased": "Datos personales borrados",
        "no_address": "Sin dirección de envío", "label": "Etiqueta", "tracking": "Seguimiento",
        "pending_payment": "pendiente de pago", "paid": "pagado", "completed": "completado",
        "canceled": "cancelado", "abandoned": "abandonado", "pending": "pendiente",
        "refunded": "reembolsado", "voided": "anulado", "unfulfilled": "sin enviar",
        "requested": "solicitado", "in_transit": "en tránsito", "delivered": "entregado",
        "bank_transfer": "transferencia", "cash": "efectivo", "cheque": "cheque",
        "card": "tarjeta", "bill_to": "Facturar a", "tax_id": "NIF/CIF",
        "partially_refunded": "reembolsado en parte", "refunds": "Reembolsado",
    },
    "en": {
        "order": "Order", "print": "Print", "payment": "payment", "shipping": "shipping",
        "ship_to": "Ship to", "from": "From", "to": "To", "sku": "SKU", "product": "Product",
        "quantity": "Qty", "price": "Price", "total": "Total", "subtotal": "Subtotal",
        "shipping_cost": "Shipping", "erased": "Personal data erased",
        "no_address": "No shipping address", "label": "Label", "tracking": "Tracking",
        "pending_payment": "pending payment", "paid": "paid", "completed": "completed",
        "canceled": "canceled", "abandoned": "abandoned", "pending": "pending",
        "refunded": "refunded", "voided": "voided", "unfulfilled": "unfulfilled",
        "requested": "requested", "in_transit": "in transit", "delivered": "delivered",
        "bank_transfer": "bank transfer", "cash": "cash", "cheque": "cheque", "card": "card",
        "bill_to": "Bill to", "tax_id": "Tax ID", "partially_refunded": "partially refunded",
        "refunds": "Refunded",
    },
}


class Printout:
    """What a printout needs from the store: its name, address, language and time zone."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.locale = settings.get("locale") if settings.get("locale") in WORDS else "es"
        self.words = WORDS[self.locale]
        self.zone = store_zone(settings.get("timezone"))
        self.store_name = settings.get("store_name") or ""
        self.store_address: list[str] = list(settings.get("store_address") or [])

    def word(self, key: str | None) -> str:
        """A word, or a state or payment method in the store's words (unknown: as it is)."""
        return self.words.get(key or "", key or "")

    def when(self, iso: str) -> str:
        moment = datetime.fromisoformat(iso).astimezone(self.zone)
        return format_datetime(moment, "medium", tzinfo=self.zone, locale=self.locale)
