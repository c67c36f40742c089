"""Pure notification rules: a delivery's identity, when to retry, how a failure is
classified."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

# Which emails there are, what each answers and who gets it: email_kinds.py.

# Namespace for delivery ids derived from events (uuid5), fixed forever.
DELIVERY_NAMESPACE = uuid.UUID("6f0f5d8e-6a43-4c57-9a55-3c2f1c0b7d21")

DEFAULT_MAIL_RETRY_DELAYS_S = (5, 30, 120, 600, 1800, 3600)


def delivery_id(event_id: str, kind: str, recipient: str) -> uuid.UUID:
    return uuid.uuid5(DELIVERY_NAMESPACE, f"{event_id}:{kind}:{recipient}")


def mail_retry_delays() -> tuple[float, ...]:
    """The default schedule (the store's own: NotificationsConfig.mail_retry_delays_s)."""
    return DEFAULT_MAIL_RETRY_DELAYS_S


class TransientMailError(Exception):
    """The mail server may accept it later (4xx, connection refused, timeout)."""


class PermanentMailError(Exception):
    """The mail server will never accept it (5xx): do not retry."""


class RecipientBounced(PermanentMailError):
    """The server refused the recipient for good (5xx on RCPT): the address bounces."""



def next_attempt(attempts: int, now: datetime,
                 delays: tuple[float, ...] = DEFAULT_MAIL_RETRY_DELAYS_S) -> datetime | None:
    """When to try again after ``attempts`` failed tries; None once the retries are spent."""
    if attempts > len(delays):
        return None
    return now + timedelta(seconds=delays[attempts - 1])


def one_line(value: str) -> str:
    """Header values never carry CR/LF: a name cannot inject headers."""
    return " ".join(str(value).split())

