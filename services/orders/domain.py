"""Pure order rules: the three state machines, pricing, and the checks checkout makes."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from messaging.contracts import erased_email
from messaging.errors import ServiceError

FIRST_ORDER_NUMBER = 1001
# A claimed Idempotency-Key with no order after this long belongs to a request that died.
IDEMPOTENCY_CLAIM_TIMEOUT = timedelta(seconds=60)

# Order status: pending_payment → paid → completed; canceled before completed; abandoned
# when unpaid past the hold window. Values are the states each may move to.
ORDER_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "pending_payment": frozenset({"paid", "canceled", "abandoned"}),
    "paid": frozenset({"completed", "canceled"}),
    "completed": frozenset(),
    "canceled": frozenset(),
    "abandoned": frozenset({"canceled"}),
}
PAYMENT_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "pending": frozenset({"paid", "voided"}),
    "paid": frozenset({"refunded"}),
    "refunded": frozenset(),
    "voided": frozenset(),
}
FULFILLMENT_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "unfulfilled": frozenset({"requested", "in_transit", "canceled"}),
    "requested": frozenset({"in_transit", "canceled"}),
    "in_transit": frozenset({"delivered", "canceled"}),
    "delivered": frozenset(),
    "canceled": frozenset(),
}
MACHINES = {
    "status": ORDER_TRANSITIONS,
    "payment_status": PAYMENT_TRANSITIONS,
    "fulfillment_status": FULFILLMENT_TRANSITIONS,
}
PAYMENT_METHODS = ("bank_transfer", "cash", "cheque", "card")


def check_transition(machine: str, current: str, target: str) -> bool:
    """True if ``current → target`` is a change to make, False if it is a no-op (same state).

    Raises a 409 ServiceError naming the allowed targets for an illegal transition.
    """
    table = MACHINES[machine]
    if target not in table:
        raise ServiceError("unknown_state", f"{target!r} is not a {machine}", 422)
    if current == target:
        return False
    if target not in table[current]:
        allowed = sorted(table[current])
        raise ServiceError(
            "illegal_transition",
            f"{machine} cannot go from {current} to {target}",
            409,
            extra={"from": current, "to": target, "allowed": allowed},
        )
    return True


@dataclass(frozen=True)
class PricedLine:
    sku: str
    title: str
    quantity: int
    unit_price: int
    digital: bool

    @property
    def line_total(self) -> int:
        return self.unit_price * self.quantity


def merge_lines(lines: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Quantities per SKU; the same SKU twice in a cart is one line."""
    merged: dict[str, int] = {}
    for line in lines:
        merged[line["sku"]] = merged.get(line["sku"], 0) + int(line["quantity"])
    return merged


def price_lines(quantities: Mapping[str, int], products: Mapping[str, Any]) -> list[PricedLine]:
    """Price a cart from the catalogue only; the client's idea of a price is never used."""
    errors: dict[str, list[str]] = {}
    priced = []
    for sku, quantity in sorted(quantities.items()):
        product = products.get(sku)
        if product is None or not product.active:
            errors[sku] = ["unknown or unavailable product"]
            continue
        priced.append(PricedLine(sku, product.title, quantity, product.price, product.digital))
    if errors:
        raise ServiceError("unknown_product", "Some products are not for sale.", 422,
                           errors={"lines": errors})
    currencies = {products[line.sku].currency for line in priced}
    if len(currencies) > 1:
        raise ServiceError("mixed_currencies", "Products in one order must share a currency.",
                           422)
    return priced


def needs_shipping(lines: Iterable[PricedLine]) -> bool:
    return any(not line.digital for line in lines)


# What the shopper asked for. The gateway adds the rest (locale, the account offer) from
# settings it caches per process, so two identical retries may differ there: not hashed.
FINGERPRINTED_FIELDS = ("email", "lines", "shipping_address", "payment_method", "customer_id")


