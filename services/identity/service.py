"""Identity service: store settings, customer accounts, staff, sessions and one-time tokens."""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from messaging.consumer import consume_event
from messaging.contracts import (
    ACCOUNT_APPROVED,
    ACCOUNT_DISABLED,
    ACCOUNT_EMAIL_VERIFIED,
    ACCOUNT_ENABLED,
    ACCOUNT_INVITED,
    ACCOUNT_REGISTERED,
    CUSTOMER_ERASED,
    CUSTOMER_UPDATED,
    EMAIL_CHANGE_REQUESTED,
    EMAIL_CHANGED,
    PASSWORD_CHANGED,
    PASSWORD_RESET_REQUESTED,
    STORE_SETTINGS_CHANGED,
    is_erased_email,
    load_payload,
)
from messaging.database import locked_row
from messaging.envelope import Envelope, utcnow
from messaging.errors import ServiceError, load_or_raise
from messaging.health import HealthEndpoints
from messaging.keys import hash_token, new_token, seal, unseal
from messaging.logs import LogContext, mask_email
from messaging.outbox import emit, forget_in_outbox
from messaging.rpc import rpc
from services.identity import domain
from services.identity.dependencies import (
    EndedSessions,
    EndedSessionsProvider,
    PasswordsProvider,
    TokenIssuerProvider,
    identity_database,
)
from services.identity.models import (
    Account,
    LoginThrottle,
    OneTimeToken,
    RefreshToken,
    StaffUser,
    StoreSettings,
    StoreSettingsChange,
)
from services.identity.schemas import (
    AccountSchema,
    ChangePasswordSchema,
    EmailChangeSchema,
    InviteSchema,
    LoginSchema,
    RegisterSchema,
    ResetPasswordSchema,
    SessionSchema,
    StoreSettingsSchema,
    StoreSettingsUpdateSchema,
)

log = logging.getLogger(__name__)

STOREFRONT, ADMIN = "storefront", "admin"
INVALID_CREDENTIALS = ServiceError("invalid_credentials", "The email or password is wrong.", 401)
INVALID_LINK = ServiceError("invalid_token", "This link is invalid, used or expired.", 400)
INVALID_REFRESH = ServiceError("invalid_refresh_token", "Log in again.", 401)


