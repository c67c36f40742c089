"""What identity does when customers reports a change: a profile's names and language, an
erasure."""

from __future__ import annotations

import logging

from sqlalchemy import delete, select, update

from messaging.contracts import (
    load_payload,
)
from messaging.envelope import Envelope
from messaging.keys import unseal
from messaging.outbox import forget_in_outbox
from services.identity import (
    domain,
)
from services.identity.accounts import (
    email_key,
    revoke_sessions,
)
from services.identity.dependencies import IdentityParts
from services.identity.models import (
    Account,
    LoginThrottle,
    OneTimeToken,
    RefreshToken,
)

log = logging.getLogger(__name__)


def handle_customer_updated(parts: IdentityParts, envelope: Envelope) -> None:
    """Keep the names and language account emails use in step with the profile."""
    customer = load_payload(envelope)
    if customer["account_id"] is None:
        return
    with parts.db.transaction() as session:
        if parts.db.already_processed(session, envelope):
            return
        account = session.get(Account, customer["account_id"])
        if account is None:
            return
        account.first_name = customer["first_name"]
        account.last_name = customer["last_name"]
        if customer["locale"]:
            account.locale = customer["locale"]


def handle_customer_erased(parts: IdentityParts, envelope: Envelope) -> None:
    """Forget the person: the account can no longer log in, its tokens and sessions go,
    and nothing here holds the email any more. A deleted customer's account goes whole."""
    erased = load_payload(envelope)
    email = unseal(erased["email_sealed"])
    with parts.db.transaction() as session:
        if parts.db.already_processed(session, envelope):
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
                revoke_sessions(session, parts.ended, account.id, None, keep=None)
                session.execute(delete(RefreshToken)
                                .where(RefreshToken.subject_id == account.id))
                session.delete(account)
            else:
                revoke_sessions(session, parts.ended, account.id, None, keep=None)
                session.execute(update(RefreshToken)
                                .where(RefreshToken.subject_id == account.id)
                                .values(ip=None, user_agent=None))
                domain.anonymise_account(account)
        session.execute(delete(LoginThrottle)
                        .where(LoginThrottle.key.endswith(f":{email_key(email)}")))
        forget_in_outbox(session, [email])
