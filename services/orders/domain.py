"""Pure order rules: the three state machines, history notes, follow-ups, refunds and holds
(prices and checkout limits: pricing_rules)."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote

from messaging.contracts import (  # noqa: F401 (re-exported: the orders rules use them)
    MANUAL_PAYMENT_METHODS,
    PAYMENT_METHODS,
    PROVIDER_PAYMENT_METHODS,
    erased_email,
)
from messaging.contracts.orders import OrdersError
from messaging.contracts.orders_admin import (
    HISTORY_NOTES,
)
from messaging.errors import ServiceError

FIRST_ORDER_NUMBER = 1001
# How long the account offered after a guest checkout can be taken (once).
ACCOUNT_OFFER_TTL = timedelta(days=7)


# Order status: pending_payment → paid → completed; canceled before completed; abandoned
# when unpaid past the hold window. Values are the states each may move to.
ORDER_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "pending_payment": frozenset({"paid", "canceled", "abandoned"}),
    "paid": frozenset({"completed", "canceled"}),
    "completed": frozenset(),
    "canceled": frozenset(),
    "abandoned": frozenset({"canceled"}),
}
# A refund takes paid to partially_refunded or refunded (more partial refunds may follow);
# voided → paid is money that came after all (a late payment): recorded, the merchant alerted.
PAYMENT_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "pending": frozenset({"paid", "voided"}),
    "paid": frozenset({"refunded", "partially_refunded"}),
    "partially_refunded": frozenset({"refunded"}),
    "refunded": frozenset(),
    "voided": frozenset({"paid"}),
}
REFUNDABLE_PAYMENT = frozenset({"paid", "partially_refunded"})
# Reached only through a refund (its amount recorded), never set by hand.
SET_BY_REFUND = frozenset({"refunded", "partially_refunded"})
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


def check_transition(machine: str, current: str, target: str) -> bool:
    """True if ``current → target`` is a change to make, False if it is a no-op (same state).

    Raises a 409 ServiceError naming the allowed targets for an illegal transition.
    """
    table = MACHINES[machine]
    if target not in table:
        raise ServiceError(OrdersError.UNKNOWN_STATE, f"{target!r} is not a {machine}", 422)
    if current == target:
        return False
    if target not in table[current]:
        allowed = sorted(table[current])
        raise ServiceError(
            OrdersError.ILLEGAL_TRANSITION,
            f"{machine} cannot go from {current} to {target}",
            409,
            extra={"from": current, "to": target, "allowed": allowed},
        )
    return True


HistoryNote = tuple[str, dict[str, Any]]


def history_note(code: str, **params: Any) -> HistoryNote:
    """A service-written history entry's (code, params); unknown codes fail at once."""
    HISTORY_NOTES[code].format(**params)  # every placeholder given
    return code, params


def describe_note(code: str | None, params: Mapping[str, Any] | None) -> str | None:
    return HISTORY_NOTES[code].format(**(params or {})) if code in HISTORY_NOTES else None


def allowed_changes(order: Any) -> dict[str, list[str]]:
    """The states a merchant may move each machine to by hand, from where the order is: the
    admin offers these (the service still decides). Abandoned is the hold window's to set,
    a refund's states are reached with an amount (the refund form), and a provider's payment
    is not changed by hand at all."""
    allowed = {field: sorted(MACHINES[field][getattr(order, field)])
               for field in MACHINES}
    allowed["status"] = [s for s in allowed["status"] if s != "abandoned"]
    allowed["payment_status"] = (
        [s for s in allowed["payment_status"] if s != "partially_refunded"]
        if order.payment_method in MANUAL_PAYMENT_METHODS else [])
    if is_digital_only(order.lines):
        allowed["fulfillment_status"] = []
    return allowed


# Prices per customer category (DESIGN §9). A customer's price for a product: the lowest of
# its categories' per-SKU prices and of the catalogue price less its categories' biggest
# discount; the catalogue price without categories. "hidden" in any category wins: no price.


# What the shopper asked for. The gateway adds the rest (locale, the account offer) from
# settings it caches per process, so two identical retries may differ there: not hashed.
FINGERPRINTED_FIELDS = ("email", "lines", "shipping_address", "payment_method", "customer_id")
# Hashed only when sent, so keys claimed before these fields existed keep their fingerprint.
FINGERPRINTED_IF_SENT = ("cart", "buy_link", "recovery_token", "billing_address")


