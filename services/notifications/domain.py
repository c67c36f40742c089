"""Pure notification rules: which email, when to retry, how a failure is classified."""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta

ORDER_CONFIRMATION = "order_confirmation"
WELCOME = "welcome"
PASSWORD_RESET = "password_reset"
PASSWORD_CHANGED = "password_changed"
INVITATION = "invitation"
ACCOUNT_APPROVED = "account_approved"
EMAIL_CHANGE_CONFIRM = "email_change_confirm"
EMAIL_CHANGE_NOTICE = "email_change_notice"
EMAIL_ADDRESS_IN_USE = "email_address_in_use"  # a change asked for an address with an account
PAYMENT_RECEIVED = "payment_received"
PAYMENT_REFUNDED = "payment_refunded"
ORDER_SHIPPED = "order_shipped"
ORDER_DELIVERED = "order_delivered"
ORDER_CANCELED = "order_canceled"
ORDER_RECOVERY = "order_recovery"  # an abandoned order's recovery link
ORDER_PAYMENT_LINK = "order_payment_link"  # a manual order the customer has still to pay

# Account and security emails always go: a store cannot switch off a password reset.
ALWAYS_SENT = frozenset({WELCOME, PASSWORD_RESET, PASSWORD_CHANGED, INVITATION,
                         ACCOUNT_APPROVED, EMAIL_CHANGE_CONFIRM, EMAIL_CHANGE_NOTICE,
                         EMAIL_ADDRESS_IN_USE})
# What still goes to an address that bounced: account and security emails, and the order
# confirmation (the one email a shopper waits for; they may have fixed their mailbox).
SENT_TO_BOUNCING = ALWAYS_SENT | {ORDER_CONFIRMATION}
SWITCHABLE = (ORDER_CONFIRMATION, PAYMENT_RECEIVED, PAYMENT_REFUNDED, ORDER_SHIPPED,
              ORDER_DELIVERED, ORDER_CANCELED, ORDER_RECOVERY, ORDER_PAYMENT_LINK)

# Namespace for delivery ids derived from events (uuid5), fixed forever.
DELIVERY_NAMESPACE = uuid.UUID("6f0f5d8e-6a43-4c57-9a55-3c2f1c0b7d21")

DEFAULT_MAIL_RETRY_DELAYS_S = (5, 30, 120, 600, 1800, 3600)


def delivery_id(event_id: str, kind: str, recipient: str) -> uuid.UUID:
    return uuid.uuid5(DELIVERY_NAMESPACE, f"{event_id}:{kind}:{recipient}")


def mail_retry_delays() -> tuple[float, ...]:
    raw = os.environ.get("MAIL_RETRY_DELAYS_S")
    if not raw:
        return DEFAULT_MAIL_RETRY_DELAYS_S
    return tuple(float(part) for part in raw.split(",") if part.strip())


class TransientMailError(Exception):
    """The mail server may accept it later (4xx, connection refused, timeout)."""


class PermanentMailError(Exception):
    """The mail server will never accept it (5xx): do not retry."""


class RecipientBounced(PermanentMailError):
    """The server refused the recipient for good (5xx on RCPT): the address bounces."""



def next_attempt(attempts: int, now: datetime) -> datetime | None:
    """When to try again after ``attempts`` failed tries; None once the retries are spent."""
    delays = mail_retry_delays()
    if attempts > len(delays):
        return None
    return now + timedelta(seconds=delays[attempts - 1])


def one_line(value: str) -> str:
    """Header values never carry CR/LF: a name cannot inject headers."""
    return " ".join(str(value).split())

