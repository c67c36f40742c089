"""Customer accounts: registration, invitations and activation, the account offered after
a guest checkout, email proof, approval and status, an account's data export."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from messaging.contracts import (
    ACCOUNT_APPROVED,
    ACCOUNT_DISABLED,
    ACCOUNT_ENABLED,
    ACCOUNT_INVITED,
    ACCOUNT_REGISTERED,
    is_erased_email,
)
from messaging.contracts.identity import (
    AccountSchema,
    IdentityError,
    InviteSchema,
    RegisterSchema,
    ResetPasswordSchema,
)
from messaging.envelope import utcnow
from messaging.errors import ServiceError, load_or_raise
from messaging.keys import seal
from messaging.logs import mask_email
from messaging.outbox import emit
from services.identity import (
    credentials,
    domain,
    sessions,
    store_settings,
)
from services.identity.accounts import (
    INVALID_LINK,
    STOREFRONT,
    account_payload,
    check_password,
    clear_failures,
    ensure_no_account,
    id_or_404,
    issue_one_time,
    mark_verified,
    revoke_sessions,
    throttle_keys,
    usable_token,
)
from services.identity.dependencies import IdentityParts
from services.identity.models import (
    Account,
    RefreshToken,
)

log = logging.getLogger(__name__)


def register(parts: IdentityParts, request: dict[str, Any]) -> dict[str, str]:
    """Create an account. The answer is the same whether or not the email already has one,
    and so is the time it takes (the password is hashed either way)."""
    data = load_or_raise(RegisterSchema(), request)
    settings = store_settings.get_store_settings(parts)
    check_password(data["password"], data["email"], settings)
    password_hash = parts.passwords.hash(data["password"])
    try:
        with parts.db.transaction() as session:
            if session.scalar(select(Account.id).where(Account.email == data["email"])):
                log.info("registration for an existing account",
                         extra={"email": mask_email(data["email"])})
                return {"status": "accepted"}
            account = Account(
                email=data["email"], password_hash=password_hash,
                status=domain.status_at_registration(settings), email_verified=False,
                locale=data["locale"] or settings["locale"],
                first_name=data["first_name"], last_name=data["last_name"],
            )
            session.add(account)
            session.flush()
            token, _ = issue_one_time(session, account.id, "verify_email")
            emit(session, ACCOUNT_REGISTERED, {
                **account_payload(account), "status": account.status,
                "verify_token_sealed": seal(token),
            })
    except IntegrityError:  # the same email registered concurrently: same answer
        pass
    return {"status": "accepted"}


def create_account_from_order(parts: IdentityParts, request: dict[str, Any],
                              client: dict[str, Any] | None = None) -> dict[str, Any]:
    """A guest accepts the account offered after checkout. The caller (the gateway) has
    checked the order's emailed access token, so the email is proven: the account starts
    verified, and the guest's orders and customer record follow it."""
    data = load_or_raise(RegisterSchema(), request)
    settings = store_settings.get_store_settings(parts)
    check_password(data["password"], data["email"], settings)
    password_hash = parts.passwords.hash(data["password"])
    try:
        with parts.db.transaction() as session:
            ensure_no_account(session, data["email"])
            account = Account(
                email=data["email"], password_hash=password_hash,
                status=domain.status_at_registration(settings), email_verified=False,
                locale=data["locale"] or settings["locale"],
                first_name=data["first_name"], last_name=data["last_name"],
                last_login_at=utcnow(),
            )
            session.add(account)
            session.flush()
            emit(session, ACCOUNT_REGISTERED, {**account_payload(account),
                                               "status": account.status,
                                               "verify_token_sealed": None})
            mark_verified(session, account)
            return sessions.start_session(parts, session, account.id, STOREFRONT, client,
                                       status=account.status)
    except IntegrityError:
        raise ServiceError(IdentityError.ACCOUNT_EXISTS,
                           "This email already has an account: log in.",
                           409) from None


