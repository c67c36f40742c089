"""Sessions for customers and staff: log in (throttled), refresh (rotating, reuse ends the
family), log out, list and end sessions, and whether a session has ended."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from messaging.contracts.identity import IdentityError, LoginSchema, SessionSchema
from messaging.envelope import utcnow
from messaging.errors import ServiceError, load_or_raise
from messaging.keys import hash_token, new_token
from services.identity import (
    domain,
)
from services.identity.accounts import (
    ADMIN,
    INVALID_CREDENTIALS,
    INVALID_REFRESH,
    STOREFRONT,
    clear_failures,
    give_back_attempt,
    id_or_404,
    id_or_none,
    revoke_family,
    revoke_sessions,
    take_attempt,
    throttle_keys,
)
from services.identity.dependencies import IdentityParts
from services.identity.models import (
    Account,
    RefreshToken,
    StaffUser,
)

log = logging.getLogger(__name__)


def get_jwks(parts: IdentityParts) -> dict[str, Any]:
    """Public keys for verifying access tokens (the gateway caches them)."""
    return parts.tokens.jwks()


def login(parts: IdentityParts, request: dict[str, Any], client: dict[str, Any] | None = None
          ) -> dict[str, Any]:
    account, password, keys = _authenticate(parts, Account, "customer", request, client)
    password_hash = account.password_hash
    if account.status == domain.DISABLED:
        raise ServiceError(IdentityError.ACCOUNT_DISABLED, "This account has been disabled.", 403)
    if account.status not in domain.CAN_LOG_IN:
        raise INVALID_CREDENTIALS
    new_hash = None
    if parts.passwords.needs_rehash(password_hash):
        new_hash = parts.passwords.hash(password)  # the cost was raised since
    with parts.db.transaction() as session:
        clear_failures(session, keys[:1])  # the account's count is forgiven;
        give_back_attempt(session, keys[1:])  # the address keeps its earlier failures
        account = session.get(Account, account.id)
        account.last_login_at = utcnow()
        if new_hash:
            account.password_hash = new_hash
        return start_session(parts, session, account.id, STOREFRONT, client,
                                   status=account.status)


def staff_login(parts: IdentityParts, request: dict[str, Any], client: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    staff, _, keys = _authenticate(parts, StaffUser, "staff", request, client)
    if staff.status != "active":
        raise ServiceError(IdentityError.ACCOUNT_DISABLED,
                           "This staff account has been disabled.", 403)
    with parts.db.transaction() as session:
        clear_failures(session, keys[:1])
        give_back_attempt(session, keys[1:])
        staff = session.get(StaffUser, staff.id)
        staff.last_login_at = utcnow()
        return start_session(parts, session, staff.id, ADMIN, client, role=staff.role)


def refresh(parts: IdentityParts, refresh_token: str, client: dict[str, Any] | None = None,
            audience: str = STOREFRONT) -> dict[str, Any]:
    """Rotate a refresh token: the old one is spent, a new one continues the session.
    A token only refreshes at its own door: a staff token never at the storefront's."""
    now = utcnow()
    with parts.db.transaction() as session:
        row = session.scalars(
            select(RefreshToken)
            .where(RefreshToken.token_hash == hash_token(str(refresh_token)))
            .with_for_update()
        ).first()
        verdict = domain.judge_refresh(row, now)
        if row is not None and row.audience != audience:
            verdict = domain.RefreshVerdict(False, reason="wrong audience")
        if verdict.revoke_family:
            revoke_family(session, parts.ended, row.family_id)
            log.warning("refresh token reused: session revoked",
                        extra={"session_id": str(row.family_id)})
        if not verdict.ok:
            failure = INVALID_REFRESH
        else:
            claims = _subject_claims(parts, session, row.subject_id, row.audience)
            if claims is None:  # disabled (or gone) since the last login
                revoke_family(session, parts.ended, row.family_id)
                failure = INVALID_REFRESH
            else:
                row.used_at = now
                return start_session(parts, session, row.subject_id, row.audience, client,
                                           family_id=row.family_id, **claims)
    raise failure  # after the commit: a revocation above must stick


def logout(parts: IdentityParts, refresh_token: str) -> None:
    with parts.db.transaction() as session:
        family = session.scalar(select(RefreshToken.family_id).where(
            RefreshToken.token_hash == hash_token(str(refresh_token))))
        if family is not None:
            revoke_family(session, parts.ended, family)


