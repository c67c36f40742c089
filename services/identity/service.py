"""Identity service: its whole API, one entrypoint each, to scan. The work is in the use-case
modules: store_settings, registration (accounts, invitations, approval), credentials
(passwords), email_change, sessions (log in, refresh, log out, staff), customer_events;
shared pieces in accounts, the rules in domain."""

from __future__ import annotations

import logging
from typing import Any

from messaging.consumer import consume_event
from messaging.contracts import (
    CUSTOMER_ERASED,
    CUSTOMER_UPDATED,
)
from messaging.envelope import Envelope
from messaging.health import HealthEndpoints
from messaging.logs import LogContext
from messaging.rpc import rpc
from services.identity import (
    credentials,
    customer_events,
    email_change,
    registration,
    sessions,
    store_settings,
)
from services.identity.accounts import (
    STOREFRONT,
)
from services.identity.dependencies import (
    EndedSessionsProvider,
    IdentityParts,
    PasswordsProvider,
    TokenIssuerProvider,
    identity_database,
)

log = logging.getLogger(__name__)


class IdentityService(HealthEndpoints):
    name = "identity"

    db = identity_database()
    passwords = PasswordsProvider()
    tokens = TokenIssuerProvider()
    ended = EndedSessionsProvider()
    log_context = LogContext()

    @property
    def parts(self) -> IdentityParts:
        """The dependencies this worker was given, as the use-case modules take them."""
        return IdentityParts(self.db, self.passwords, self.tokens, self.ended)

    # store settings -------------------------------------------------------------------
    @rpc
    def get_store_settings(self) -> dict[str, Any]:
        return store_settings.get_store_settings(self.parts)

    @rpc
    def update_store_settings(self, changes: dict[str, Any], actor: str) -> dict[str, Any]:
        return store_settings.update_store_settings(self.parts, changes, actor)

    @rpc
    def get_jwks(self) -> dict[str, Any]:
        """Public keys for verifying access tokens (the gateway caches them)."""
        return sessions.get_jwks(self.parts)

    # customer accounts ----------------------------------------------------------------
    @rpc
    def register(self, request: dict[str, Any]) -> dict[str, str]:
        return registration.register(self.parts, request)

    @rpc
    def create_account_from_order(self, request: dict[str, Any],
                                  client: dict[str, Any] | None = None) -> dict[str, Any]:
        return registration.create_account_from_order(self.parts, request, client)

    @rpc
    def verify_email(self, request: dict[str, Any], client: dict[str, Any] | None = None
                     ) -> dict[str, Any]:
        """The inbox's owner proves the address, and sets the password as they do."""
        return registration.verify_email(self.parts, request, client)

    @rpc
    def login(self, request: dict[str, Any], client: dict[str, Any] | None = None
              ) -> dict[str, Any]:
        return sessions.login(self.parts, request, client)

    @rpc
    def account_for_email(self, email: str) -> dict[str, Any] | None:
        return registration.account_for_email(self.parts, email)

    @rpc
    def get_account(self, account_id: str) -> dict[str, Any]:
        return registration.get_account(self.parts, account_id)

    @rpc
    def request_password_reset(self, email: str) -> None:
        """Email a reset link if the account exists; say nothing either way."""
        return credentials.request_password_reset(self.parts, email)

    @rpc
    def reset_password(self, request: dict[str, Any]) -> None:
        return credentials.reset_password(self.parts, request)

    @rpc
    def change_password(self, account_id: str, request: dict[str, Any],
                        current_session: str | None) -> None:
        return credentials.change_password(self.parts, account_id, request, current_session)

    # email change ---------------------------------------------------------------------
    @rpc
    def request_email_change(self, account_id: str, request: dict[str, Any]) -> None:
        """Send a confirmation link to the new address; nothing changes until it is used."""
        return email_change.request_email_change(self.parts, account_id, request)

    @rpc
    def confirm_email_change(self, token: str) -> dict[str, Any]:
        """The new address proved itself: switch to it, and give the old one a way back."""
        return email_change.confirm_email_change(self.parts, token)

    @rpc
    def revert_email_change(self, token: str) -> dict[str, Any]:
        return email_change.revert_email_change(self.parts, token)

    @consume_event("customers", CUSTOMER_UPDATED)
    def handle_customer_updated(self, envelope: Envelope) -> None:
        """Keep the names and language account emails use in step with the profile."""
        return customer_events.handle_customer_updated(self.parts, envelope)

    @consume_event("customers", CUSTOMER_ERASED)
    def handle_customer_erased(self, envelope: Envelope) -> None:
        return customer_events.handle_customer_erased(self.parts, envelope)

    @rpc
    def export_account(self, account_id: str) -> dict[str, Any] | None:
        """What identity holds about a customer's account (never a hash or a token)."""
        return registration.export_account(self.parts, account_id)

    # merchant actions on accounts ----------------------------------------------------
    @rpc
    def invite_account(self, request: dict[str, Any], actor: str) -> dict[str, Any]:
        return registration.invite_account(self.parts, request, actor)

    @rpc
    def activate(self, request: dict[str, Any], client: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
        """Set the first password of an invited account; the customer is then logged in."""
        return registration.activate(self.parts, request, client)

    @rpc
    def change_account_status(self, account_id: str, action: str, actor: str
                              ) -> dict[str, Any]:
        """approve (pending → active), disable (ends every session), enable."""
        return registration.change_account_status(self.parts, account_id, action, actor)

    # sessions (both audiences) --------------------------------------------------------
    @rpc
    def refresh(self, refresh_token: str, client: dict[str, Any] | None = None,
                audience: str = STOREFRONT) -> dict[str, Any]:
        return sessions.refresh(self.parts, refresh_token, client, audience)

    @rpc
    def logout(self, refresh_token: str) -> None:
        return sessions.logout(self.parts, refresh_token)

    @rpc
    def list_sessions(self, subject_id: str, current_session: str | None
                      ) -> list[dict[str, Any]]:
        return sessions.list_sessions(self.parts, subject_id, current_session)

    @rpc
    def revoke_session(self, subject_id: str, session_id: str) -> None:
        return sessions.revoke_session(self.parts, subject_id, session_id)

    @rpc
    def revoke_other_sessions(self, subject_id: str, current_session: str | None) -> int:
        return sessions.revoke_other_sessions(self.parts, subject_id, current_session)

    @rpc
    def session_has_ended(self, session_id: str) -> bool:
        return sessions.session_has_ended(self.parts, session_id)

    # staff ----------------------------------------------------------------------------
    @rpc
    def staff_login(self, request: dict[str, Any], client: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
        return sessions.staff_login(self.parts, request, client)

    # helpers ----------------------------------------------------------------------------




