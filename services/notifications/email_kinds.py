"""Every email the store sends, in one table: the event it answers and when, who receives it,
the links its templates get, and whether a merchant may switch it off or it still goes to an
address that bounced.

To add a kind: one ``EmailKind`` entry below, and its templates
``templates/<locale>/<name>.subject.j2``, ``.txt.j2`` and ``.html.j2`` in every locale (the
tests render every kind in every locale). If it answers an event the service does not consume
yet, add a one-line handler in service.py calling ``sending.record_events``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from messaging.contracts import (
    ACCOUNT_APPROVED,
    ACCOUNT_INVITED,
    ACCOUNT_REGISTERED,
    EMAIL_CHANGE_REQUESTED,
    EMAIL_CHANGED,
    FULFILLMENT_UPDATED,
    ORDER_ABANDONED,
    ORDER_CANCELED,
    ORDER_PLACED,
    PASSWORD_CHANGED,
    PASSWORD_RESET_REQUESTED,
    PAYMENT_STATUS_CHANGED,
)
from messaging.keys import unseal
from messaging.links import StorefrontLinks

Payload = dict[str, Any]
Links = Callable[[StorefrontLinks, Payload], Payload]


@dataclass(frozen=True)
class EmailKind:
    name: str
    event: str  # the event type it answers
    when: Callable[[Payload], bool]  # on the event's payload (normalised by its contract)
    recipient: Callable[[Payload], str]
    links: Links  # the links (and defaults) the templates get beside the context
    order_context: bool = False  # the templates see the payload as ``order``
    switchable: bool = False  # the merchant may switch it off (order emails)
    sent_to_bouncing: bool = True  # still sent to an address that bounced

    def context(self, payload: Payload) -> Payload:
        """What is stored with the delivery (sealed tokens stay sealed until it is sent)."""
        return {"order": payload} if self.order_context else payload

    def template_context(self, links: StorefrontLinks, context: Payload) -> Payload:
        return {**context, **self.links(links, context)}


def _always(_payload: Payload) -> bool:
    return True


def _to_customer(payload: Payload) -> str:
    return payload["email"]


def _told(payload: Payload) -> bool:
    """An order change the merchant chose to tell the customer about."""
    return bool(payload.get("notify_customer"))


def _opened(sealed: str | None) -> str | None:
    return unseal(sealed) if sealed else None


def _store(context: Payload) -> Payload:
    return {"store_name": context.get("store_name") or "Clientela"}


# links ----------------------------------------------------------------------------------
def _placed_order_links(links: StorefrontLinks, context: Payload) -> Payload:
    order = context["order"]
    token = _opened(order.get("access_token_sealed"))
    order_id = order["order_id"]
    return {
        "order_url": links.order(order_id, token),
        # the order page starts the payment (POST /orders/{id}/payment) when asked to
        "pay_url": links.order(order_id, token, pay=True),
        "account_url": (links.create_account(order_id, token)
                        if token and order.get("offer_account") else None),
        "login_url": links.login() if order.get("account_exists") else None,
    }


def _changed_order_links(links: StorefrontLinks, context: Payload) -> Payload:
    # A guest's order opens with its token; an account's in the account.
    return {"order_url": links.order(context["order_id"],
                                     _opened(context.get("access_token_sealed")))}


def _recovery_links(links: StorefrontLinks, context: Payload) -> Payload:
    return {"recover_url": links.recover(unseal(context["recovery_token_sealed"]))}


def _welcome_links(links: StorefrontLinks, context: Payload) -> Payload:
    token = _opened(context.get("verify_token_sealed"))  # none: the email is proven already
    return {**_store(context), "verify_url": links.verify_email(token) if token else None}


def _sealed_token_link(build: Callable[[StorefrontLinks, str], str], name: str,
                       sealed_field: str = "token_sealed") -> Links:
    def account_links(links: StorefrontLinks, context: Payload) -> Payload:
        return {**_store(context), name: build(links, unseal(context[sealed_field]))}
    return account_links


def _login_links(links: StorefrontLinks, context: Payload) -> Payload:
    return {**_store(context), "login_url": links.login()}


def _forgot_links(links: StorefrontLinks, context: Payload) -> Payload:
    return {**_store(context), "forgot_url": links.forgot_password()}


# the kinds ------------------------------------------------------------------------------
ORDER_CONFIRMATION = "order_confirmation"
ORDER_PAYMENT_LINK = "order_payment_link"  # a manual order the customer has still to pay
PAYMENT_RECEIVED = "payment_received"
PAYMENT_REFUNDED = "payment_refunded"
ORDER_SHIPPED = "order_shipped"
ORDER_DELIVERED = "order_delivered"
ORDER_CANCELED_KIND = "order_canceled"
ORDER_RECOVERY = "order_recovery"  # an abandoned order's recovery link
WELCOME = "welcome"
PASSWORD_RESET = "password_reset"
PASSWORD_CHANGED_KIND = "password_changed"
INVITATION = "invitation"
ACCOUNT_APPROVED_KIND = "account_approved"
EMAIL_CHANGE_CONFIRM = "email_change_confirm"
EMAIL_CHANGE_NOTICE = "email_change_notice"
EMAIL_ADDRESS_IN_USE = "email_address_in_use"  # a change asked for an address with an account


def _order_kind(name: str, event: str, when: Callable[[Payload], bool]) -> EmailKind:
    """An order update: switchable, not sent to a bouncing address."""
    return EmailKind(name, event, when=lambda p: _told(p) and when(p), recipient=_to_customer,
                     links=_changed_order_links, switchable=True, sent_to_bouncing=False)


KINDS: tuple[EmailKind, ...] = (
    # The one email a shopper waits for: sent even to an address that bounced before (they
    # may have fixed their mailbox).
    EmailKind(ORDER_CONFIRMATION, ORDER_PLACED,
              when=lambda p: p.get("notify_customer", True) and not p.get("payment_link"),
              recipient=_to_customer, links=_placed_order_links, order_context=True,
              switchable=True),
    _order_kind(PAYMENT_RECEIVED, PAYMENT_STATUS_CHANGED, lambda p: p["to"] == "paid"),
    _order_kind(PAYMENT_REFUNDED, PAYMENT_STATUS_CHANGED,
                lambda p: p["to"] in ("refunded", "partially_refunded")),
    _order_kind(ORDER_SHIPPED, FULFILLMENT_UPDATED, lambda p: p["to"] == "in_transit"),
    _order_kind(ORDER_DELIVERED, FULFILLMENT_UPDATED, lambda p: p["to"] == "delivered"),
    _order_kind(ORDER_CANCELED_KIND, ORDER_CANCELED, _always),
    EmailKind(ORDER_RECOVERY, ORDER_ABANDONED, when=_told, recipient=_to_customer,
              links=_recovery_links, switchable=True, sent_to_bouncing=False),
    EmailKind(ORDER_PAYMENT_LINK, ORDER_PLACED,
              when=lambda p: p.get("notify_customer", True) and bool(p.get("payment_link")),
              recipient=_to_customer, links=_placed_order_links, order_context=True,
              switchable=True, sent_to_bouncing=False),
    # Account and security emails always go: a store cannot switch off a password reset.
    EmailKind(WELCOME, ACCOUNT_REGISTERED, when=_always, recipient=_to_customer,
              links=_welcome_links),
    EmailKind(PASSWORD_RESET, PASSWORD_RESET_REQUESTED, when=_always, recipient=_to_customer,
              links=_sealed_token_link(StorefrontLinks.reset_password, "reset_url")),
    EmailKind(PASSWORD_CHANGED_KIND, PASSWORD_CHANGED, when=_always, recipient=_to_customer,
              links=_forgot_links),
    EmailKind(INVITATION, ACCOUNT_INVITED, when=_always, recipient=_to_customer,
              links=_sealed_token_link(StorefrontLinks.activate, "activate_url")),
    EmailKind(ACCOUNT_APPROVED_KIND, ACCOUNT_APPROVED, when=_always, recipient=_to_customer,
              links=_login_links),
    # A change to an address that has an account gets a notice, never a link: its owner
    # learns someone tried.
    EmailKind(EMAIL_ADDRESS_IN_USE, EMAIL_CHANGE_REQUESTED,
              when=lambda p: bool(p.get("address_taken")),
              recipient=lambda p: p["new_email"], links=_login_links),
    EmailKind(EMAIL_CHANGE_CONFIRM, EMAIL_CHANGE_REQUESTED,
              when=lambda p: not p.get("address_taken"), recipient=lambda p: p["new_email"],
              links=_sealed_token_link(StorefrontLinks.confirm_email, "confirm_url")),
    # The old address may undo the change (not sent when the change was an undo).
    EmailKind(EMAIL_CHANGE_NOTICE, EMAIL_CHANGED, when=lambda p: not p.get("reverted"),
              recipient=lambda p: p["old_email"],
              links=_sealed_token_link(StorefrontLinks.revert_email, "revert_url",
                                       "revert_token_sealed")),
)

BY_NAME: Mapping[str, EmailKind] = {kind.name: kind for kind in KINDS}
SWITCHABLE: tuple[str, ...] = tuple(kind.name for kind in KINDS if kind.switchable)
ANSWERED_EVENTS: frozenset[str] = frozenset(kind.event for kind in KINDS)


def kind_for(event_type: str, payload: Payload) -> EmailKind | None:
    """The email an event asks for, if any (at most one per event)."""
    for kind in KINDS:
        if kind.event == event_type and kind.when(payload):
            return kind
    return None


def catalogue() -> list[dict[str, Any]]:
    """The kinds as the admin shows them: name, the event, whether it can be switched off."""
    return [{"kind": kind.name, "event": kind.event, "switchable": kind.switchable}
            for kind in KINDS]
