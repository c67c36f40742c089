"""Pure customer rules."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from messaging.contracts import (
    LIVE_ORDER_STATUSES,
    MONEY_KEPT_PAYMENT_STATUSES,
    PAYMENT_PROGRESS,
    erased_email,
)
from messaging.contracts.customers import (  # noqa: F401 (the API's values; the rules use them)
    ACCOUNT_STATUSES,
    SORTS,
)


def normalise_email(email: str) -> str:
    """One customer per email: trimmed and lower-cased (as stores treat addresses in practice)."""
    return email.strip().lower()


def apply_order_placed(customer: Any, order: dict[str, Any]) -> None:
    """Fold one placed order into a customer's dates, last order and details (the counts and
    spend are computed from the customer's orders: see COUNTED_STATUSES)."""
    placed_at: datetime = order["placed_at"]
    if customer.first_order_at is None or placed_at < customer.first_order_at:
        customer.first_order_at = placed_at
    if customer.last_order_at is None or placed_at >= customer.last_order_at:
        customer.last_order_at = placed_at
        customer.last_order_status = order["status"]
        customer.last_payment_method = order.get("payment_method")
        address = order.get("shipping_address")
        if address:
            customer.country = address["country"]
            customer.city = address["city"]
        billing = order.get("billing_address")
        if billing:
            customer.billing_country = billing["country"]
            customer.tax_id = billing.get("tax_id")
    address = order.get("shipping_address") or {}
    if not customer.first_name and address.get("first_name"):
        customer.first_name = address["first_name"]
        customer.last_name = address.get("last_name")
    if not customer.phone and address.get("phone"):
        customer.phone = address["phone"]
    if not customer.locale:
        customer.locale = order.get("locale")


def link_account(customer: Any, account: dict[str, Any]) -> None:
    """Make a customer record registered under ``account`` (names only fill blanks)."""
    customer.account_id = account["account_id"]
    customer.type = "registered"
    customer.first_name = customer.first_name or account.get("first_name")
    customer.last_name = customer.last_name or account.get("last_name")
    customer.locale = customer.locale or account.get("locale")


def mirror_account_status(customer: Any, status: str | None, reported_at: datetime) -> None:
    """Keep identity's view of the account's status, newest report wins."""
    if status is None or customer.account_id is None:
        return
    if customer.account_status_at is None or reported_at >= customer.account_status_at:
        customer.account_status = status
        customer.account_status_at = reported_at


MAX_ADDRESSES = 100
ADDRESS_FIELDS = ("first_name", "last_name", "company", "line1", "line2", "city", "region",
                  "postal_code", "country", "phone", "tax_id")


def apply_defaults(addresses: list[Any], chosen: Any, default_shipping: bool | None,
                   default_billing: bool | None) -> None:
    """Make ``chosen`` the default for what was asked, and no other address; the first
    address a customer adds is both defaults."""
    if len(addresses) == 1:
        default_shipping = True if default_shipping is None else default_shipping
        default_billing = True if default_billing is None else default_billing
    for flag, wanted in (("default_shipping", default_shipping),
                         ("default_billing", default_billing)):
        if wanted is None:
            continue
        if wanted:
            for address in addresses:
                setattr(address, flag, address is chosen)
        else:
            setattr(chosen, flag, False)


def set_marketing_consent(customer: Any, accepts: bool, now: datetime) -> None:
    """Record consent given or withdrawn, with when: a change only when it changes."""
    if bool(customer.accepts_marketing) == accepts:
        return
    customer.accepts_marketing = accepts
    if accepts:
        customer.marketing_consent_at = now
    else:
        customer.marketing_withdrawn_at = now


def anonymise(customer: Any, now: datetime) -> None:
    """Strip a record of everything that identifies the person. Kept: the id, the type, the
    order figures (the store's own numbers) and the country (too coarse to identify)."""
    customer.email = erased_email(customer.id)
    # The account link goes too: a still-valid access token then reaches nothing here.
    for field in ("first_name", "last_name", "phone", "city", "note", "last_seen_at",
                  "marketing_consent_at", "marketing_withdrawn_at", "last_payment_method",
                  "account_id", "account_status", "account_status_at", "tax_id"):
        setattr(customer, field, None)
    customer.accepts_marketing = False
    customer.erased_at = now


def encode_cursor(sort: str, value: Any, last_id: str, total: int) -> str:
    """An opaque keyset cursor: where the previous page ended, for this sort, and the total
    the first page counted (later pages do not count again: the total is as of page one)."""
    raw = json.dumps({"s": sort, "v": value, "i": last_id, "t": total}, default=str)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[Any, str, int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if data["s"] != sort:
            raise ValueError("cursor from another sort")
        return data["v"], str(data["i"]), int(data["t"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError("invalid cursor") from exc


# Orders that count for a customer: live ones (not canceled or abandoned), as the orders
# contract says. Spend: what was paid, less what was refunded. The payment machine only
# moves forward: an event that arrives late (retried behind a newer one) must not move a
# payment back.
COUNTED_STATUSES = LIVE_ORDER_STATUSES
SPENT_PAYMENT_STATUSES = MONEY_KEPT_PAYMENT_STATUSES


def apply_payment_change(row: Any, to: str, refunded_total: int) -> None:
    """A payment status change, in whatever order the events come: the furthest state and
    the largest refunded amount win."""
    rank = {state: index for index, state in enumerate(PAYMENT_PROGRESS)}
    if rank.get(to, -1) >= rank.get(row.payment_status, -1):
        row.payment_status = to
    row.refunded = max(row.refunded or 0, refunded_total or 0)
