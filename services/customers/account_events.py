"""What customers does when identity reports an account: a record made or linked, its
status mirrored, its email followed."""

from __future__ import annotations

import logging

from messaging.contracts import (
    CUSTOMER_UPDATED,
    load_payload,
)
from messaging.database import Database
from messaging.envelope import Envelope
from messaging.outbox import emit
from services.customers import domain, records
from services.customers.records import (
    announce_categories,
    customer_event,
    linked_record,
    occurred_at,
)

log = logging.getLogger(__name__)


def _account_status_changed(db: Database, envelope: Envelope) -> None:
    account = load_payload(envelope)
    with db.transaction() as session:
        if db.already_processed(session, envelope):
            return
        customer = linked_record(session, account["account_id"])
        if customer is not None:
            domain.mirror_account_status(customer, account["status"],
                                         occurred_at(envelope))


def handle_account_registered(db: Database, envelope: Envelope) -> None:
    """A new email gets its registered customer record at once. An email that already has
    a guest record is linked only once the account proves the email (see below): linking
    on an unverified claim would hand a stranger someone's order history."""
    account = load_payload(envelope)
    with db.transaction() as session:
        if db.already_processed(session, envelope):
            return
        customer = records.by_email(session, account["email"])
        if customer is None:
            customer = records.create_registered(session, account)
        if customer.account_id == account["account_id"]:
            domain.mirror_account_status(customer, account["status"],
                                         occurred_at(envelope))


def handle_account_invited(db: Database, envelope: Envelope) -> None:
    """Same rule as registration: a new email gets its record, a guest's waits for proof."""
    handle_account_registered(db, envelope)


def handle_account_email_verified(db: Database, envelope: Envelope) -> None:
    account = load_payload(envelope)
    with db.transaction() as session:
        if db.already_processed(session, envelope):
            return
        customer = records.by_email(session, account["email"])
        if customer is None:
            customer = records.create_registered(session, account)
        elif customer.account_id is None:
            domain.link_account(customer, account)
            emit(session, CUSTOMER_UPDATED, customer_event(customer))
            announce_categories(session, [customer.id], only_members=True)
        domain.mirror_account_status(customer, account["status"], occurred_at(envelope))


def handle_account_approved(db: Database, envelope: Envelope) -> None:
    _account_status_changed(db, envelope)


def handle_account_disabled(db: Database, envelope: Envelope) -> None:
    _account_status_changed(db, envelope)


def handle_account_enabled(db: Database, envelope: Envelope) -> None:
    _account_status_changed(db, envelope)


def handle_email_changed(db: Database, envelope: Envelope) -> None:
    account = load_payload(envelope)
    with db.transaction() as session:
        if db.already_processed(session, envelope):
            return
        customer = linked_record(session, account["account_id"])
        new_email = domain.normalise_email(account["email"])
        if customer is None or customer.email == new_email:
            return
        other = records.by_email(session, new_email)
        if other is not None:
            # A guest record already holds that email: merging two histories is a
            # merchant's decision, not an event handler's. Keep both; say so.
            log.warning("email change collides with another customer record",
                        extra={"customer_id": str(customer.id)})
            return
        customer.email = new_email
        emit(session, CUSTOMER_UPDATED, customer_event(customer))
