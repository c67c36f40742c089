"""Changing an account's email: proven by the new inbox, undoable from the old one."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from messaging.contracts import (
    EMAIL_CHANGE_REQUESTED,
    EMAIL_CHANGED,
)
from messaging.contracts.identity import AccountSchema, EmailChangeSchema
from messaging.envelope import utcnow
from messaging.errors import VALIDATION_FAILED, ServiceError, load_or_raise
from messaging.keys import seal
from messaging.outbox import emit
from services.identity import (
    credentials,
)
from services.identity.accounts import (
    STOREFRONT,
    account_payload,
    email_key,
    email_taken,
    ensure_email_free,
    id_or_404,
    issue_one_time,
    revoke_sessions,
    take_attempt,
    usable_token,
)
from services.identity.dependencies import IdentityParts
from services.identity.models import (
    Account,
    OneTimeToken,
)

log = logging.getLogger(__name__)


def request_email_change(parts: IdentityParts, account_id: str, request: dict[str, Any]) -> None:
    """Send a confirmation link to the new address; nothing changes until it is used.

    The answer is the same whether or not the new address already has an account (no
    existence oracle): a taken address gets a notice instead of a link. Requests are
    limited per account and per target address, so this is no mailer for strangers."""
    data = load_or_raise(EmailChangeSchema(), request)
    current_email = credentials.confirm_password(parts, account_id, data["password"], "password")
    if data["new_email"] == current_email:
        raise ServiceError(VALIDATION_FAILED, "That is already your email.", 422,
                           errors={"new_email": ["Same as the current email."]})
    with parts.db.transaction() as session:
        take_attempt(session, [f"email-change:account:{id_or_404(account_id)}",
                                f"email-change:to:{email_key(data['new_email'])}"])
    with parts.db.transaction() as session:
        account = session.get(Account, id_or_404(account_id))
        taken = session.scalar(select(Account.id).where(Account.email == data["new_email"]))
        token_sealed = None
        if not taken:
            token, row = issue_one_time(session, account.id, "email_change")
            row.data = {"new_email": data["new_email"]}
            token_sealed = seal(token)
        emit(session, EMAIL_CHANGE_REQUESTED, {**account_payload(account),
                                               "new_email": data["new_email"],
                                               "token_sealed": token_sealed,
                                               "address_taken": bool(taken)})


def confirm_email_change(parts: IdentityParts, token: str) -> dict[str, Any]:
    """The new address proved itself: switch to it, and give the old one a way back."""
    try:
        with parts.db.transaction() as session:
            row = usable_token(session, "email_change", token)
            row.used_at = utcnow()
            account = session.get(Account, row.account_id)
            new_email, old_email = row.data["new_email"], account.email
            ensure_email_free(session, new_email)
            account.email, account.email_verified = new_email, True
            revert_token, revert = issue_one_time(session, account.id, "email_revert")
            revert.data = {"old_email": old_email, "new_email": new_email}
            emit(session, EMAIL_CHANGED, {**account_payload(account),
                                          "old_email": old_email, "reverted": False,
                                          "revert_token_sealed": seal(revert_token)})
            return AccountSchema().dump(account)
    except IntegrityError:
        raise email_taken() from None


def revert_email_change(parts: IdentityParts, token: str) -> dict[str, Any]:
    """One click from the old address: the email goes back and every session ends (whoever
    changed it is signed out); the owner then resets the password."""
    with parts.db.transaction() as session:
        row = usable_token(session, "email_revert", token)
        row.used_at = utcnow()
        account = session.get(Account, row.account_id)
        old_email, changed_to = row.data["old_email"], account.email
        if account.email != old_email:
            ensure_email_free(session, old_email)
            account.email = old_email
        account.email_verified = True
        revoke_sessions(session, parts.ended, account.id, STOREFRONT, keep=None)
        session.execute(update(OneTimeToken)  # a pending change from the intruder dies too
                        .where(OneTimeToken.account_id == account.id,
                               OneTimeToken.purpose == "email_change",
                               OneTimeToken.used_at.is_(None))
                        .values(superseded_at=utcnow()))
        emit(session, EMAIL_CHANGED, {**account_payload(account), "old_email": changed_to,
                                      "reverted": True, "revert_token_sealed": None})
        return AccountSchema().dump(account)