def verify_email(parts: IdentityParts, request: dict[str, Any], client: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
    """The inbox's owner proves the address, and sets the password as they do.

    Anyone can register someone else's email; the password chosen then, and any session
    opened with it, belong to whoever registered. The proof brings the email's guest
    orders and records to the account, so it must not bring them to that person: every
    earlier session ends (its access tokens too) and the password is the one typed here.
    The customer is logged in with a new session."""
    data = load_or_raise(ResetPasswordSchema(), request)
    new_hash = credentials.hash_for_link(parts, "verify_email", data["token"], data["password"])
    with parts.db.transaction() as session:
        row = usable_token(session, "verify_email", data["token"])  # a racing click?
        now = utcnow()
        row.used_at = now
        account = session.get(Account, row.account_id, with_for_update=True)
        if account.status not in domain.CAN_LOG_IN:
            raise INVALID_LINK  # disabled or erased since the link was sent
        account.password_hash, account.password_changed_at = new_hash, now
        account.last_login_at = now
        revoke_sessions(session, parts.ended, account.id, None, keep=None)
        clear_failures(session, throttle_keys("customer", account.email, None))
        mark_verified(session, account)
        return sessions.start_session(parts, session, account.id, STOREFRONT, client,
                                   status=account.status)


def account_for_email(parts: IdentityParts, email: str) -> dict[str, Any] | None:
    """For the gateway at a guest checkout: does this email have an account (id, whether
    the email is proven)? The shopper is then invited to log in, not offered another."""
    with parts.db.transaction() as session:
        account = session.scalars(select(Account).where(
            Account.email == domain.normalise_email(str(email))[:254])).first()
        if account is None or account.status == domain.ERASED:
            return None
        return {"id": str(account.id), "email_verified": account.email_verified}


def get_account(parts: IdentityParts, account_id: str) -> dict[str, Any]:
    with parts.db.transaction() as session:
        account = session.get(Account, id_or_404(account_id))
        if account is None or account.status == domain.ERASED:
            raise ServiceError(IdentityError.ACCOUNT_NOT_FOUND, "No such account.", 404)
        return AccountSchema().dump(account)


def export_account(parts: IdentityParts, account_id: str) -> dict[str, Any] | None:
    """What identity holds about a customer's account (never a hash or a token)."""
    with parts.db.transaction() as session:
        account = session.get(Account, id_or_404(account_id))
        if account is None:
            return None
        sessions = session.scalars(select(RefreshToken).where(
            RefreshToken.subject_id == account.id).order_by(RefreshToken.created_at)).all()
        return {
            **AccountSchema().dump(account),
            "last_login_at": account.last_login_at and account.last_login_at.isoformat(),
            "password_changed_at": account.password_changed_at
            and account.password_changed_at.isoformat(),
            "sessions": [{"created_at": row.created_at.isoformat(),
                          "audience": row.audience, "ip": row.ip,
                          "user_agent": row.user_agent,
                          "revoked_at": row.revoked_at and row.revoked_at.isoformat()}
                         for row in sessions],
        }


def invite_account(parts: IdentityParts, request: dict[str, Any], actor: str) -> dict[str, Any]:
    """An account the merchant creates: no password until the customer activates it
    through the emailed link (valid 7 days)."""
    data = load_or_raise(InviteSchema(), request)
    if is_erased_email(data["email"]):  # an erased person's placeholder, never a mailbox
        raise ServiceError(IdentityError.CUSTOMER_ERASED, "This customer's data was erased.", 410)
    settings = store_settings.get_store_settings(parts)
    try:
        with parts.db.transaction() as session:
            account = session.scalars(
                select(Account).where(Account.email == data["email"])).first()
            if account is not None and account.status != domain.INVITED:
                raise ServiceError(IdentityError.ACCOUNT_EXISTS,
                                   "This email already has an account.",
                                   409, extra={"account_id": str(account.id)})
            if account is None:
                account = Account(email=data["email"], password_hash=None,
                                  status=domain.INVITED, email_verified=False,
                                  locale=data["locale"] or settings["locale"],
                                  first_name=data["first_name"],
                                  last_name=data["last_name"])
                session.add(account)
                session.flush()
            token, row = issue_one_time(session, account.id, "invitation")  # re-invite
            emit(session, ACCOUNT_INVITED, {**account_payload(account),
                                            "token_sealed": seal(token),
                                            "expires_at": row.expires_at, "actor": actor})
            return AccountSchema().dump(account)
    except IntegrityError:
        raise ServiceError(IdentityError.ACCOUNT_EXISTS, "This email already has an account.",
                           409) from None


def activate(parts: IdentityParts, request: dict[str, Any], client: dict[str, Any] | None = None
             ) -> dict[str, Any]:
    """Set the first password of an invited account; the customer is then logged in."""
    data = load_or_raise(ResetPasswordSchema(), request)
    new_hash = credentials.hash_for_link(parts, "invitation", data["token"], data["password"])
    with parts.db.transaction() as session:
        row = usable_token(session, "invitation", data["token"])
        now = utcnow()
        row.used_at = now
        account = session.get(Account, row.account_id)
        if account.status != domain.INVITED:
            raise INVALID_LINK
        account.password_hash, account.password_changed_at = new_hash, now
        account.status, account.last_login_at = domain.ACTIVE, now
        mark_verified(session, account)  # the invitation reached that inbox
        return sessions.start_session(parts, session, account.id, STOREFRONT, client,
                                   status=account.status)


def change_account_status(parts: IdentityParts, account_id: str, action: str, actor: str
                          ) -> dict[str, Any]:
    """approve (pending → active), disable (ends every session), enable."""
    if action not in domain.STATUS_ACTIONS:
        raise ServiceError(IdentityError.UNKNOWN_ACTION, f"Unknown action {action!r}.", 422)
    with parts.db.transaction() as session:
        account = session.get(Account, id_or_404(account_id), with_for_update=True)
        if account is None:
            raise ServiceError(IdentityError.ACCOUNT_NOT_FOUND, "No such account.", 404)
        try:
            new_status = domain.status_after(action, account.status)
        except ValueError as exc:
            raise ServiceError(IdentityError.ILLEGAL_TRANSITION, str(exc), 409,
                               extra={"current_status": account.status}) from None
        if new_status is not None:
            account.status = new_status
            if new_status == domain.DISABLED:
                revoke_sessions(session, parts.ended, account.id, STOREFRONT, keep=None)
            event = {"approve": ACCOUNT_APPROVED, "disable": ACCOUNT_DISABLED,
                     "enable": ACCOUNT_ENABLED}[action]
            emit(session, event, {**account_payload(account), "status": new_status,
                                  "actor": actor})
        return AccountSchema().dump(account)
