"""Accounts' shared pieces: lookups, one-time tokens, the login throttle, ending sessions,
and the answers every identity use case gives."""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from messaging.contracts import (
    ACCOUNT_EMAIL_VERIFIED,
)
from messaging.contracts.identity import IdentityError
from messaging.database import locked_row
from messaging.envelope import utcnow
from messaging.errors import VALIDATION_FAILED, ServiceError
from messaging.keys import hash_token, new_token
from messaging.outbox import emit
from services.identity import domain
from services.identity.dependencies import EndedSessions
from services.identity.models import (
    Account,
    LoginThrottle,
    OneTimeToken,
    RefreshToken,
    StoreSettings,
)

log = logging.getLogger(__name__)


STOREFRONT, ADMIN = "storefront", "admin"
INVALID_CREDENTIALS = ServiceError(IdentityError.INVALID_CREDENTIALS,
                                   "The email or password is wrong.", 401)
INVALID_LINK = ServiceError(IdentityError.INVALID_TOKEN,
                            "This link is invalid, used or expired.", 400)
INVALID_REFRESH = ServiceError(IdentityError.INVALID_REFRESH_TOKEN, "Log in again.", 401)


def settings_row(session: Session, lock: bool = False) -> StoreSettings:
    # The migration inserts row 1; creating it here only covers a hand-emptied table.
    row = session.get(StoreSettings, 1, with_for_update=lock)
    if row is None:
        row = StoreSettings(id=1, **domain.DEFAULT_SETTINGS)
        session.add(row)
        session.flush()
    return row


def check_password(password: str, email: str, settings: dict[str, Any],
                    field: str = "password") -> None:
    problems = domain.password_problems(password, email, settings["password_min_length"],
                                        settings.get("password_min_classes", 0))
    if problems:
        raise ServiceError(VALIDATION_FAILED, "Choose a stronger password.", 422,
                           errors={field: problems})


def account_payload(account: Account) -> dict[str, Any]:
    """What every account email needs: who, in which language, from which store."""
    session = Session.object_session(account)
    store_name = settings_row(session).store_name if session else ""
    return {"account_id": account.id, "email": account.email, "locale": account.locale,
            "first_name": account.first_name, "last_name": account.last_name,
            "store_name": store_name, "status": account.status}


def mark_verified(session: Session, account: Account) -> None:
    if not account.email_verified:
        account.email_verified = True
        emit(session, ACCOUNT_EMAIL_VERIFIED, account_payload(account))


def issue_one_time(session: Session, account_id: uuid.UUID, purpose: str,
                    token: str | None = None) -> tuple[str, OneTimeToken]:
    """A new single-use token; any older unused one for the same purpose stops working."""
    now = utcnow()
    session.execute(
        update(OneTimeToken)
        .where(OneTimeToken.account_id == account_id, OneTimeToken.purpose == purpose,
               OneTimeToken.used_at.is_(None), OneTimeToken.superseded_at.is_(None))
        .values(superseded_at=now)
    )
    if token is None:
        token, token_hash = new_token()
    else:
        token_hash = hash_token(token)
    row = OneTimeToken(purpose=purpose, account_id=account_id, token_hash=token_hash,
                       created_at=now, expires_at=now + domain.TOKEN_TTLS[purpose])
    session.add(row)
    session.flush()
    return token, row


def usable_token(session: Session, purpose: str, token: str, lock: bool = True) -> OneTimeToken:
    query = select(OneTimeToken).where(OneTimeToken.token_hash == hash_token(str(token)),
                                       OneTimeToken.purpose == purpose)
    row = session.scalars(query.with_for_update() if lock else query).first()
    if (row is None or row.used_at is not None or row.superseded_at is not None
            or row.expires_at <= utcnow()):
        raise INVALID_LINK
    return row


def email_taken() -> ServiceError:
    return ServiceError(IdentityError.EMAIL_TAKEN, "Another account uses this email.", 409)


def ensure_email_free(session: Session, email: str) -> None:
    if session.scalar(select(Account.id).where(Account.email == email)):
        raise email_taken()


