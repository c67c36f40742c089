"""What orders does when an account or customer changes elsewhere: a proven email claims its
guest orders, orders follow an email change, an erased customer is forgotten."""

from __future__ import annotations

import logging

from sqlalchemy import delete, select, update

from messaging.contracts import (
    load_payload,
)
from messaging.database import Database
from messaging.envelope import Envelope
from messaging.keys import unseal
from messaging.outbox import forget_in_outbox
from services.orders import domain, listings
from services.orders.models import (
    Cart,
    CartLine,
    CustomerMembership,
    Order,
    OrderHistory,
)

log = logging.getLogger(__name__)


def handle_account_email_verified(db: Database, envelope: Envelope) -> None:
    """The account proved this email: its guest orders become the customer's."""
    account = load_payload(envelope)
    with db.transaction() as session:
        if db.already_processed(session, envelope):
            return
        session.execute(
            update(Order)
            .where(Order.email == account["email"].strip().lower(),
                   Order.customer_id.is_(None))
            .values(customer_id=account["account_id"])
            .execution_options(synchronize_session=False)
        )


def handle_email_changed(db: Database, envelope: Envelope) -> None:
    """An account's orders follow its email: their later emails go to the address the
    customer uses now (a change, or its undo)."""
    account = load_payload(envelope)
    with db.transaction() as session:
        if db.already_processed(session, envelope):
            return
        session.execute(
            update(Order)
            .where(Order.customer_id == account["account_id"],
                   Order.email != account["email"].strip().lower())
            .values(email=account["email"].strip().lower())
            .execution_options(synchronize_session=False))


def handle_customer_erased(db: Database, envelope: Envelope) -> None:
    """Forget the person in their orders; numbers, lines and totals stay (the store's
    books). Staff comments go too: they are free text, often about the person."""
    erased = load_payload(envelope)
    email = unseal(erased["email_sealed"])
    with db.transaction() as session:
        if db.already_processed(session, envelope):
            return
        orders = session.scalars(select(Order).where(
            listings.orders_of(erased["account_id"], email)).with_for_update()).all()
        for order in orders:
            domain.anonymise_order(order, erased["customer_id"])
        if orders:
            session.execute(update(OrderHistory)
                            .where(OrderHistory.order_id.in_([o.id for o in orders]),
                                   OrderHistory.comment.is_not(None))
                            .values(comment=None)
                            .execution_options(synchronize_session=False))
        if erased["account_id"]:
            session.execute(delete(CustomerMembership).where(
                CustomerMembership.account_id == domain.id_or_404(str(erased["account_id"]))))
            session.execute(delete(CartLine).where(
                CartLine.customer_id == domain.id_or_404(str(erased["account_id"]))))
            session.execute(delete(Cart).where(
                Cart.customer_id == domain.id_or_404(str(erased["account_id"]))))
        forget_in_outbox(session, [email])