class IdentityService(HealthEndpoints):
    name = "identity"

    db = identity_database()
    passwords = PasswordsProvider()
    tokens = TokenIssuerProvider()
    ended = EndedSessionsProvider()
    log_context = LogContext()

    # store settings -------------------------------------------------------------------
    @rpc
    def get_store_settings(self) -> dict[str, Any]:
        with self.db.transaction() as session:
            return StoreSettingsSchema().dump(_settings_row(session))

    @rpc
    def update_store_settings(self, changes: dict[str, Any], actor: str) -> dict[str, Any]:
        data = load_or_raise(StoreSettingsUpdateSchema(), changes)
        with self.db.transaction() as session:
            row = _settings_row(session, lock=True)
            current = StoreSettingsSchema().dump(row)
            problem = domain.settings_problem({**current, **data})
            if problem:
                raise ServiceError("settings_conflict", "These settings cannot hold together.",
                                   422, errors=problem)
            diff = domain.diff_settings(current, data)
            if diff:
                for field, (_, new) in diff.items():
                    setattr(row, field, new)
                session.add(StoreSettingsChange(actor=actor, changes=diff))
                emit(session, STORE_SETTINGS_CHANGED, {"changed": diff, "actor": actor})
            return StoreSettingsSchema().dump(row)

    @rpc
    def get_jwks(self) -> dict[str, Any]:
        """Public keys for verifying access tokens (the gateway caches them)."""
        return self.tokens.jwks()

    # customer accounts ----------------------------------------------------------------
    @rpc
    def register(self, request: dict[str, Any]) -> dict[str, str]:
        """Create an account. The answer is the same whether or not the email already has one,
        and so is the time it takes (the password is hashed either way)."""
        data = load_or_raise(RegisterSchema(), request)
        settings = self.get_store_settings()
        _check_password(data["password"], data["email"], settings)
        password_hash = self.passwords.hash(data["password"])
        try:
            with self.db.transaction() as session:
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
                token, _ = _issue_one_time(session, account.id, "verify_email")
                emit(session, ACCOUNT_REGISTERED, {
                    **_account_payload(account), "status": account.status,
                    "verify_token_sealed": seal(token),
                })
        except IntegrityError:  # the same email registered concurrently: same answer
            pass
        return {"status": "accepted"}

    @rpc
    def create_account_from_order(self, request: dict[str, Any],
                                  client: dict[str, Any] | None = None) -> dict[str, Any]:
        """A guest accepts the account offered after checkout. The caller (the gateway) has
        checked the order's emailed access token, so the email is proven: the account starts
        verified, and the guest's orders and customer record follow it."""
        data = load_or_raise(RegisterSchema(), request)
        settings = self.get_store_settings()
        _check_password(data["password"], data["email"], settings)
        password_hash = self.passwords.hash(data["password"])
        try:
            with self.db.transaction() as session:
                _ensure_no_account(session, data["email"])
                account = Account(
                    email=data["email"], password_hash=password_hash,
                    status=domain.status_at_registration(settings), email_verified=False,
                    locale=data["locale"] or settings["locale"],
                    first_name=data["first_name"], last_name=data["last_name"],
                    last_login_at=utcnow(),
                )
                session.add(account)
                session.flush()
                emit(session, ACCOUNT_REGISTERED, {**_account_payload(account),
                                                   "status": account.status,
                                                   "verify_token_sealed": None})
                _mark_verified(session, account)
                return self._start_session(session, account.id, STOREFRONT, client,
                                           status=account.status)
        except IntegrityError:
            raise ServiceError("account_exists", "This email already has an account: log in.",
                               409) from None

    @rpc
    def verify_email(self, request: dict[str, Any], client: dict[str, Any] | None = None
                     ) -> dict[str, Any]:
        """The inbox's owner proves the address, and sets the password as they do.

        Anyone can register someone else's email; the password chosen then, and any session
        opened with it, belong to whoever registered. The proof brings the email's guest
        orders and records to the account, so it must not bring them to that person: every
        earlier session ends (its access tokens too) and the password is the one typed here.
        The customer is logged in with a new session."""
        data = load_or_raise(ResetPasswordSchema(), request)
        new_hash = self._hash_for_link("verify_email", data["token"], data["password"])
        with self.db.transaction() as session:
            row = _usable_token(session, "verify_email", data["token"])  # a racing click?
            now = utcnow()
            row.used_at = now
            account = session.get(Account, row.account_id, with_for_update=True)
            if account.status not in domain.CAN_LOG_IN:
                raise INVALID_LINK  # disabled or erased since the link was sent
            account.password_hash, account.password_changed_at = new_hash, now
            account.last_login_at = now
            _revoke_sessions(session, self.ended, account.id, None, keep=None)
            _clear_failures(session, _throttle_keys("customer", account.email, None))
            _mark_verified(session, account)
            return self._start_session(session, account.id, STOREFRONT, client,
                                       status=account.status)

    @rpc
    def login(self, request: dict[str, Any], client: dict[str, Any] | None = None
              ) -> dict[str, Any]:
        account, password, keys = self._authenticate(Account, "customer", request, client)
        password_hash = account.password_hash
        if account.status == domain.DISABLED:
            raise ServiceError("account_disabled", "This account has been disabled.", 403)
        if account.status not in domain.CAN_LOG_IN:
            raise INVALID_CREDENTIALS
        new_hash = None
        if self.passwords.needs_rehash(password_hash):
            new_hash = self.passwords.hash(password)  # the cost was raised since
        with self.db.transaction() as session:
            _clear_failures(session, keys[:1])  # the account's count is forgiven;
            _give_back_attempt(session, keys[1:])  # the address keeps its earlier failures
            account = session.get(Account, account.id)
            account.last_login_at = utcnow()
            if new_hash:
                account.password_hash = new_hash
            return self._start_session(session, account.id, STOREFRONT, client,
                                       status=account.status)

    @rpc
    def account_for_email(self, email: str) -> dict[str, Any] | None:
        """For the gateway at a guest checkout: does this email have an account (id, whether
        the email is proven)? The shopper is then invited to log in, not offered another."""
        with self.db.transaction() as session:
            account = session.scalars(select(Account).where(
                Account.email == domain.normalise_email(str(email))[:254])).first()
            if account is None or account.status == domain.ERASED:
                return None
            return {"id": str(account.id), "email_verified": account.email_verified}

    @rpc
    def get_account(self, account_id: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            account = session.get(Account, _uuid(account_id))
            if account is None or account.status == domain.ERASED:
                raise ServiceError("account_not_found", "No such account.", 404)
            return AccountSchema().dump(account)

    @rpc
    def request_password_reset(self, email: str) -> None:
        """Email a reset link if the account exists; say nothing either way."""
        email = domain.normalise_email(str(email))[:254]
        token, _ = new_token()  # made either way: the same work for unknown emails
        with self.db.transaction() as session:
            account = session.scalars(select(Account).where(Account.email == email)).first()
            if account is None or account.status not in domain.CAN_LOG_IN:
                return
            _, row = _issue_one_time(session, account.id, "password_reset", token=token)
            emit(session, PASSWORD_RESET_REQUESTED, {
                **_account_payload(account), "token_sealed": seal(token),
                "expires_at": row.expires_at,
            })

    @rpc
    def reset_password(self, request: dict[str, Any]) -> None:
        data = load_or_raise(ResetPasswordSchema(), request)
        new_hash = self._hash_for_link("password_reset", data["token"], data["password"])
        with self.db.transaction() as session:
            row = _usable_token(session, "password_reset", data["token"])  # a racing reset?
            now = utcnow()
            row.used_at = now
            account = session.get(Account, row.account_id)
            account.password_hash, account.password_changed_at = new_hash, now
            _revoke_sessions(session, self.ended, account.id, STOREFRONT, keep=None)
            # The owner proved the inbox: a reset lifts any login lock on the account.
            _clear_failures(session, _throttle_keys("customer", account.email, None))
            _mark_verified(session, account)  # the link reached that inbox: the email is proven
            emit(session, PASSWORD_CHANGED, {**_account_payload(account), "reason": "reset"})

    @rpc
    def change_password(self, account_id: str, request: dict[str, Any],
                        current_session: str | None) -> None:
        data = load_or_raise(ChangePasswordSchema(), request)
        email = self._confirm_password(account_id, data["current_password"],
                                       "current_password")
        _check_password(data["new_password"], email, self.get_store_settings(),
                        field="new_password")
        new_hash = self.passwords.hash(data["new_password"])
        with self.db.transaction() as session:
            account = session.get(Account, _uuid(account_id))
            account.password_hash, account.password_changed_at = new_hash, utcnow()
            _revoke_sessions(session, self.ended, account.id, STOREFRONT,
                             keep=_uuid_or_none(current_session))
            emit(session, PASSWORD_CHANGED, {**_account_payload(account), "reason": "change"})

    # email change ---------------------------------------------------------------------
    @rpc
    def request_email_change(self, account_id: str, request: dict[str, Any]) -> None:
        """Send a confirmation link to the new address; nothing changes until it is used.

        The answer is the same whether or not the new address already has an account (no
        existence oracle): a taken address gets a notice instead of a link. Requests are
        limited per account and per target address, so this is no mailer for strangers."""
        data = load_or_raise(EmailChangeSchema(), request)
        current_email = self._confirm_password(account_id, data["password"], "password")
        if data["new_email"] == current_email:
            raise ServiceError("validation_failed", "That is already your email.", 422,
                               errors={"new_email": ["Same as the current email."]})
        with self.db.transaction() as session:
            _take_attempt(session, [f"email-change:account:{_uuid(account_id)}",
                                    f"email-change:to:{_email_key(data['new_email'])}"])
        with self.db.transaction() as session:
            account = session.get(Account, _uuid(account_id))
            taken = session.scalar(select(Account.id).where(Account.email == data["new_email"]))
            token_sealed = None
            if not taken:
                token, row = _issue_one_time(session, account.id, "email_change")
                row.data = {"new_email": data["new_email"]}
                token_sealed = seal(token)
            emit(session, EMAIL_CHANGE_REQUESTED, {**_account_payload(account),
                                                   "new_email": data["new_email"],
                                                   "token_sealed": token_sealed,
                                                   "address_taken": bool(taken)})

    @rpc
    def confirm_email_change(self, token: str) -> dict[str, Any]:
        """The new address proved itself: switch to it, and give the old one a way back."""
        try:
            with self.db.transaction() as session:
                row = _usable_token(session, "email_change", token)
                row.used_at = utcnow()
                account = session.get(Account, row.account_id)
                new_email, old_email = row.data["new_email"], account.email
                _ensure_email_free(session, new_email)
                account.email, account.email_verified = new_email, True
                revert_token, revert = _issue_one_time(session, account.id, "email_revert")
                revert.data = {"old_email": old_email, "new_email": new_email}
                emit(session, EMAIL_CHANGED, {**_account_payload(account),
                                              "old_email": old_email, "reverted": False,
                                              "revert_token_sealed": seal(revert_token)})
                return AccountSchema().dump(account)
        except IntegrityError:
            raise _email_taken() from None

    @rpc
    def revert_email_change(self, token: str) -> dict[str, Any]:
        """One click from the old address: the email goes back and every session ends (whoever
        changed it is signed out); the owner then resets the password."""
        with self.db.transaction() as session:
            row = _usable_token(session, "email_revert", token)
            row.used_at = utcnow()
            account = session.get(Account, row.account_id)
            old_email, changed_to = row.data["old_email"], account.email
            if account.email != old_email:
                _ensure_email_free(session, old_email)
                account.email = old_email
            account.email_verified = True
            _revoke_sessions(session, self.ended, account.id, STOREFRONT, keep=None)
            session.execute(update(OneTimeToken)  # a pending change from the intruder dies too
                            .where(OneTimeToken.account_id == account.id,
                                   OneTimeToken.purpose == "email_change",
                                   OneTimeToken.used_at.is_(None))
                            .values(superseded_at=utcnow()))
            emit(session, EMAIL_CHANGED, {**_account_payload(account), "old_email": changed_to,
                                          "reverted": True, "revert_token_sealed": None})
            return AccountSchema().dump(account)

    @consume_event("customers", CUSTOMER_UPDATED)
    def handle_customer_updated(self, envelope: Envelope) -> None:
        """Keep the names and language account emails use in step with the profile."""
        customer = load_payload(envelope)
        if customer["account_id"] is None:
            return
        with self.db.transaction() as session:
            if self.db.already_processed(session, envelope):
                return
            account = session.get(Account, customer["account_id"])
            if account is None:
                return
            account.first_name = customer["first_name"]
            account.last_name = customer["last_name"]
            if customer["locale"]:
                account.locale = customer["locale"]

    @consume_event("customers", CUSTOMER_ERASED)
    def handle_customer_erased(self, envelope: Envelope) -> None:
        """Forget the person: the account can no longer log in, its tokens and sessions go,
        and nothing here holds the email any more. A deleted customer's account goes whole."""
        erased = load_payload(envelope)
        email = unseal(erased["email_sealed"])
        with self.db.transaction() as session:
            if self.db.already_processed(session, envelope):
                return
            account = session.get(Account, erased["account_id"], with_for_update=True) \
                if erased["account_id"] else None
            if account is None:
                account = session.scalars(select(Account).where(Account.email == email)
                                          .with_for_update()).first()
            if account is not None:
                session.execute(delete(OneTimeToken)
                                .where(OneTimeToken.account_id == account.id))
                if erased["deleted"]:
                    _revoke_sessions(session, self.ended, account.id, None, keep=None)
                    session.execute(delete(RefreshToken)
                                    .where(RefreshToken.subject_id == account.id))
                    session.delete(account)
                else:
                    _revoke_sessions(session, self.ended, account.id, None, keep=None)
                    session.execute(update(RefreshToken)
                                    .where(RefreshToken.subject_id == account.id)
                                    .values(ip=None, user_agent=None))
                    domain.anonymise_account(account)
            session.execute(delete(LoginThrottle)
                            .where(LoginThrottle.key.endswith(f":{_email_key(email)}")))
            forget_in_outbox(session, [email])

    @rpc
    def export_account(self, account_id: str) -> dict[str, Any] | None:
        """What identity holds about a customer's account (never a hash or a token)."""
        with self.db.transaction() as session:
            account = session.get(Account, _uuid(account_id))
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

    # merchant actions on accounts ----------------------------------------------------
    @rpc
    def invite_account(self, request: dict[str, Any], actor: str) -> dict[str, Any]:
        """An account the merchant creates: no password until the customer activates it
        through the emailed link (valid 7 days)."""
        data = load_or_raise(InviteSchema(), request)
        if is_erased_email(data["email"]):  # an erased person's placeholder, never a mailbox
            raise ServiceError("customer_erased", "This customer's data was erased.", 410)
        settings = self.get_store_settings()
        try:
            with self.db.transaction() as session:
                account = session.scalars(
                    select(Account).where(Account.email == data["email"])).first()
                if account is not None and account.status != domain.INVITED:
                    raise ServiceError("account_exists", "This email already has an account.",
                                       409, extra={"account_id": str(account.id)})
                if account is None:
                    account = Account(email=data["email"], password_hash=None,
                                      status=domain.INVITED, email_verified=False,
                                      locale=data["locale"] or settings["locale"],
                                      first_name=data["first_name"],
                                      last_name=data["last_name"])
                    session.add(account)
                    session.flush()
                token, row = _issue_one_time(session, account.id, "invitation")  # re-invite
                emit(session, ACCOUNT_INVITED, {**_account_payload(account),
                                                "token_sealed": seal(token),
                                                "expires_at": row.expires_at, "actor": actor})
                return AccountSchema().dump(account)
        except IntegrityError:
            raise ServiceError("account_exists", "This email already has an account.",
                               409) from None

    @rpc
    def activate(self, request: dict[str, Any], client: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
        """Set the first password of an invited account; the customer is then logged in."""
        data = load_or_raise(ResetPasswordSchema(), request)
        new_hash = self._hash_for_link("invitation", data["token"], data["password"])
        with self.db.transaction() as session:
            row = _usable_token(session, "invitation", data["token"])
            now = utcnow()
            row.used_at = now
            account = session.get(Account, row.account_id)
            if account.status != domain.INVITED:
                raise INVALID_LINK
            account.password_hash, account.password_changed_at = new_hash, now
            account.status, account.last_login_at = domain.ACTIVE, now
            _mark_verified(session, account)  # the invitation reached that inbox
            return self._start_session(session, account.id, STOREFRONT, client,
                                       status=account.status)

    @rpc
    def change_account_status(self, account_id: str, action: str, actor: str
                              ) -> dict[str, Any]:
        """approve (pending → active), disable (ends every session), enable."""
        if action not in domain.STATUS_ACTIONS:
            raise ServiceError("unknown_action", f"Unknown action {action!r}.", 422)
        with self.db.transaction() as session:
            account = session.get(Account, _uuid(account_id), with_for_update=True)
            if account is None:
                raise ServiceError("account_not_found", "No such account.", 404)
            try:
                new_status = domain.status_after(action, account.status)
            except ValueError as exc:
                raise ServiceError("illegal_transition", str(exc), 409,
                                   extra={"current_status": account.status}) from None
            if new_status is not None:
                account.status = new_status
                if new_status == domain.DISABLED:
                    _revoke_sessions(session, self.ended, account.id, STOREFRONT, keep=None)
                event = {"approve": ACCOUNT_APPROVED, "disable": ACCOUNT_DISABLED,
                         "enable": ACCOUNT_ENABLED}[action]
                emit(session, event, {**_account_payload(account), "status": new_status,
                                      "actor": actor})
            return AccountSchema().dump(account)

    # sessions (both audiences) --------------------------------------------------------
    @rpc
    def refresh(self, refresh_token: str, client: dict[str, Any] | None = None,
                audience: str = STOREFRONT) -> dict[str, Any]:
        """Rotate a refresh token: the old one is spent, a new one continues the session.
        A token only refreshes at its own door: a staff token never at the storefront's."""
        now = utcnow()
        with self.db.transaction() as session:
            row = session.scalars(
                select(RefreshToken)
                .where(RefreshToken.token_hash == hash_token(str(refresh_token)))
                .with_for_update()
            ).first()
            verdict = domain.judge_refresh(row, now)
            if row is not None and row.audience != audience:
                verdict = domain.RefreshVerdict(False, reason="wrong audience")
            if verdict.revoke_family:
                _revoke_family(session, self.ended, row.family_id)
                log.warning("refresh token reused: session revoked",
                            extra={"session_id": str(row.family_id)})
            if not verdict.ok:
                failure = INVALID_REFRESH
            else:
                claims = self._subject_claims(session, row.subject_id, row.audience)
                if claims is None:  # disabled (or gone) since the last login
                    _revoke_family(session, self.ended, row.family_id)
                    failure = INVALID_REFRESH
                else:
                    row.used_at = now
                    return self._start_session(session, row.subject_id, row.audience, client,
                                               family_id=row.family_id, **claims)
        raise failure  # after the commit: a revocation above must stick

    @rpc
    def logout(self, refresh_token: str) -> None:
        with self.db.transaction() as session:
            family = session.scalar(select(RefreshToken.family_id).where(
                RefreshToken.token_hash == hash_token(str(refresh_token))))
            if family is not None:
                _revoke_family(session, self.ended, family)

    @rpc
    def list_sessions(self, subject_id: str, current_session: str | None
                      ) -> list[dict[str, Any]]:
        now = utcnow()
        with self.db.transaction() as session:
            rows = session.scalars(select(RefreshToken).where(
                RefreshToken.subject_id == _uuid(subject_id)).order_by(RefreshToken.created_at)
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

    @rpc
    def revoke_session(self, subject_id: str, session_id: str) -> None:
        with self.db.transaction() as session:
            ended = _revoke_sessions(session, self.ended, _uuid(subject_id), None, keep=None,
                                     only=_uuid(session_id, "session_not_found"))
        if not ended:
            raise ServiceError("session_not_found", "No such session.", 404)

    @rpc
    def revoke_other_sessions(self, subject_id: str, current_session: str | None) -> int:
        with self.db.transaction() as session:
            return len(_revoke_sessions(session, self.ended, _uuid(subject_id), None,
                                        keep=_uuid_or_none(current_session)))

    @rpc
    def session_has_ended(self, session_id: str) -> bool:
        """For a gateway without Redis (``make run``): has this session ended? A session with
        no live refresh token (logged out, revoked, or deleted with its account) has."""
        family_id = _uuid_or_none(session_id)
        if family_id is None:
            return True
        with self.db.transaction() as session:
            return session.scalar(select(RefreshToken.family_id).where(
                RefreshToken.family_id == family_id,
                RefreshToken.revoked_at.is_(None)).limit(1)) is None

    # staff ----------------------------------------------------------------------------
    @rpc
    def staff_login(self, request: dict[str, Any], client: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
        staff, _, keys = self._authenticate(StaffUser, "staff", request, client)
        if staff.status != "active":
            raise ServiceError("account_disabled", "This staff account has been disabled.", 403)
        with self.db.transaction() as session:
            _clear_failures(session, keys[:1])
            _give_back_attempt(session, keys[1:])
            staff = session.get(StaffUser, staff.id)
            staff.last_login_at = utcnow()
            return self._start_session(session, staff.id, ADMIN, client, role=staff.role)

    # helpers ----------------------------------------------------------------------------
    def _hash_for_link(self, purpose: str, token: str, password: str) -> str:
        """The new password's hash, once the link (one-time token) is usable and the password
        meets the policy for its account's email. Hashed outside any transaction; the caller
        takes the token again, locked, to spend it."""
        with self.db.transaction() as session:
            row = _usable_token(session, purpose, token, lock=False)
            email = session.get(Account, row.account_id).email
        _check_password(password, email, self.get_store_settings())
        return self.passwords.hash(password)

    def _confirm_password(self, account_id: str, password: str, field: str) -> str:
        """The account's email, once ``password`` is its password (else 422 on ``field``):
        what a logged-in customer proves before changing a password or an email."""
        with self.db.transaction() as session:
            account = session.get(Account, _uuid(account_id))
            if account is None:
                raise ServiceError("account_not_found", "No such account.", 404)
            current_hash, email = account.password_hash, account.email
        # Verified outside any transaction: hashing takes tens of milliseconds.
        if not self.passwords.verify(current_hash, password):
            raise ServiceError("validation_failed", "The password is wrong.", 422,
                               errors={field: ["Wrong password."]})
        return email

    def _authenticate(self, model: type[Account] | type[StaffUser], kind: str,
                      request: dict[str, Any], client: dict[str, Any] | None
                      ) -> tuple[Any, str, list[str]]:
        """(who, the password, throttle keys) for good credentials; else a failure counted
        against the email and the client address, and 401. Unknown emails cost a hash too."""
        data = load_or_raise(LoginSchema(), request)
        email = domain.normalise_email(data["email"])
        keys = _throttle_keys(kind, email, client)
        with self.db.transaction() as session:
            # Counted as a failure before the password is checked, under the rows' locks:
            # concurrent guesses queue here, and once the count earns a lock the rest are
            # refused unchecked. A good password gives the attempt back below.
            _take_attempt(session, keys)
            subject = session.scalars(select(model).where(model.email == email)).first()
            password_hash = subject.password_hash if subject else None
        # Verified outside any transaction: hashing takes tens of milliseconds.
        if not self.passwords.verify(password_hash, data["password"]) or subject is None:
            raise INVALID_CREDENTIALS
        return subject, data["password"], keys

    def _start_session(self, session: Session, subject_id: uuid.UUID, audience: str,
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
        access_token, expires_in = self.tokens.access_token(subject_id, audience, family_id,
                                                            now, **claims)
        return {"access_token": access_token, "token_type": "Bearer", "expires_in": expires_in,
                "refresh_token": refresh_token, "session_id": str(family_id)}

    def _subject_claims(self, session: Session, subject_id: uuid.UUID, audience: str
                        ) -> dict[str, Any] | None:
        if audience == ADMIN:
            staff = session.get(StaffUser, subject_id)
            return {"role": staff.role} if staff and staff.status == "active" else None
        account = session.get(Account, subject_id)
        if account is None or account.status not in domain.CAN_LOG_IN:
            return None
        return {"status": account.status}


def _settings_row(session: Session, lock: bool = False) -> StoreSettings:
    # The migration inserts row 1; creating it here only covers a hand-emptied table.
    row = session.get(StoreSettings, 1, with_for_update=lock)
    if row is None:
        row = StoreSettings(id=1, **domain.DEFAULT_SETTINGS)
        session.add(row)
        session.flush()
    return row


def _check_password(password: str, email: str, settings: dict[str, Any],
                    field: str = "password") -> None:
    problems = domain.password_problems(password, email, settings["password_min_length"],
                                        settings.get("password_min_classes", 0))
    if problems:
        raise ServiceError("validation_failed", "Choose a stronger password.", 422,
                           errors={field: problems})


def _account_payload(account: Account) -> dict[str, Any]:
    """What every account email needs: who, in which language, from which store."""
    session = Session.object_session(account)
    store_name = _settings_row(session).store_name if session else ""
    return {"account_id": account.id, "email": account.email, "locale": account.locale,
            "first_name": account.first_name, "last_name": account.last_name,
            "store_name": store_name, "status": account.status}


def _mark_verified(session: Session, account: Account) -> None:
    if not account.email_verified:
        account.email_verified = True
        emit(session, ACCOUNT_EMAIL_VERIFIED, _account_payload(account))


def _issue_one_time(session: Session, account_id: uuid.UUID, purpose: str,
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


def _usable_token(session: Session, purpose: str, token: str, lock: bool = True) -> OneTimeToken:
    query = select(OneTimeToken).where(OneTimeToken.token_hash == hash_token(str(token)),
                                       OneTimeToken.purpose == purpose)
    row = session.scalars(query.with_for_update() if lock else query).first()
    if (row is None or row.used_at is not None or row.superseded_at is not None
            or row.expires_at <= utcnow()):
        raise INVALID_LINK
    return row


def _email_taken() -> ServiceError:
    return ServiceError("email_taken", "Another account uses this email.", 409)


def _ensure_email_free(session: Session, email: str) -> None:
    if session.scalar(select(Account.id).where(Account.email == email)):
        raise _email_taken()


def _ensure_no_account(session: Session, email: str) -> None:
    if session.scalar(select(Account.id).where(Account.email == email)):
        raise ServiceError("account_exists", "This email already has an account: log in.", 409)


def _throttle_keys(kind: str, email: str, client: dict[str, Any] | None) -> list[str]:
    """[account key, address key]: failures count against both. The email is hashed: the
    table records attempts, and must not become a list of addresses people tried."""
    keys = [f"{kind}:{_email_key(email)}"]
    ip = (client or {}).get("ip")
    if ip:
        keys.append(f"ip:{ip}"[:300])
    return keys


def _email_key(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def _policy_for(key: str) -> domain.ThrottlePolicy:
    if key.startswith("email-change:"):
        return domain.EMAIL_CHANGE_THROTTLE
    return domain.ADDRESS_THROTTLE if key.startswith("ip:") else domain.ACCOUNT_THROTTLE


def _take_attempt(session: Session, keys: list[str]) -> None:
    """Refuse (429) if any key is locked; else count this attempt as a failure on every key,
    locking the key when the count earns it. Keys are locked in one order: no deadlocks."""
    now = utcnow()
    rows = [(_policy_for(key), locked_row(session, LoginThrottle, key, key=key, failures=0,
                                          last_failure_at=now, locked_until=None))
            for key in sorted(keys)]
    locked = [row.locked_until for _, row in rows if row.locked_until and row.locked_until > now]
    if locked:
        wait = max(1, int((max(locked) - now).total_seconds() + 0.999))
        raise ServiceError("too_many_attempts",
                           "Too many failed logins. Wait, or reset your password.", 429,
                           extra={"retry_after": wait})
    for policy, row in rows:
        if now - row.last_failure_at > policy.forget_after:
            row.failures = 0
        row.failures += 1
        row.last_failure_at = now
        delay = policy.delay_after(row.failures)
        row.locked_until = now + delay if delay else None


def _give_back_attempt(session: Session, keys: list[str]) -> None:
    """A login that succeeded was counted as a failure in advance: take it back."""
    for key in keys:
        row = session.get(LoginThrottle, key, with_for_update=True)
        if row is not None and row.failures > 0:
            row.failures -= 1
            delay = _policy_for(key).delay_after(row.failures)
            row.locked_until = row.last_failure_at + delay if delay else None


def _clear_failures(session: Session, keys: list[str]) -> None:
    session.execute(delete(LoginThrottle).where(LoginThrottle.key.in_(keys)))


def _revoke_family(session: Session, ended: EndedSessions, family_id: uuid.UUID) -> None:
    session.execute(update(RefreshToken)
                    .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
                    .values(revoked_at=utcnow()))
    ended.announce([family_id])


def _revoke_sessions(session: Session, ended: EndedSessions, subject_id: uuid.UUID,
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


def _uuid(value: Any, code: str = "account_not_found") -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ServiceError(code, "Not found.", 404) from None


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None