def ensure_no_account(session: Session, email: str) -> None:
    if session.scalar(select(Account.id).where(Account.email == email)):
        raise ServiceError(IdentityError.ACCOUNT_EXISTS,
                           "This email already has an account: log in.", 409)


def throttle_keys(kind: str, email: str, client: dict[str, Any] | None) -> list[str]:
    """[account key, address key]: failures count against both. The email is hashed: the
    table records attempts, and must not become a list of addresses people tried."""
    keys = [f"{kind}:{email_key(email)}"]
    ip = (client or {}).get("ip")
    if ip:
        keys.append(f"ip:{ip}"[:300])
    return keys


def email_key(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def _policy_for(key: str) -> domain.ThrottlePolicy:
    if key.startswith("email-change:"):
        return domain.EMAIL_CHANGE_THROTTLE
    return domain.ADDRESS_THROTTLE if key.startswith("ip:") else domain.ACCOUNT_THROTTLE


def take_attempt(session: Session, keys: list[str]) -> None:
    """Refuse (429) if any key is locked; else count this attempt as a failure on every key,
    locking the key when the count earns it. Keys are locked in one order: no deadlocks."""
    now = utcnow()
    rows = [(_policy_for(key), locked_row(session, LoginThrottle, key, key=key, failures=0,
                                          last_failure_at=now, locked_until=None))
            for key in sorted(keys)]
    locked = [row.locked_until for _, row in rows if row.locked_until and row.locked_until > now]
    if locked:
        wait = max(1, int((max(locked) - now).total_seconds() + 0.999))
        raise ServiceError(IdentityError.TOO_MANY_ATTEMPTS,
                           "Too many failed logins. Wait, or reset your password.", 429,
                           extra={"retry_after": wait})
    for policy, row in rows:
        if now - row.last_failure_at > policy.forget_after:
            row.failures = 0
        row.failures += 1
        row.last_failure_at = now
        delay = policy.delay_after(row.failures)
        row.locked_until = now + delay if delay else None


def give_back_attempt(session: Session, keys: list[str]) -> None:
    """A login that succeeded was counted as a failure in advance: take it back."""
    for key in keys:
        row = session.get(LoginThrottle, key, with_for_update=True)
        if row is not None and row.failures > 0:
            row.failures -= 1
            delay = _policy_for(key).delay_after(row.failures)
            row.locked_until = row.last_failure_at + delay if delay else None


def clear_failures(session: Session, keys: list[str]) -> None:
    session.execute(delete(LoginThrottle).where(LoginThrottle.key.in_(keys)))


def revoke_family(session: Session, ended: EndedSessions, family_id: uuid.UUID) -> None:
    session.execute(update(RefreshToken)
                    .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
                    .values(revoked_at=utcnow()))
    ended.announce([family_id])


def revoke_sessions(session: Session, ended: EndedSessions, subject_id: uuid.UUID,
                     audience: str | None, keep: uuid.UUID | None,
                     only: uuid.UUID | None = None) -> list[uuid.UUID]:
    """End the subject's live sessions (of one audience or all; all but ``keep``; or ``only``
    that one) and announce them, so their access tokens stop working too: the ids ended."""
    live = select(RefreshToken.family_id).distinct().where(
        RefreshToken.subject_id == subject_id, RefreshToken.revoked_at.is_(None))
    if audience:
        live = live.where(RefreshToken.audience == audience)
    if keep:
        live = live.where(RefreshToken.family_id != keep)
    if only:
        live = live.where(RefreshToken.family_id == only)
    families = list(session.scalars(live))
    if families:
        session.execute(update(RefreshToken)
                        .where(RefreshToken.family_id.in_(families),
                               RefreshToken.revoked_at.is_(None))
                        .values(revoked_at=utcnow()))
        ended.announce(families)
    return families


def id_or_404(value: Any, code: str = IdentityError.ACCOUNT_NOT_FOUND) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ServiceError(code, "Not found.", 404) from None


def id_or_none(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None
