"""Passwords: forgotten (a reset link), changed, and proven for the actions that need it."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from messaging.contracts import (
    PASSWORD_CHANGED,
    PASSWORD_RESET_REQUESTED,
)
from messaging.contracts.identity import ChangePasswordSchema, IdentityError, ResetPasswordSchema
from messaging.envelope import utcnow
from messaging.errors import VALIDATION_FAILED, ServiceError, load_or_raise
from messaging.keys import new_token, seal
from messaging.outbox import emit
from services.identity import (
    domain,
    store_settings,
)
from services.identity.accounts import (
    STOREFRONT,
    account_payload,
    check_password,
    clear_failures,
    id_or_404,
    id_or_none,
    issue_one_time,
    mark_verified,
    revoke_sessions,
    throttle_keys,
    usable_token,
)
from services.identity.dependencies import IdentityParts
from services.identity.models import (
    Account,
)

log = logging.getLogger(__name__)


def request_password_reset(parts: IdentityParts, email: str) -> None:
    """Email a reset link if the account exists; say nothing either way."""
    email = domain.normalise_email(str(email))[:254]
    token, _ = new_token()  # made either way: the same work for unknown emails
    with parts.db.transaction() as session:
        account = session.scalars(select(Account).where(Account.email == email)).first()
        if account is None or account.status not in domain.CAN_LOG_IN:
            return
        _, row = issue_one_time(session, account.id, "password_reset", token=token)
        emit(session, PASSWORD_RESET_REQUESTED, {
            **account_payload(account), "token_sealed": seal(token),
            "expires_at": row.expires_at,
        })


def reset_password(parts: IdentityParts, request: dict[str, Any]) -> None:
    data = load_or_raise(ResetPasswordSchema(), request)
    new_hash = hash_for_link(parts, "password_reset", data["token"], data["password"])
    with parts.db.transaction() as session:
        row = usable_token(session, "password_reset", data["token"])  # a racing reset?
        now = utcnow()
        row.used_at = now
        account = session.get(Account, row.account_id)
        account.password_hash, account.password_changed_at = new_hash, now
        revoke_sessions(session, parts.ended, account.id, STOREFRONT, keep=None)
        # The owner proved the inbox: a reset lifts any login lock on the account.
        clear_failures(session, throttle_keys("customer", account.email, None))
        mark_verified(session, account)  # the link reached that inbox: the email is proven
        emit(session, PASSWORD_CHANGED, {**account_payload(account), "reason": "reset"})


def change_password(parts: IdentityParts, account_id: str, request: dict[str, Any],
                    current_session: str | None) -> None:
    data = load_or_raise(ChangePasswordSchema(), request)
    email = confirm_password(parts, account_id, data["current_password"],
                                   "current_password")
    check_password(data["new_password"], email, store_settings.get_store_settings(parts),
                    field="new_password")
    new_hash = parts.passwords.hash(data["new_password"])
    with parts.db.transaction() as session:
        account = session.get(Account, id_or_404(account_id))
        account.password_hash, account.password_changed_at = new_hash, utcnow()
        revoke_sessions(session, parts.ended, account.id, STOREFRONT,
                         keep=id_or_none(current_session))
        emit(session, PASSWORD_CHANGED, {**account_payload(account), "reason": "change"})


def hash_for_link(parts: IdentityParts, purpose: str, token: str, password: str) -> str:
    """The new password's hash, once the link (one-time token) is usable and the password
    meets the policy for its account's email. Hashed outside any transaction; the caller
    takes the token again, locked, to spend it."""
    with parts.db.transaction() as session:
        row = usable_token(session, purpose, token, lock=False)
        email = session.get(Account, row.account_id).email
    check_password(password, email, store_settings.get_store_settings(parts))
    return parts.passwords.hash(password)


def confirm_password(parts: IdentityParts, account_id: str, password: str, field: str) -> str:
    """The account's email, once ``password`` is its password (else 422 on ``field``):
    what a logged-in customer proves before changing a password or an email."""
    with parts.db.transaction() as session:
        account = session.get(Account, id_or_404(account_id))
        if account is None:
            raise ServiceError(IdentityError.ACCOUNT_NOT_FOUND, "No such account.", 404)
        current_hash, email = account.password_hash, account.email
    # Verified outside any transaction: hashing takes tens of milliseconds.
    if not parts.passwords.verify(current_hash, password):
        raise ServiceError(VALIDATION_FAILED, "The password is wrong.", 422,
                           errors={field: ["Wrong password."]})
    return email