def request_fingerprint(request: Mapping[str, Any]) -> str:
    """Stable hash of a checkout request, to tell an idempotent retry from a reused key."""
    asked = {field: request.get(field) for field in FINGERPRINTED_FIELDS}
    asked.update({field: request[field] for field in FINGERPRINTED_IF_SENT
                  if request.get(field) is not None})
    canonical = json.dumps(asked, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


COUNT_CAP = 10_000  # the admin list counts matching orders up to this
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def looks_like_email(text: str) -> bool:
    """A whole email address (searched exactly), rather than a fragment of one."""
    return bool(_EMAIL.match(text.strip()))


def format_order_number(number: int) -> str:
    return f"#{number}"


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
    - canceled: what was still to ship is canceled too;
    - voided: an unpaid order is canceled (and what was to ship).
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
    elif field == "payment_status" and to == "voided" and order.status == "pending_payment":
        # No money will come: the unpaid order is canceled, and its stock goes back.
        implied.append(("status", "canceled"))
        if order.fulfillment_status in ("unfulfilled", "requested"):
            implied.append(("fulfillment_status", "canceled"))
    elif field == "status" and to == "canceled" and order.fulfillment_status in (
            "unfulfilled", "requested"):
        implied.append(("fulfillment_status", "canceled"))
    return implied


def refund_decision_problem(order: Any, payment: str | None, comment: str | None
                            ) -> dict[str, list[str]] | None:
    """Canceling a paid order says what happens to the money: ``refund`` (the payment is
    marked refunded) or ``keep`` (with the reason, in the history). None: nothing missing."""
    if order.payment_status not in REFUNDABLE_PAYMENT:
        return None
    if payment is None:
        return {"payment": ['The order is paid: say "refund" or "keep".']}
    if payment == "keep" and not (comment or "").strip():
        return {"comment": ["Say why the payment is kept."]}
    return None


def refund_problem(order: Any, amount: int | None) -> tuple[int, str | None]:
    """The amount to refund (the rest of the payment when none is given), and why it cannot
    be refunded (None: it can)."""
    if order.payment_status not in REFUNDABLE_PAYMENT:
        return 0, f"a {order.payment_status} payment cannot be refunded"
    left = order.total - order.refunded_total
    amount = left if amount is None else amount
    if amount > left:
        return amount, f"at most {left} is left to refund"
    return amount, None


def payment_status_after_refund(order: Any, amount: int) -> str:
    return "refunded" if order.refunded_total + amount >= order.total else "partially_refunded"


def paid_late_alert(order: Any) -> str | None:
    """Money that arrived for an order no longer waiting for it (abandoned or canceled while
    the shopper was paying): the merchant must decide (fulfil or refund)."""
    if order.status in ("abandoned", "canceled"):
        return f"paid_after_{order.status}"
    return None


def billing_columns(address: Mapping[str, Any] | None) -> dict[str, str]:
    """The billing address as the export's columns (empty where there is none)."""
    address = address or {}
    name = " ".join(p for p in (address.get("first_name"), address.get("last_name")) if p)
    street = ", ".join(p for p in (address.get("line1"), address.get("line2"),
                                   address.get("postal_code"), address.get("city"),
                                   address.get("region")) if p)
    return {"billing_name": name, "billing_company": address.get("company") or "",
            "billing_tax_id": address.get("tax_id") or "", "billing_address": street,
            "billing_country": address.get("country") or ""}


def anonymise_order(order: Any, customer_id: Any) -> None:
    """An erased customer's order: who and where go; what, how much and when stay. The
    country stays (tax reporting needs it, and it identifies no one)."""
    order.email = erased_email(customer_id)
    country = (order.shipping_address or {}).get("country")
    order.shipping_address = {"country": country} if country else None
    # The billing country stays with the books; the name, address and tax id go.
    billing_country = (order.billing_address or {}).get("country")
    order.billing_address = {"country": billing_country} if billing_country else None
    order.access_token_hash = None  # the guest's order link dies with the data
    order.access_token_sealed = None


BUY_LINK_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"  # no 0/o, 1/l/i: read aloud, typed
BUY_LINK_CODE_LENGTH = 8  # 31^8 ≈ 8.5e11 codes: not guessable by walking them


STATS_MAX_DAYS = 366  # a year of daily buckets at most: longer ranges want a report, not a chart


def daily_series(rows: Iterable[Mapping[str, Any]], first: date,
                 last: date) -> list[dict[str, Any]]:
    """One bucket per day from ``first`` to ``last`` inclusive, days without orders as zeros,
    so a chart's x axis is time and not just the days something happened."""
    by_day = {str(row["day"])[:10]: row for row in rows}
    series = []
    day = first
    while day <= last:
        row = by_day.get(day.isoformat(), {})
        series.append({"date": day.isoformat(), "orders": int(row.get("orders") or 0),
                       "paid_orders": int(row.get("paid_orders") or 0),
                       "revenue": int(row.get("revenue") or 0)})
        day += timedelta(days=1)
    return series


def id_or_404(value: Any, missing: tuple[str, str] = (OrdersError.ORDER_NOT_FOUND, "No such order.")
              ) -> uuid.UUID:
    """An id from a URL; not a UUID at all is the same 404 as an id that is not there."""
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise ServiceError(*missing, 404) from None
