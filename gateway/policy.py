"""The store's checkout login policy, in one place (DESIGN.md §6).

| setting  | login/register            | guest checkout        | account checkout          |
| disabled | no: 403 accounts_disabled | yes                   | no                        |
| optional | yes                       | yes, offer an account | yes                       |
| required | yes                       | no: 401 login_required| approved only (403 else)  |

Whatever the setting, what belongs to an account needs one: a saved cart (401
login_required), the address book at checkout (422, address ids or save_address); the account
offered after a guest checkout is taken only while the store is `optional` (403
account_offer_unavailable).

Prices (DESIGN §9), on top of the above:

| prices_visible / price_display | anonymous, guest              | logged-in customer          |
| everyone                       | catalogue prices; may buy     | their prices; may buy       |
| logged_in                      | price null; checkout 401      | their prices; may buy       |
| a category `hidden`            | (not a member)                | price null; checkout 403    |
|                                |                               | prices_hidden (orders says) |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.problems import Problem
from messaging.contracts import MANUAL_PAYMENT_METHODS, PAYMENT_METHODS

DISABLED, OPTIONAL, REQUIRED = "disabled", "optional", "required"


@dataclass(frozen=True)
class CheckoutDecision:
    as_guest: bool
    offer_account: bool  # the confirmation offers an account (activation link)


def ensure_accounts_offered(mode: str) -> None:
    """Register and log in exist only when the store shows accounts."""
    if mode == DISABLED:
        raise Problem(403, "accounts_disabled", "This store does not offer customer accounts.")


def checkout_decision(mode: str, *, logged_in: bool, account_status: str | None = None
                      ) -> CheckoutDecision:
    if mode == DISABLED:
        if logged_in:
            raise Problem(403, "accounts_disabled",
                          "This store does not offer customer accounts; check out as a guest.")
        return CheckoutDecision(as_guest=True, offer_account=False)
    if mode == OPTIONAL:
        if logged_in:
            _ensure_active(account_status)
            return CheckoutDecision(as_guest=False, offer_account=False)
        return CheckoutDecision(as_guest=True, offer_account=True)
    if mode == REQUIRED:
        if not logged_in:
            raise Problem(401, "login_required", "Log in to check out in this store.",
                          headers={"WWW-Authenticate": "Bearer"})
        _ensure_active(account_status)
        return CheckoutDecision(as_guest=False, offer_account=False)
    raise ValueError(f"unknown customer_accounts mode {mode!r}")


def ensure_saved_cart_allowed(logged_in: bool) -> None:
    """Checking out the saved cart: it is an account's."""
    if not logged_in:
        raise Problem(401, "login_required", "Log in to check out your saved cart.")


def ensure_address_book_allowed(logged_in: bool, field: str) -> None:
    """A saved address at checkout (``field``: shipping_address_id, billing_address_id or
    save_address): the address book is an account's."""
    if not logged_in:
        raise Problem(422, "validation_failed", "Saved addresses need a logged-in customer.",
                      errors={field: ["Log in to use the address book."]})


def ensure_account_offer_open(mode: str) -> None:
    """The account offered after a guest checkout exists only in an `optional` store."""
    if mode != OPTIONAL:
        raise Problem(403, "account_offer_unavailable",
                      "This store does not offer accounts after checkout.")


def _ensure_active(account_status: str | None) -> None:
    if account_status == "disabled":
        raise Problem(403, "account_disabled", "This account has been disabled.")
    if account_status != "active":
        raise Problem(403, "account_not_approved",
                      "Your account is not approved for checkout yet.")


# Payment methods (DESIGN §9): the store enables some; checkout and manual orders take only
# those, and a manual method carries the store's instructions (bank transfer details).
def offered_payment_methods(settings: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"method": method,
             "kind": "manual" if method in MANUAL_PAYMENT_METHODS else "provider",
             "instructions": settings.get("bank_transfer_instructions")
             if method == "bank_transfer" else None}
            for method in settings.get("payment_methods") or PAYMENT_METHODS]


def chosen_payment_method(settings: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The order's method (the store's first when none is sent) with its instructions; 422
    for a method the store does not take."""
    offered = offered_payment_methods(settings)
    method = body.get("payment_method", offered[0]["method"])
    for entry in offered:
        if entry["method"] == method:
            return entry
    raise Problem(422, "payment_method_unavailable", "This store does not take that payment "
                  "method.", errors={"payment_method": [
                      "One of: " + ", ".join(entry["method"] for entry in offered) + "."]})


EVERYONE, LOGGED_IN = "everyone", "logged_in"


def prices_shown(settings: dict[str, Any], logged_in: bool) -> bool:
    """Whether this caller sees prices at all (a member's hidden category is orders' rule)."""
    return settings.get("prices_visible", EVERYONE) != LOGGED_IN or logged_in


def ensure_prices_for_guest(settings: dict[str, Any], logged_in: bool) -> None:
    """A store that shows prices to logged-in customers only sells only to them."""
    if not prices_shown(settings, logged_in):
        raise Problem(401, "login_required", "Log in to see prices and buy in this store.",
                      headers={"WWW-Authenticate": "Bearer"})