def list_sessions(parts: IdentityParts, subject_id: str, current_session: str | None
                  ) -> list[dict[str, Any]]:
    now = utcnow()
    with parts.db.transaction() as session:
        rows = session.scalars(select(RefreshToken).where(
            RefreshToken.subject_id == id_or_404(subject_id)).order_by(RefreshToken.created_at)
        ).all()
    started: dict[uuid.UUID, datetime] = {}
    live = []
    for row in rows:
        started.setdefault(row.family_id, row.created_at)
        if row.used_at is None and row.revoked_at is None and row.expires_at > now:
            live.append(row)
    return SessionSchema(many=True).dump([{
        "family_id": row.family_id, "created_at": started[row.family_id],
        "last_used_at": row.created_at, "user_agent": row.user_agent, "ip": row.ip,
        "current": str(row.family_id) == current_session,
    } for row in sorted(live, key=lambda r: r.created_at, reverse=True)])


def revoke_session(parts: IdentityParts, subject_id: str, session_id: str) -> None:
    with parts.db.transaction() as session:
        ended = revoke_sessions(session, parts.ended, id_or_404(subject_id), None, keep=None,
                                 only=id_or_404(session_id, IdentityError.SESSION_NOT_FOUND))
    if not ended:
        raise ServiceError(IdentityError.SESSION_NOT_FOUND, "No such session.", 404)


def revoke_other_sessions(parts: IdentityParts, subject_id: str, current_session: str | None
                          ) -> int:
    with parts.db.transaction() as session:
        return len(revoke_sessions(session, parts.ended, id_or_404(subject_id), None,
                                    keep=id_or_none(current_session)))


def session_has_ended(parts: IdentityParts, session_id: str) -> bool:
    """For a gateway without Redis (``make run``): has this session ended? A session with
    no live refresh token (logged out, revoked, or deleted with its account) has."""
    family_id = id_or_none(session_id)
    if family_id is None:
        return True
    with parts.db.transaction() as session:
        return session.scalar(select(RefreshToken.family_id).where(
            RefreshToken.family_id == family_id,
            RefreshToken.revoked_at.is_(None)).limit(1)) is None


def _authenticate(parts: IdentityParts, model: type[Account] | type[StaffUser], kind: str,
                  request: dict[str, Any], client: dict[str, Any] | None
                  ) -> tuple[Any, str, list[str]]:
    """(who, the password, throttle keys) for good credentials; else a failure counted
    against the email and the client address, and 401. Unknown emails cost a hash too."""
    data = load_or_raise(LoginSchema(), request)
    email = domain.normalise_email(data["email"])
    keys = throttle_keys(kind, email, client)
    with parts.db.transaction() as session:
        # Counted as a failure before the password is checked, under the rows' locks:
        # concurrent guesses queue here, and once the count earns a lock the rest are
        # refused unchecked. A good password gives the attempt back below.
        take_attempt(session, keys)
        subject = session.scalars(select(model).where(model.email == email)).first()
        password_hash = subject.password_hash if subject else None
    # Verified outside any transaction: hashing takes tens of milliseconds.
    if not parts.passwords.verify(password_hash, data["password"]) or subject is None:
        raise INVALID_CREDENTIALS
    return subject, data["password"], keys


def start_session(parts: IdentityParts, session: Session, subject_id: uuid.UUID, audience: str,
                   client: dict[str, Any] | None, family_id: uuid.UUID | None = None,
                   **claims: Any) -> dict[str, Any]:
    now = utcnow()
    family_id = family_id or uuid.uuid4()
    refresh_token, refresh_hash = new_token()
    client = client or {}
    session.add(RefreshToken(
        family_id=family_id, subject_id=subject_id, audience=audience,
        token_hash=refresh_hash, created_at=now, expires_at=now + domain.REFRESH_TOKEN_TTL,
        user_agent=(client.get("user_agent") or "")[:200] or None,
        ip=(client.get("ip") or "")[:45] or None,
    ))
    access_token, expires_in = parts.tokens.access_token(subject_id, audience, family_id,
                                                        now, **claims)
    return {"access_token": access_token, "token_type": "Bearer", "expires_in": expires_in,
            "refresh_token": refresh_token, "session_id": str(family_id)}


def _subject_claims(parts: IdentityParts, session: Session, subject_id: uuid.UUID, audience: str
                    ) -> dict[str, Any] | None:
    if audience == ADMIN:
        staff = session.get(StaffUser, subject_id)
        return {"role": staff.role} if staff and staff.status == "active" else None
    account = session.get(Account, subject_id)
    if account is None or account.status not in domain.CAN_LOG_IN:
        return None
    return {"status": account.status}