def request_fingerprint(request: Mapping[str, Any]) -> str:
    """Stable hash of a checkout request, to tell an idempotent retry from a reused key."""
    asked = {field: request.get(field) for field in FINGERPRINTED_FIELDS}
    canonical = json.dumps(asked, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


COUNT_CAP = 10_000  # the admin list counts matching orders up to this
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def looks_like_email(text: str) -> bool:
    """A whole email address (searched exactly), rather than a fragment of one."""
    return bool(_EMAIL.match(text.strip()))


def format_order_number(number: int) -> str:
    return f"#{number}"


MANUAL_PAYMENT_METHODS = ("bank_transfer", "cash", "cheque")
# How long an unpaid order holds its stock before it is abandoned, per payment method: a card
# payment happens now or not at all; a transfer or a cheque takes days.
DEFAULT_HOLD_MINUTES: Mapping[str, int] = {
    "card": 60, "cash": 3 * 24 * 60, "bank_transfer": 7 * 24 * 60, "cheque": 10 * 24 * 60,
}
RECOVERABLE = frozenset({"abandoned", "canceled"})  # statuses a recovery link is given for

# Carriers' public tracking pages; {number} is the URL-quoted tracking number.
CARRIER_TRACKING_URLS: Mapping[str, str] = {
    "correos": "https://www.correos.es/es/es/herramientas/localizador/envios/detalle"
               "?tracking-number={number}",
    "seur": "https://www.seur.com/livetracking/?segOnlineIdentificador={number}",
    "mrw": "https://www.mrw.es/seguimiento_envios/MRW_resultados_consultas.asp"
           "?modo=nacional&envio={number}",
    "gls": "https://gls-group.com/ES/es/seguimiento-envio?match={number}",
    "dhl": "https://www.dhl.com/es-es/home/tracking/tracking-parcel.html"
           "?submit=1&tracking-id={number}",
    "ups": "https://www.ups.com/track?loc=es_ES&tracknum={number}",
    "fedex": "https://www.fedex.com/fedextrack/?trknbr={number}",
}


def tracking_url_for(carrier: str | None, number: str | None) -> str | None:
    """The carrier's tracking page for a number, when the carrier is one we know."""
    template = CARRIER_TRACKING_URLS.get((carrier or "").strip().lower())
    if not template or not number:
        return None
    return template.format(number=quote(number.strip(), safe=""))


def hold_minutes(method: str, settings: Mapping[str, int]) -> int:
    return settings.get(method, DEFAULT_HOLD_MINUTES.get(method, DEFAULT_HOLD_MINUTES["card"]))
HOLDS_STOCK = frozenset({"pending_payment", "paid"})  # leaving these for RELEASES_STOCK
RELEASES_STOCK = frozenset({"canceled", "abandoned"})  # puts the units back, exactly once


def is_digital_only(lines: Iterable[Any]) -> bool:
    return all(line.digital for line in lines)


def follow_ups(field: str, to: str, order: Any) -> list[tuple[str, str]]:
    """The changes another change implies, as (field, state), in order:
    - paid: the order is paid; a digital-only order (nothing to ship) is then completed;
    - delivered: a paid order is completed;
    - canceled: what was still to ship is canceled too.
    """
    implied: list[tuple[str, str]] = []
    if field == "payment_status" and to == "paid" and order.status == "pending_payment":
        implied.append(("status", "paid"))
        if is_digital_only(order.lines):
            implied.append(("status", "completed"))
    elif field == "fulfillment_status" and to == "delivered" and (
            order.status == "paid" or order.payment_status == "paid"):
        if order.status == "pending_payment":
            implied.append(("status", "paid"))
        implied.append(("status", "completed"))
    elif field == "status" and to == "canceled" and order.fulfillment_status in (
            "unfulfilled", "requested"):
        implied.append(("fulfillment_status", "canceled"))
    return implied


def anonymise_order(order: Any, customer_id: Any) -> None:
    """An erased customer's order: who and where go; what, how much and when stay. The
    country stays (tax reporting needs it, and it identifies no one)."""
    order.email = erased_email(customer_id)
    country = (order.shipping_address or {}).get("country")
    order.shipping_address = {"country": country} if country else None
    order.access_token_hash = None  # the guest's order link dies with the data
