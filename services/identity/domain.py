"""Pure identity rules: settings, the password policy, tokens and their lifetimes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from messaging.contracts import PAYMENT_METHODS, erased_email
from messaging.contracts.identity import (  # noqa: F401 (the API's values; the rules use them)
    CUSTOMER_ACCOUNT_MODES,
    PASSWORD_MAX_LENGTH,
    PRICES_VISIBLE,
    STAFF_ROLES,
)
from messaging.fields import normalise_email_address

DEFAULT_SETTINGS: dict[str, Any] = {
    "customer_accounts": "disabled",
    "require_approval": False,
    "password_min_length": 8,
    "password_min_classes": 0,
    "locale": "es",
    "currency": "EUR",
    "store_name": "Clientela Store",
    "timezone": "Europe/Madrid",
    "store_address": [],
    "reply_to": None,
    "payment_methods": list(PAYMENT_METHODS),
    "bank_transfer_instructions": None,
    "prices_visible": "everyone",
}


def settings_problem(settings: dict[str, Any]) -> dict[str, list[str]] | None:
    """Settings that cannot hold together: prices for logged-in customers only need a store
    where customers can log in."""
    if settings.get("prices_visible") == "logged_in" \
            and settings.get("customer_accounts") == "disabled":
        return {"prices_visible": ["logged_in needs customer accounts (optional or required)"]}
    return None

# Account statuses, and which of them may log in.
ACTIVE, PENDING_APPROVAL, INVITED, DISABLED = "active", "pending_approval", "invited", "disabled"
ERASED = "erased"  # the merchant erased the person: the row stays, anonymous, locked for good
CAN_LOG_IN = frozenset({ACTIVE, PENDING_APPROVAL})

ACCESS_TOKEN_TTL = timedelta(minutes=15)
REFRESH_TOKEN_TTL = timedelta(days=30)
# Staff actions on an account: (statuses it applies to, resulting status).
STATUS_ACTIONS = {
    "approve": (frozenset({PENDING_APPROVAL}), ACTIVE),
    "disable": (frozenset({ACTIVE, PENDING_APPROVAL, INVITED}), DISABLED),
    "enable": (frozenset({DISABLED}), ACTIVE),
}

TOKEN_TTLS = {
    "password_reset": timedelta(hours=1),
    "verify_email": timedelta(days=7),
    "invitation": timedelta(days=7),
    "email_change": timedelta(hours=24),
    "email_revert": timedelta(days=7),
}


def diff_settings(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, list[Any]]:
    """{field: [old, new]} for the fields that really change."""
    return {
        field: [current[field], value]
        for field, value in changes.items()
        if current.get(field) != value
    }


def normalise_email(email: str) -> str:
    """The spelling accounts are stored under (an IDN domain in punycode); text that is no
    email at all is only trimmed and lowered, so a login with it simply finds no account."""
    try:
        return normalise_email_address(email)
    except ValueError:
        return email.strip().lower()


def status_at_registration(settings: dict[str, Any]) -> str:
    if settings["customer_accounts"] == "required" and settings["require_approval"]:
        return PENDING_APPROVAL
    return ACTIVE


@cache
def _common_passwords() -> frozenset[str]:
    # zxcvbn ships the 30,000 most common passwords from real breaches.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def character_classes(password: str) -> int:
    """How many of: lower case, upper case, digits, anything else (symbols, spaces, ...)."""
    return sum([
        any(c.islower() for c in password),
        any(c.isupper() for c in password),
        any(c.isdigit() for c in password),
        any(not c.isalnum() for c in password),
    ])


def password_problems(password: str, email: str, min_length: int, min_classes: int = 0
                      ) -> list[str]:
    """Why a password is refused (empty: accepted). Length counts characters, not bytes, and
    nothing is truncated: a 64-character Unicode passphrase is used whole."""
    problems = []
    if min_classes and character_classes(password) < min_classes:
        problems.append(f"Mix at least {min_classes} of: lower case, upper case, digits, "
                        "symbols.")
    if len(password) < min_length:
        problems.append(f"Use at least {min_length} characters.")
    if len(password) > PASSWORD_MAX_LENGTH:
        problems.append(f"Use at most {PASSWORD_MAX_LENGTH} characters.")
    lowered = password.lower()
    if lowered in _common_passwords():
        problems.append("This password is too common; choose another.")
    local_part = normalise_email(email).split("@")[0]
    if len(local_part) >= 3 and local_part in lowered:
        problems.append(f'The password must not contain "{local_part}" (the first part of '
                        "your email address).")
    return problems


@dataclass(frozen=True)
class RefreshVerdict:
    ok: bool
    revoke_family: bool = False
    reason: str = ""


def judge_refresh(token: Any, now: datetime) -> RefreshVerdict:
    """Whether a presented refresh token (row, or None) may be rotated."""
    if token is None:
        return RefreshVerdict(False, reason="unknown")
    if token.revoked_at is not None:
        return RefreshVerdict(False, reason="revoked")
    if token.used_at is not None:
        # Someone presents a token that was already rotated: it was stolen, or the legitimate
        # client is replaying it. Either way, end that login everywhere.
        return RefreshVerdict(False, revoke_family=True, reason="reused")
    if token.expires_at <= now:
        return RefreshVerdict(False, reason="expired")
    return RefreshVerdict(True)


@dataclass(frozen=True)
class ThrottlePolicy:
    """Failures allowed before delays start, and how delays grow (doubling, capped)."""

    free_failures: int
    first_delay: timedelta
    max_delay: timedelta
    forget_after: timedelta = timedelta(minutes=15)

    def delay_after(self, failures: int) -> timedelta | None:
        if failures < self.free_failures:
            return None
        doublings = min(failures - self.free_failures, 20)
        return min(self.first_delay * (2**doublings), self.max_delay)


# An account: 5 tries, then 1 s, 2 s, 4 s ... up to 15 min. An address (shared by many people
# behind one NAT): 20 tries, then the same growth.
ACCOUNT_THROTTLE = ThrottlePolicy(5, timedelta(seconds=1), timedelta(minutes=15))
ADDRESS_THROTTLE = ThrottlePolicy(20, timedelta(seconds=1), timedelta(minutes=15))
# Email-change requests, per account and per target address: 3 a day, then an hour's wait
# that doubles. Each request mails an address nobody has proven yet.
EMAIL_CHANGE_THROTTLE = ThrottlePolicy(3, timedelta(hours=1), timedelta(hours=24),
                                       forget_after=timedelta(hours=24))


def status_after(action: str, current: str) -> str | None:
    """The status an action leads to; None if it changes nothing (already there).

    Raises ValueError naming the statuses the action applies to when it does not apply.
    """
    applies_to, result = STATUS_ACTIONS[action]
    if current == result:
        return None
    if current not in applies_to:
        raise ValueError(f"cannot {action} an account that is {current}; "
                         f"only {', '.join(sorted(applies_to))}")
    return result


def anonymise_account(account: Any) -> None:
    """An erased account: no email, no name, no password; it can never log in again."""
    account.email = erased_email(account.id)
    account.password_hash = None
    account.status = ERASED
    account.email_verified = False
    account.first_name = account.last_name = None
    account.last_login_at = None
